// `livemig start` (npm start) until the engine lands: the first line says it is a stand-in,
// then the bundled vector's analysis follows with the manifest's RAM checksum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, manifest } from './cli.test-util.ts';
import { STAND_IN_LINE } from './start-command.ts';

test('start prints the stand-in line first, then the analysis of pattern-16M', async () => {
  const r = await cli('start');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], STAND_IN_LINE);
  assert.match(lines[0], /has not landed yet/);
  assert.match(r.stdout, new RegExp(`mem +16,777,216 bytes .* ${manifest()['pattern-16M'].decoded_ram_sha256}`));
  assert.match(r.stdout, /^result: ok, 16,806,670 of 16,806,670 bytes decoded$/m);
});

test('start --json keeps stdout one JSON object and says stand-in on stderr', async () => {
  const r = await cli('start', '--json');
  assert.equal(r.code, 0);
  const json = JSON.parse(r.stdout) as { ramBlocks: Array<{ sha256: string }> };
  assert.equal(json.ramBlocks[0].sha256, manifest()['pattern-16M'].decoded_ram_sha256);
  assert.equal(r.stderr.trim(), STAND_IN_LINE);
});
