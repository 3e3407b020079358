// Tests of the bandwidth window and the convergence rule (facts §4.3): window length on QEMU's
// ms clock, the threshold and reported rates computed by hand, the iterate/complete/postcopy
// decision including its boundaries, and the separate sync-first predicate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BUFFER_DELAY_MS,
  closeBandwidthWindow,
  completionMbps,
  isBandwidthWindowDue,
  openBandwidthWindow,
  thresholdBytes,
} from './bandwidth.ts';
import { decideIteration, ramPending, shouldSyncBeforePending, type ConvergenceInput } from './convergence.ts';

const MS = 1_000_000;

test('a window closes only after 100 whole milliseconds', () => {
  const window = openBandwidthWindow(500_000, 0, 0); // 0.5 ms reads as 0 ms
  assert.equal(BUFFER_DELAY_MS, 100);
  assert.equal(isBandwidthWindowDue(window, 99 * MS + 999_999), false);
  assert.equal(isBandwidthWindowDue(window, 100 * MS), true);
  const input = { totalBytes: 1, totalPages: 0, downtimeLimitMs: 300, dirtyPagesRate: 0, remainingBytes: 0 };
  assert.equal(closeBandwidthWindow(window, { ...input, nowNs: 99 * MS }), null);
});

test('a closed window yields threshold, mbps, pages/s as computed by hand', () => {
  const window = openBandwidthWindow(1000 * MS, 5_000_000, 1000);
  const closed = closeBandwidthWindow(window, {
    nowNs: 1100 * MS + 123, totalBytes: 6_000_000, totalPages: 1244, downtimeLimitMs: 300, dirtyPagesRate: 0, remainingBytes: 8_000_000,
  });
  assert.ok(closed !== null);
  const { sample, next } = closed;
  assert.equal(sample.transferredBytes, 1_000_000);
  assert.equal(sample.timeSpentMs, 100);
  assert.equal(sample.bandwidthBytesPerMs, 10_000);
  assert.equal(sample.thresholdBytes, 3_000_000); // 10000 B/ms × 300 ms
  assert.equal(sample.mbps, 80); // 8e6 bits in 0.1 s
  assert.equal(sample.pagesPerSecond, 2440);
  assert.equal(sample.expectedDowntimeMs, null); // dirty rate not measured yet
  assert.deepEqual(next, { startMs: 1100, startBytes: 6_000_000, startPages: 1244 });
});

test('expected downtime updates only with a dirty rate and more than 10000 bytes', () => {
  const base = { nowNs: 150 * MS, totalPages: 0, downtimeLimitMs: 300, remainingBytes: 5_000_000 };
  const window = openBandwidthWindow(0, 0, 0);
  // 1,500,000 bytes in 150 ms = 10000 B/ms; 5,000,000 remaining → 500 ms.
  assert.equal(closeBandwidthWindow(window, { ...base, totalBytes: 1_500_000, dirtyPagesRate: 7 })?.sample.expectedDowntimeMs, 500);
  assert.equal(closeBandwidthWindow(window, { ...base, totalBytes: 10_000, dirtyPagesRate: 7 })?.sample.expectedDowntimeMs, null);
  assert.equal(closeBandwidthWindow(window, { ...base, totalBytes: 1_500_000, dirtyPagesRate: 0 })?.sample.expectedDowntimeMs, null);
  assert.equal(thresholdBytes(333.7, 3), 1001); // truncated like QEMU's uint64 conversion
});

test('completion mbps follows QEMU (the 16M vector: 37645 bytes in 5 ms is 60.232)', () => {
  assert.equal(completionMbps(37645, 5, 0), 60.232);
  assert.equal(completionMbps(1000, 7, 7), null);
});

function input(pre: number, post: number, threshold: number, requested = false, inPostcopy = false): ConvergenceInput {
  return { pendingPrecopyOnlyBytes: pre, pendingPostcopiableBytes: post, thresholdBytes: threshold, postcopyRequested: requested, inPostcopy };
}

test('convergence decision cases, including the boundary', () => {
  assert.equal(decideIteration(input(1000, 0, 999)), 'iterate');
  assert.equal(decideIteration(input(1000, 0, 1000)), 'iterate'); // pending = threshold iterates once more
  assert.equal(decideIteration(input(999, 0, 1000)), 'complete');
  assert.equal(decideIteration(input(0, 0, 0)), 'complete');
  assert.equal(decideIteration(input(4096, 0, 0)), 'iterate'); // threshold 0 before the first window
  // Postcopy: requested, not in postcopy, precopy-only part within the threshold.
  assert.equal(decideIteration(input(0, 10_000, 1000, true)), 'postcopy');
  assert.equal(decideIteration(input(1000, 10_000, 1000, true)), 'postcopy');
  assert.equal(decideIteration(input(1001, 10_000, 1000, true)), 'iterate');
  assert.equal(decideIteration(input(0, 10_000, 1000, false)), 'iterate');
  assert.equal(decideIteration(input(0, 500, 1000, true)), 'complete'); // small enough: plain completion
  // In postcopy: keep going until below the threshold, never "switch" again.
  assert.equal(decideIteration(input(0, 10_000, 1000, true, true)), 'iterate');
  assert.equal(decideIteration(input(0, 999, 1000, true, true)), 'complete');
});

test('the decision is a total function with the documented criteria', () => {
  fc.assert(
    fc.property(fc.nat(1e9), fc.nat(1e9), fc.nat(1e9), fc.boolean(), fc.boolean(), (pre, post, threshold, requested, inPostcopy) => {
      const decision = decideIteration(input(pre, post, threshold, requested, inPostcopy));
      const pending = pre + post;
      if (pending === 0 || pending < threshold) assert.equal(decision, 'complete');
      else if (decision === 'postcopy') assert.ok(requested && !inPostcopy && pre <= threshold);
      else assert.equal(decision, 'iterate');
    }),
  );
});

test('sync first only when below the threshold and not in postcopy', () => {
  assert.equal(shouldSyncBeforePending({ remainingDirtyBytes: 999, thresholdBytes: 1000, inPostcopy: false }), true);
  assert.equal(shouldSyncBeforePending({ remainingDirtyBytes: 1000, thresholdBytes: 1000, inPostcopy: false }), false);
  assert.equal(shouldSyncBeforePending({ remainingDirtyBytes: 0, thresholdBytes: 1000, inPostcopy: true }), false);
  assert.equal(shouldSyncBeforePending({ remainingDirtyBytes: 0, thresholdBytes: 0, inPostcopy: false }), false);
});

test('RAM pending is postcopiable exactly when postcopy-ram is on', () => {
  assert.deepEqual(ramPending(8192, true), { precopyOnlyBytes: 0, postcopiableBytes: 8192 });
  assert.deepEqual(ramPending(8192, false), { precopyOnlyBytes: 8192, postcopiableBytes: 0 });
});
