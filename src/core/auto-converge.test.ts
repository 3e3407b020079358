// Tests of auto-converge (facts §4.5) against sequences computed by hand: the "second time"
// counter (not necessarily consecutive), initial/increment/max, the 1..99 clamp, tailslow, the
// period rule and the vCPU sleep per timeslice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AUTO_CONVERGE_IDLE,
  autoConvergeStep,
  bytesDirtyThreshold,
  dirtyPagesRate,
  isSyncPeriodDue,
  throttleSleepNs,
  type AutoConvergeParams,
  type AutoConvergeState,
} from './auto-converge.ts';

const MB = 1_000_000;
const DEFAULTS: AutoConvergeParams = {
  throttleTriggerThresholdPct: 50,
  cpuThrottleInitialPct: 20,
  cpuThrottleIncrementPct: 10,
  maxCpuThrottlePct: 99,
  cpuThrottleTailslow: false,
};

/** Runs periods of (dirtied MB, sent MB) and returns the throttle after each. */
function run(params: AutoConvergeParams, periods: Array<[number, number]>, start: AutoConvergeState = AUTO_CONVERGE_IDLE): number[] {
  let state = start;
  return periods.map(([dirty, xfer]) => {
    state = autoConvergeStep(state, params, { bytesDirtyPeriod: dirty * MB, bytesXferPeriod: xfer * MB }).state;
    return state.throttlePct;
  });
}

test('the trigger threshold is sent × pct / 100, truncated', () => {
  assert.equal(bytesDirtyThreshold(100 * MB, 50), 50 * MB);
  assert.equal(bytesDirtyThreshold(333, 50), 166);
});

test('throttling starts on the second high period and rises by the increment (hand computed)', () => {
  // Sent 100 MB per period, so the threshold is 50 MB dirtied.
  // p1 60 > 50: count 1. p2 40: not high, count stays 1. p3 70: count 2 → start at 20%, count 0.
  // p4 80: count 1. p5 80: → 30%. p6 50: not high (needs >). p7 51: count 1. p8 90: → 40%.
  const throttles = run(DEFAULTS, [[60, 100], [40, 100], [70, 100], [80, 100], [80, 100], [50, 100], [51, 100], [90, 100]]);
  assert.deepEqual(throttles, [0, 0, 20, 20, 30, 30, 30, 40]);
});

test('the throttle is capped by max-cpu-throttle and by 99', () => {
  const capped = run({ ...DEFAULTS, maxCpuThrottlePct: 35 }, Array.from({ length: 8 }, () => [90, 100] as [number, number]));
  assert.deepEqual(capped, [0, 20, 20, 30, 30, 35, 35, 35]);
  const big = run({ ...DEFAULTS, cpuThrottleInitialPct: 95, cpuThrottleIncrementPct: 9 }, Array.from({ length: 4 }, () => [90, 100] as [number, number]));
  assert.deepEqual(big, [0, 95, 95, 99]);
});

test('tailslow raises by at most what would bring the dirty rate down to the threshold', () => {
  const tailslow = { ...DEFAULTS, cpuThrottleTailslow: true };
  // At 20%: cpu_now 80; dirty 100 vs threshold 50 → ideal 40 → step min(40, 10) = 10 → 30%.
  const fromTwenty: AutoConvergeState = { throttlePct: 20, dirtyRateHighCount: 1 };
  assert.equal(autoConvergeStep(fromTwenty, tailslow, { bytesDirtyPeriod: 100 * MB, bytesXferPeriod: 100 * MB }).state.throttlePct, 30);
  // At 30%: cpu_now 70; dirty 55 vs 50 → ideal trunc(70 × 50/55) = 63 → step min(7, 10) = 7 → 37%.
  const fromThirty: AutoConvergeState = { throttlePct: 30, dirtyRateHighCount: 1 };
  const step = autoConvergeStep(fromThirty, tailslow, { bytesDirtyPeriod: 55 * MB, bytesXferPeriod: 100 * MB });
  assert.deepEqual(step, { state: { throttlePct: 37, dirtyRateHighCount: 0 }, throttled: true });
});

test('sync periods last more than 1000 ms; the dirty rate is per second, truncated', () => {
  assert.equal(isSyncPeriodDue(5000, 6000), false);
  assert.equal(isSyncPeriodDue(5000, 6001), true);
  assert.equal(dirtyPagesRate(500, 1001), 499);
  assert.equal(dirtyPagesRate(3000, 1500), 2000);
});

test('a throttled vCPU sleeps pct/(1 − pct) of a 10 ms timeslice', () => {
  assert.equal(throttleSleepNs(0), 0);
  assert.equal(throttleSleepNs(50), 10_000_000);
  assert.equal(throttleSleepNs(20), 2_500_000);
  assert.equal(throttleSleepNs(80), 40_000_000);
});
