// `livemig start` (npm start): two livemig VMs in this process migrate over loopback TCP while
// the source's incrementer vCPUs run and its balloon hints free memory. A small guest keeps the
// test short; the checks are the command's own verdicts (RAM equal to the source at the stop
// except hinted pages, the incrementer oracle per vCPU, the destination completed), read back
// from its JSON, plus that hinting really skipped pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from './cli.test-util.ts';

test('start migrates a running guest and every verdict passes', async () => {
  const r = await cli('start', '--memory', '256M', '--max-bandwidth', String(256 * 1024 * 1024));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^status completed: total-time \d+ ms, downtime \d+ ms/m);
  assert.match(r.stdout, /^ {4}ok {3}memory-equality: \d+ pages equal to the source at the stop/m);
  assert.match(r.stdout, /^ {4}ok {3}incrementer-oracle vCPU 1: ok$/m);
  assert.match(r.stdout, /^PASS$/m);
});

test('start --json prints query-migrate with the verdicts', async () => {
  const r = await cli('start', '--memory', '256M', '--json');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { status: string; ok: boolean; invariants: Array<{ name: string; ok: boolean }>; balloon: { 'hinted-pages': number }; ram: { total: number } };
  assert.equal(json.status, 'completed');
  assert.equal(json.ok, true);
  assert.equal(json.ram.total, 256 * 1024 * 1024);
  assert.ok(json.invariants.length >= 4);
  assert.ok(json.balloon['hinted-pages'] > 0, 'the balloon hinted free memory');
});
