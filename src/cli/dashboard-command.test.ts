// `livemig dashboard` as a process: it prints a URL with the token, serves the page only with
// it, and stops cleanly (exit 0) on SIGINT; a bad --port or --scenarios is a usage error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cli } from './cli.test-util.ts';

const bin = fileURLToPath(new URL('../../bin/livemig.js', import.meta.url));
const scenarios = fileURLToPath(new URL('../../scenarios', import.meta.url));

test('dashboard prints a token URL, refuses requests without it, stops on SIGINT', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [bin, 'dashboard', '--port', '0', '--scenarios', scenarios], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /livemig dashboard: (http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/.exec(out);
      if (m !== null) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  const u = new URL(url);
  assert.equal((await fetch(`${u.origin}/`)).status, 403);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /livemig dashboard/);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.match(out, /livemig dashboard: stopped/);
});

test('dashboard: usage errors exit 2', async () => {
  assert.equal((await cli('dashboard', '--port', '70000')).code, 2);
  assert.equal((await cli('dashboard', '--scenarios', '/nonexistent')).code, 2);
  assert.equal((await cli('dashboard', '--trace', '/nonexistent.jsonl')).code, 2);
});
