// `livemig start` (npm start): two livemig VMs in this process migrate over loopback TCP while
// the source's vCPUs run kernel-build (allocator churn) and its balloon hints free memory. A
// small guest keeps the test short; the checks are the command's own verdicts (RAM equal to
// the source at the stop except hinted free pages, every vCPU's written live pages equal, the
// hint status DONE loaded, the destination completed), read back from its JSON, plus that
// hinting really skipped pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ReportData } from '../web/api-types.ts';
import { cli } from './cli.test-util.ts';

test('start migrates a running guest and every verdict passes', async () => {
  const r = await cli('start', '--memory', '256M', '--max-bandwidth', String(256 * 1024 * 1024));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^status completed: total-time \d+ ms, downtime \d+ ms/m);
  assert.match(r.stdout, /^ {4}ok {3}memory-equality: \d+ pages equal to the source at the stop/m);
  assert.match(r.stdout, /^ {4}ok {3}kernel-build vCPU 1: [1-9]\d* written pages in live blocks, \d+ of them hinted free earlier in the migration; all equal at the destination$/m);
  assert.match(r.stdout, /^ {4}ok {3}hint-done: destination balloon device hint status DONE after the load$/m);
  assert.match(r.stdout, /^PASS$/m);
});

test('start --json prints query-migrate with the verdicts', async () => {
  const r = await cli('start', '--memory', '256M', '--json');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { status: string; ok: boolean; invariants: Array<{ name: string; ok: boolean }>; balloon: { 'hinted-pages': number }; ram: { total: number } };
  assert.equal(json.status, 'completed');
  assert.equal(json.ok, true);
  assert.equal(json.ram.total, 256 * 1024 * 1024);
  assert.deepEqual(json.invariants.map((v) => v.name), ['memory-equality', 'kernel-build vCPU 0', 'kernel-build vCPU 1', 'free-page-hinting', 'hint-done', 'destination']);
  assert.ok(json.balloon['hinted-pages'] > 0, 'the balloon hinted free memory');
});

test('start --report writes a self-contained report of the real run: samples, statuses, page maps, verdicts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-start-report-'));
  try {
    const path = join(dir, 'start.html');
    const r = await cli('start', '--memory', '256M', '--report', path);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const html = readFileSync(path, 'utf8');
    assert.match(html, /Times are wall-clock time of a real run\./);
    const b64 = /<script type="application\/octet-stream" id="report-data">([^<]*)<\/script>/.exec(html)?.[1] ?? '';
    const data = JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString('utf8')) as ReportData;
    assert.equal(data.clock, 'wall');
    const run = data.runs[0];
    assert.equal(run.info.pageCount, 65536);
    assert.ok(run.samples.length >= 2, `${run.samples.length} samples`);
    assert.ok(run.statuses.some((s) => s.side === 'source' && s.to === 'completed'));
    assert.ok(run.statuses.some((s) => s.side === 'destination' && s.to === 'completed'));
    assert.ok(run.iterations.length >= 2, 'one row per dirty sync');
    const last = run.pageMaps.at(-1)!;
    assert.equal(last.reason, 'end');
    // At the end every page is on the destination or was hinted free and not sent.
    assert.equal(last.totals.sent + last.totals.hinted, 65536);
    assert.ok(last.totals.hinted > 0, 'the balloon hinted free memory');
    assert.equal(run.summary?.ok, true);
    assert.deepEqual(run.summary?.invariants?.map((v) => v.ok), run.summary?.invariants?.map(() => true));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
