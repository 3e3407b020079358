// `livemig sim`: the progress table and the verdicts, the --json object with query-migrate's
// names, --set and --seed, the --trace file (its hash is the reported trace-hash), and the
// exit codes: 0 all invariants hold, 1 an invariant fails or the status is not the expected
// one, 2 usage errors (missing file, bad --set, invalid scenario, bad seed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fnv1a64Hex } from '../sim/trace.ts';
import { cli } from './cli.test-util.ts';
import { CapturedIo } from './io.ts';
import { runSim } from './sim.ts';

const dir = mkdtempSync(join(tmpdir(), 'livemig-sim-'));
const scenarioFile = join(dir, 'tiny.yaml');
writeFileSync(scenarioFile, `
name: tiny
guest: { memory: 64M, reserved: 8M }
workload: { kind: incrementer, size: 16M, rate: 256M }
capabilities: { return-path: true }
parameters: { max-bandwidth: 128M }
migration: { start: 20ms }
settle: 20ms
`);
const hintIdle = fileURLToPath(new URL('../../scenarios/hint-idle-8g.yaml', import.meta.url));

test('sim prints the progress table, the verdicts and PASS', async () => {
  const r = await cli('sim', scenarioFile);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^ sync +time ms +transferred MiB +remaining MiB +dirty MiB\/s +bandwidth Mbit\/s +status$/m);
  assert.match(r.stdout, /scenario tiny, seed 1: completed \(as expected\)/);
  for (const name of ['memory-equality', 'postcopy-placement', 'stall-bound', 'hint-recovery', 'unplugged-memory', 'status-and-queues', 'incrementer-oracle']) {
    assert.match(r.stdout, new RegExp(`ok +${name}: `));
  }
  assert.match(r.stdout, /\nPASS\n$/);
});

test('sim --json prints one object with query-migrate names', async () => {
  const r = await cli('sim', scenarioFile, '--json', '--seed', '5');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(json.status, 'completed');
  for (const key of ['total-time', 'downtime', 'setup-time', 'ram', 'balloon', 'postcopy', 'invariants', 'seed', 'trace-hash']) assert.ok(key in json, key);
  const ram = json.ram as Record<string, number>;
  for (const key of ['transferred', 'duplicate', 'normal', 'dirty-sync-count', 'postcopy-requests']) assert.equal(typeof ram[key], 'number', key);
  assert.deepEqual(Object.keys(json.balloon as object).slice(0, 2), ['hinted-pages', 'held-after-migration-bytes']);
  assert.ok('blocktime' in (json.postcopy as object) && 'max-stall-ms' in (json.postcopy as object));
  assert.equal((json.invariants as unknown[]).length, 7);
  assert.equal(json.seed, 5);
  assert.match(json['trace-hash'] as string, /^[0-9a-f]{16}$/);
});

test('--trace writes the JSON lines whose hash is the trace-hash; --seed changes it', async () => {
  const out = join(dir, 'trace.jsonl');
  const r = await cli('sim', scenarioFile, '--json', '--trace', out, '--set', 'workload.rate=512M');
  const json = JSON.parse(r.stdout) as Record<string, unknown>;
  const text = readFileSync(out, 'utf8');
  assert.equal(fnv1a64Hex(text), json['trace-hash']);
  assert.match(text.split('\n')[0], /^\{"t":0,"ev":"run","scenario":"tiny","seed":1,/);
  const again = JSON.parse((await cli('sim', scenarioFile, '--json', '--set', 'workload.rate=512M')).stdout) as Record<string, unknown>;
  assert.equal(again['trace-hash'], json['trace-hash']);
  const other = JSON.parse((await cli('sim', scenarioFile, '--json', '--set', 'workload.rate=512M', '--seed', '2')).stdout) as Record<string, unknown>;
  assert.notEqual(other['trace-hash'], json['trace-hash']);
});

test('exit 1 when an invariant fails or the status is not the expected one', async () => {
  const legacy = await cli('sim', hintIdle, '--set', 'guest.memory=256M', '--set', 'capabilities.postcopy-ram=true',
    '--set', 'switch.postcopy.after-syncs=1', '--set', 'devices.balloon.free-page-hint-postcopy=legacy', '--set', 'parameters.downtime-limit=1');
  assert.equal(legacy.code, 1);
  assert.match(legacy.stdout, /FAIL hint-recovery: .*DONE never reached the guest driver/);
  assert.match(legacy.stdout, /\nFAIL\n$/);
  const unexpected = await cli('sim', scenarioFile, '--set', 'expect.status=cancelled');
  assert.equal(unexpected.code, 1);
  assert.match(unexpected.stdout, /completed \(expected cancelled\)/);
});

test('exit 2 on usage errors', async () => {
  assert.equal((await cli('sim', join(dir, 'missing.yaml'))).code, 2);
  const badSet = await cli('sim', scenarioFile, '--set', 'novalue');
  assert.equal(badSet.code, 2);
  assert.match(badSet.stderr, /--set: 'novalue' is not key=value/);
  const invalid = await cli('sim', scenarioFile, '--set', 'guest.memory=lots');
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /guest\.memory: 'lots' is not a size/);
  assert.equal((await cli('sim', scenarioFile, '--seed', '-1')).code, 2);
  assert.equal((await cli('sim')).code, 2);
});

test('sim on a terminal draws a progress bar on the simulated clock; the run is the same without it', async () => {
  const withBar = new CapturedIo();
  assert.equal(runSim(scenarioFile, { tty: true }, withBar), 0);
  const plain = await cli('sim', scenarioFile);
  assert.ok(!plain.stdout.includes('\r'), 'no progress bar when stdout is not a terminal');
  const [bar, rest] = [withBar.stdout.slice(0, withBar.stdout.indexOf('\n') + 1), withBar.stdout.slice(withBar.stdout.indexOf('\n') + 1)];
  assert.equal(rest, plain.stdout, 'the report after the bar is the one printed without it');
  const lines = bar.split('\r').slice(1);
  assert.ok(lines.length >= 2, bar);
  const totalMs = Number(/total-time (\d+) ms/.exec(plain.stdout)![1]);
  const syncs = /dirty-sync-count (\d+)/.exec(plain.stdout)![1];
  assert.match(lines.at(-1)!, new RegExp(`^\\[#{30}\\] completed +pass ${syncs}  remaining +0 B .* at ${(totalMs / 1000).toFixed(1)} s\\n$`));
});

test('--checks adds each precopy convergence check and dirty sync, in the table and in the JSON, without changing the run', () => {
  const io = new CapturedIo();
  assert.equal(runSim(scenarioFile, { checks: true, tty: false }, io), 0);
  const text = io.stdout;
  assert.match(text, /convergence checks and dirty syncs \(precopy/);
  assert.match(text, /pending \d+ B, threshold \d+ B \(iterate\)/);
  assert.match(text, /pending \d+ B is below the threshold: complete\n.*dirty sync: \d+ pages dirty this period\n$/);
  const json = new CapturedIo();
  assert.equal(runSim(scenarioFile, { checks: true, json: true }, json), 0);
  const doc = JSON.parse(json.stdout) as { checks: [number, string, ...number[]][]; ram: { 'dirty-sync-count': number }; 'trace-hash': string };
  // The completion: below the threshold, then the completion's own sync.
  assert.deepEqual(doc.checks.slice(-2).map((c) => c[1]), ['low-pending', 'sync']);
  assert.equal(doc.checks.filter((c) => c[1] === 'sync').length, doc.ram['dirty-sync-count']);
  // Read while the run goes: the same run as without --checks.
  const plain = new CapturedIo();
  runSim(scenarioFile, { json: true }, plain);
  assert.equal(doc['trace-hash'], (JSON.parse(plain.stdout) as { 'trace-hash': string })['trace-hash']);
  assert.ok(doc.checks.filter((c) => c[1] === 'pending').length >= doc.ram['dirty-sync-count'] - 1);
});
