// The QEMU baseline pieces at tiny size, against real QEMU 7.2 (skipped locally without it,
// failing in CI): a 32 MiB QEMU → QEMU precopy over loopback TCP completes and the
// destination's RAM (pmemsave) equals the source pattern; the other modes (zero RAM, multifd,
// TLS, postcopy fault) run through qemuBaselines. Plus, without QEMU: the pattern, a missing
// QEMU making the group skip with its reason (table and --json), and the limits group's notes.
// No timed assertions: these are interop checks, not benchmarks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeQemuTlsCreds,
  runPrecopy,
  startMigrationPair,
} from '../harness/qemu-migrate.ts';
import { mismatchedPages, PAGE_BYTES, patternBytes, patternPage, writePatternFile } from '../harness/ram-pattern.ts';
import { makeTempDir, removeTempDir, sha256Hex } from '../harness/ram-image.ts';
import { requireQemu } from '../harness/skip.ts';
import { makeLimitsGroup } from './limits-group.ts';
import { runBench } from './main.ts';
import { cpuPerGiBNote, makeQemuGroup, qemuBaselines, qemuRows } from './qemu-group.ts';
import type { BenchGroup } from './registry.ts';
import type { BenchRow } from './table.ts';

const MiB = 1024 * 1024;
const TEST_TIMEOUT_MS = 180_000;

async function bench(groups: readonly BenchGroup[], ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runBench(args, { out: (t) => (out += t), err: (t) => (err += t) }, groups);
  return { code, out, err };
}

test('the RAM pattern: every page non-zero and distinct; the file equals patternBytes; mismatches are found', () => {
  const dir = makeTempDir('livemig-pattern-test-');
  try {
    const path = join(dir, 'p.ram');
    writePatternFile(path, 2 * MiB);
    const file = new Uint8Array(readFileSync(path));
    assert.equal(file.length, 2 * MiB);
    assert.equal(sha256Hex(file), sha256Hex(patternBytes(0, 2 * MiB)));
    assert.deepEqual(patternBytes(5 * PAGE_BYTES, PAGE_BYTES), patternPage(5));
    const seen = new Set<string>();
    for (let p = 0; p < 512; p++) {
      const page = file.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
      assert.ok(new Uint32Array(page.buffer, page.byteOffset, PAGE_BYTES / 4).every((w) => w !== 0), `page ${p} has a zero word`);
      seen.add(sha256Hex(page));
    }
    assert.equal(seen.size, 512);
    assert.deepEqual(mismatchedPages(file.subarray(0, 8 * PAGE_BYTES), 0, 'pattern'), []);
    file[3 * PAGE_BYTES + 17] ^= 1;
    assert.deepEqual(mismatchedPages(file.subarray(0, 8 * PAGE_BYTES), 0, 'pattern'), [3]);
    assert.deepEqual(mismatchedPages(new Uint8Array(2 * PAGE_BYTES), 10 * PAGE_BYTES, 'zero'), []);
  } finally {
    removeTempDir(dir);
  }
});

test('QEMU 7.2 -> QEMU 7.2 precopy of 32 MiB over loopback TCP completes and the destination RAM equals the source pattern', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const sizeBytes = 32 * MiB;
  const dir = makeTempDir('livemig-qemu-pair-test-');
  try {
    const patternPath = join(dir, 'pattern.ram');
    writePatternFile(patternPath, sizeBytes);
    const pair = await startMigrationPair({ sizeBytes, source: { kind: 'file', path: patternPath }, watchdogMs: 90_000 });
    try {
      assert.match(pair.uri, /^tcp:127\.0\.0\.1:\d+$/);
      const run = await runPrecopy(pair, sizeBytes, 60_000);
      assert.equal(run.status, 'completed');
      assert.equal(run.destinationStatus, 'completed');
      assert.equal(run.normalPages, sizeBytes / PAGE_BYTES, 'every page of the pattern is a PAGE record');
      assert.equal(run.duplicatePages, 0);
      assert.ok((run.transferredBytes ?? 0) >= sizeBytes, `transferred ${run.transferredBytes}`);
      assert.ok(run.wallMs > 0 && run.endToEndMs >= run.wallMs);
      assert.ok(run.totalTimeMs !== null && run.downtimeMs !== null && run.mbps !== null);
      // Both QEMUs' CPU times come from /proc (32 MiB may take less than one 10 ms tick, so only
      // their presence is checked).
      assert.ok(run.sourceCpuMs !== null && run.sourceCpuMs >= 0 && run.destinationCpuMs !== null && run.destinationCpuMs >= 0);
      const guest = await pair.destination.pmemsave(0, sizeBytes);
      assert.equal(guest.length, sizeBytes);
      assert.equal(sha256Hex(guest), sha256Hex(new Uint8Array(readFileSync(patternPath))));
      assert.deepEqual(mismatchedPages(guest, 0, 'pattern'), []);
    } finally {
      await pair.stop();
    }
  } finally {
    removeTempDir(dir);
  }
});

test('qemuBaselines at 32 MiB: zero RAM, a preallocated destination, multifd 2, TLS and the postcopy fault run, and become table rows', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const baselines = await qemuBaselines({ sizeBytes: 32 * MiB, runs: 1, modes: ['precopy', 'precopy-prealloc', 'zero', 'multifd-2', 'tls', 'postcopy-fault'], watchdogMs: 90_000 });
  assert.equal(baselines.skipped, null);
  assert.match(baselines.qemuVersion ?? '', /QEMU emulator version 7\.2/);
  for (const mode of ['precopy', 'precopy-prealloc', 'zero', 'multifd-2', 'tls'] as const) {
    const b = baselines.modes[mode];
    assert.ok(b !== undefined && b.kind === 'precopy', `${mode}: ${b?.kind === 'failed' ? b.error : 'missing'}`);
    assert.equal(b.runs.length, 1);
    assert.deepEqual(b.runs[0].badPages, [], `${mode}: destination pages differ`);
    assert.ok(b.medianGbPerSec > 0);
  }
  const zero = baselines.modes.zero;
  assert.ok(zero?.kind === 'precopy' && zero.runs[0].duplicatePages === (32 * MiB) / PAGE_BYTES);
  const multifd = baselines.modes['multifd-2'];
  assert.ok(multifd?.kind === 'precopy' && (multifd.runs[0].multifdBytes ?? 0) >= 32 * MiB);
  // The postcopy run: at 32 MiB the background stream may deliver a late page before it is read,
  // so only QEMU's behaviour is checked here, not how many reads were faults.
  const postcopy = baselines.modes['postcopy-fault'];
  assert.ok(postcopy !== undefined);
  if (postcopy.kind === 'postcopy-fault') {
    for (const run of postcopy.runs) {
      assert.equal(run.destinationStatus, 'postcopy-active');
      assert.deepEqual(run.badPages, [], 'late pages read on the destination equal the source');
    }
  } else {
    assert.match(postcopy.kind === 'failed' ? postcopy.error : '', /no late-page read raised a postcopy page request/);
  }
  const notes: string[] = [];
  const rows = qemuRows(baselines, (text) => notes.push(text));
  assert.ok(rows.length >= 4);
  assert.ok(rows.every((r) => r.group === 'qemu' && r.samples.length >= 1 && r.detail !== undefined));
  assert.equal(rows.find((r) => r.name.includes('all-zero'))?.unit, 'ms');
  assert.equal(rows.find((r) => r.name.includes('TLS'))?.versus?.name, 'QEMU 1 channel');
});

test('cpuPerGiBNote: median CPU per GiB of each side and its share of the median run; nothing without CPU figures', () => {
  const runs = [
    { sourceCpuMs: 100, destinationCpuMs: 300, endToEndMs: 1000 },
    { sourceCpuMs: 140, destinationCpuMs: 500, endToEndMs: 800 },
    { sourceCpuMs: 120, destinationCpuMs: 400, endToEndMs: 900 },
  ];
  assert.equal(cpuPerGiBNote(runs, 512 * MiB), 'CPU per GiB: source 240 ms (13% of a core), destination 800 ms (44% of a core)');
  assert.equal(cpuPerGiBNote(runs, 1024 * MiB, ['QEMU source', 'livemig destination']), 'CPU per GiB: QEMU source 120 ms (13% of a core), livemig destination 400 ms (44% of a core)');
  // Runs too short for 10 ms ticks to give a share: the share is left out.
  assert.equal(cpuPerGiBNote([{ sourceCpuMs: 10, destinationCpuMs: 20, endToEndMs: 14 }], 256 * MiB), 'CPU per GiB: source 40 ms, destination 80 ms');
  assert.equal(cpuPerGiBNote([{ sourceCpuMs: null, destinationCpuMs: 400, endToEndMs: 900 }], 1024 * MiB), '');
});

test('makeQemuTlsCreds writes the files tls-creds-x509 reads', (t) => {
  const dir = makeTempDir('livemig-tls-test-');
  try {
    try {
      makeQemuTlsCreds(dir);
    } catch (error) {
      if (/spawnSync openssl ENOENT/.test((error as Error).message)) return t.skip('openssl is not installed');
      throw error;
    }
    for (const file of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem']) {
      assert.match(readFileSync(join(dir, file), 'utf8'), /^-----BEGIN /, file);
    }
  } finally {
    removeTempDir(dir);
  }
});

test('a missing QEMU skips the qemu group with its reason: a row-less note in the table, `skipped` in --json', async () => {
  const reason = 'qemu-system-x86_64 not found on PATH';
  const availability = { ok: false as const, reason };
  const direct = await qemuBaselines({ sizeBytes: 32 * MiB, runs: 1, availability });
  assert.deepEqual(direct, { skipped: reason, qemuVersion: null, sizeBytes: 32 * MiB, runsPerMode: 1, modes: {} });

  const groups = [makeQemuGroup(undefined, undefined, { availability })];
  const json = await bench(groups, '--json', '--only', 'qemu');
  assert.equal(json.code, 0, json.err);
  const doc = JSON.parse(json.out) as { rows: BenchRow[]; skipped: Array<{ group: string; reason: string }>; notes: unknown[] };
  assert.deepEqual(doc.rows, []);
  assert.deepEqual(doc.skipped, [{ group: 'qemu', reason }]);
  assert.deepEqual(doc.notes, []);
  const table = await bench(groups, '--only', 'qemu');
  assert.equal(table.code, 0);
  assert.match(table.out, new RegExp(`^qemu: skipped: ${reason}$`, 'm'));
});

test('limits group: iperf3 rows when it runs (failed runs retried), a note when it is missing, Node pump rows, memcpy referred to codec', async () => {
  const sizes = { iperf3Runs: 3, iperf3Seconds: 1, pumpRuns: 1, pumpBytes: MiB };
  const pump = async (_size: number, writeBytes: number): Promise<number> => (writeBytes === MiB ? 2e9 : 1e9);
  let calls = 0;
  const flaky = { iperf3Installed: () => true, iperf3BytesPerSec: async () => (++calls === 2 ? null : 3e9), pumpBytesPerSec: pump };
  const present = JSON.parse((await bench([makeLimitsGroup(sizes, sizes, flaky)], '--json')).out) as { rows: BenchRow[]; notes: Array<{ text: string }> };
  assert.deepEqual(present.rows.map((r) => [r.name, r.value]), [
    ['loopback TCP, iperf3 1 stream', 3],
    ['loopback TCP, Node socket pump, 1 MiB writes', 2],
    ['loopback TCP, Node socket pump, 4 KiB writes', 1],
  ]);
  assert.equal(present.rows[0].samples.length, 3);
  assert.equal(present.rows[2].versus?.value, 2);
  assert.ok(present.notes.some((n) => /memcpy: measured by the codec group/.test(n.text)));

  const missing = { iperf3Installed: () => false, iperf3BytesPerSec: async () => assert.fail('iperf3 must not run'), pumpBytesPerSec: pump };
  const table = await bench([makeLimitsGroup(sizes, sizes, missing)]);
  assert.doesNotMatch(table.out, /iperf3 1 stream/);
  assert.match(table.out, /^limits: loopback TCP by iperf3: not measured, iperf3 is not installed/m);
});
