/**
 * The loopback throughput measure works and reports plausible numbers: 128 MiB pumped with
 * 4 KiB and with 1 MiB writes to a receiver in a worker thread, both positive and finite,
 * printed as GB/s for the record; iperf3's figure too when it is installed (it is optional).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureIperf3BytesPerSec, measureLoopbackBytesPerSec } from './loopback.ts';

const MiB = 1024 * 1024;

test('loopback: 4 KiB and 1 MiB writes both move bytes; the figures are reported in GB/s', { timeout: 60_000 }, async (t) => {
  const small = await measureLoopbackBytesPerSec(128 * MiB, 4096);
  const large = await measureLoopbackBytesPerSec(128 * MiB, 1 * MiB);
  for (const rate of [small, large]) assert.ok(Number.isFinite(rate) && rate > 10 * MiB, `rate ${rate}`);
  t.diagnostic(`loopback tcp: 4 KiB writes ${(small / 1e9).toFixed(2)} GB/s, 1 MiB writes ${(large / 1e9).toFixed(2)} GB/s`);
});

test('loopback: iperf3 gives a figure when installed, null when not', { timeout: 60_000 }, async (t) => {
  const rate = await measureIperf3BytesPerSec(1);
  if (rate === null) {
    t.diagnostic('iperf3 unavailable: the benchmark falls back to measureLoopbackBytesPerSec');
    return;
  }
  assert.ok(Number.isFinite(rate) && rate > 10 * MiB, `rate ${rate}`);
  t.diagnostic(`iperf3 loopback: ${(rate / 1e9).toFixed(2)} GB/s`);
});
