// `livemig bench` hands its arguments to the bench (src/bench/main.ts), the same as `npm run bench`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from './cli.test-util.ts';

test('bench --list names every group; a bad flag is a usage error (exit 2)', async () => {
  const list = await cli('bench', '--list');
  assert.equal(list.code, 0, list.stderr);
  for (const group of ['codec', 'memory', 'limits', 'qemu', 'livemig', 'sim']) assert.match(list.stdout, new RegExp(`^${group} `, 'm'));
  const bad = await cli('bench', '--only', 'nosuchgroup');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /nosuchgroup/);
});
