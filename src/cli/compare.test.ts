// `livemig compare`: the five policies in one table, --json rows with livemig sim --json's
// fields plus `policy` (and refuse's texts), --markdown, and the exit codes: 0 whatever the
// verdicts (failed invariants are data), 2 on usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { cli } from './cli.test-util.ts';

const pressure = fileURLToPath(new URL('../../scenarios/hint-postcopy-pressure.yaml', import.meta.url));
const SMALL = ['guest.memory=128M', 'guest.backing=compact', 'guest.reserved=8M', 'workload.used=64M', 'workload.rate=128M', 'pressure.size=32M', 'migration.start=800ms'];
const small = SMALL.flatMap((s) => ['--set', s]);

test('compare prints one row per policy, legacy failing, and exits 0', async () => {
  const r = await cli('compare', pressure, ...small);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^scenario hint-postcopy-pressure, seed 1$/);
  assert.match(lines[1], /^policy +postcopy allowed\? +total ms +downtime ms +sent MiB +pages hinted +held after MiB +longest stall ms +memory-equality +postcopy-placement +stall-bound +hint-recovery +unplugged-memory +status-and-queues +incrementer-oracle$/);
  assert.deepEqual(lines.slice(2, 7).map((l) => l.split(/ +/)[0]), ['refuse', 'overrule', 'legacy', 'ignore-after-switch', 'track']);
  assert.match(r.stdout, /^legacy +yes, switched .*FAIL +FAIL/m);
  assert.match(r.stdout, /^ {2}refuse: destination stderr "virtio-balloon: 'free-page-hint' does not support postcopy"; migrate-set-capabilities postcopy-ram: GenericError "Postcopy is not supported"$/m);
  assert.match(r.stdout, /track keeps \d+\.\d% of it/);
});

test('compare --json: livemig sim --json fields plus policy; refuse carries its texts', async () => {
  const r = await cli('compare', pressure, ...small, '--json', '--seed', '3');
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<Record<string, any>>;
  assert.deepEqual(rows.map((x) => x.policy), ['refuse', 'overrule', 'legacy', 'ignore-after-switch', 'track']);
  for (const row of rows) {
    assert.equal(row.seed, 3);
    for (const key of ['status', 'total-time', 'downtime', 'ram', 'balloon', 'postcopy', 'invariants', 'trace-hash']) assert.ok(key in row, `${row.policy}: ${key}`);
    assert.equal(row.invariants.length, 7);
  }
  const [refuse, , legacy, , track] = rows;
  assert.equal(refuse['postcopy-allowed'], false);
  assert.equal(refuse['error-desc'], "virtio-balloon: 'free-page-hint' does not support postcopy; Postcopy is not supported");
  assert.deepEqual(refuse.refusal, { class: 'GenericError', desc: 'Postcopy is not supported', reports: ["virtio-balloon: 'free-page-hint' does not support postcopy"] });
  assert.ok(legacy.ram.transferred > 0 && legacy.balloon['hinted-pages'] > 0);
  assert.deepEqual(legacy.invariants.filter((v: any) => !v.ok).map((v: any) => v.name), ['stall-bound', 'hint-recovery']);
  assert.equal(track.ok, true);
});

test('compare --markdown, --help and usage errors', async () => {
  const md = await cli('compare', pressure, ...small, '--markdown');
  assert.equal(md.code, 0, md.stderr);
  assert.match(md.stdout, /^\| policy \| postcopy allowed\? \|/);
  assert.match(md.stdout, /^\| --- \| --- \| ---: \|/m);
  assert.match(md.stdout, /^- refuse: destination stderr/m);
  const help = await cli('compare', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit status: 0 when the five runs ran, whatever their verdicts/);
  assert.equal((await cli('compare', '/no/such/file.yaml')).code, 2);
  assert.equal((await cli('compare', pressure, '--set', 'guest.memory=banana')).code, 2);
  assert.equal((await cli('compare', pressure, '--seed', '-1')).code, 2);
  assert.equal((await cli('compare', pressure, '--json', '--markdown')).code, 2);
});

test('compare --report writes one HTML report whose table equals the printed runs', async () => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'livemig-compare-'));
  try {
    const out = join(dir, 'compare.html');
    const plain = await cli('compare', pressure, ...small);
    const r = await cli('compare', pressure, ...small, '--report', out);
    assert.equal(r.code, 0, r.stderr);
    // Watching the runs for the report does not change them: the table is the same.
    assert.equal(r.stdout.replace(/^report: .*\n/m, ''), plain.stdout);
    const html = readFileSync(out, 'utf8');
    assert.match(html, /^<!doctype html>/i);
    assert.match(html, /livemig compare: hint-postcopy-pressure, seed 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
