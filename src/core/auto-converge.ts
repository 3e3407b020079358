/**
 * QEMU 7.2's auto-converge (capability `auto-converge`, facts §4.5), pure. At the end of each
 * sync period (a bitmap sync more than 1000 ms after the previous period ended) the source
 * compares the bytes the guest dirtied in the period with the bytes it sent. When dirtied >
 * sent × throttle-trigger-threshold / 100 for the second time (the counter resets only after
 * acting, so the two times need not be consecutive), it starts throttling the vCPUs at
 * cpu-throttle-initial %, or raises the throttle by cpu-throttle-increment % (tailslow: by at
 * most what would make the dirty rate match the threshold), capped at max-cpu-throttle and at
 * QEMU's 1..99 % bounds.
 *
 * Period rule: QEMU tests `end_time > last_period_end + 1000` (strictly more than one second,
 * whole ms). The facts' "≥ 1 s" is read as this.
 *
 * What it deliberately doesn't do: sleep vCPUs (the guest model applies `throttleSleepNs`), or
 * stop throttling when migration ends (the caller resets the state).
 */
import { NS_PER_MS } from '../lib/units.ts';

/** QEMU's CPU_THROTTLE_PCT_MIN and CPU_THROTTLE_PCT_MAX. */
export const CPU_THROTTLE_PCT_MIN = 1;
export const CPU_THROTTLE_PCT_MAX = 99;
/** A sync period must last more than this, ms. */
export const SYNC_PERIOD_MS = 1000;
/** QEMU's CPU_THROTTLE_TIMESLICE_NS: a throttled vCPU runs this long between sleeps. */
export const CPU_THROTTLE_TIMESLICE_NS = 10 * NS_PER_MS;

/** The parameters auto-converge reads (the MigrationParameters fields of the same names). */
export interface AutoConvergeParams {
  readonly throttleTriggerThresholdPct: number;
  readonly cpuThrottleInitialPct: number;
  readonly cpuThrottleIncrementPct: number;
  readonly maxCpuThrottlePct: number;
  readonly cpuThrottleTailslow: boolean;
}

/** Auto-converge's state across sync periods. */
export interface AutoConvergeState {
  /** Current throttle, % of vCPU time taken away; 0 = not throttling. */
  readonly throttlePct: number;
  /** Periods that found the dirty rate too high since the last throttle change. */
  readonly dirtyRateHighCount: number;
}

/** What one sync period measured. */
export interface SyncPeriodSample {
  /** Pages dirtied in the period × target page size. */
  readonly bytesDirtyPeriod: number;
  /** RAM bytes sent since the previous period ended (ram_counters.transferred delta). */
  readonly bytesXferPeriod: number;
}

/** Not throttling, nothing counted. */
export const AUTO_CONVERGE_IDLE: AutoConvergeState = Object.freeze({ throttlePct: 0, dirtyRateHighCount: 0 });

/** QEMU's cpu_throttle_set clamp. */
function clampThrottle(pct: number): number {
  return Math.max(CPU_THROTTLE_PCT_MIN, Math.min(CPU_THROTTLE_PCT_MAX, pct));
}

/**
 * True when a sync at `nowMs` ends a period begun at `periodStartMs`. Criteria: strictly more
 * than SYNC_PERIOD_MS have passed.
 */
export function isSyncPeriodDue(periodStartMs: number, nowMs: number): boolean {
  return nowMs > periodStartMs + SYNC_PERIOD_MS;
}

/** dirty-pages-rate of a period: pages dirtied × 1000 / period length in ms, truncated. */
export function dirtyPagesRate(pagesDirtiedInPeriod: number, periodMs: number): number {
  return Math.floor((pagesDirtiedInPeriod * 1000) / periodMs);
}

/** The dirtied-bytes threshold of a period: sent × trigger % / 100, truncated. */
export function bytesDirtyThreshold(bytesXferPeriod: number, triggerThresholdPct: number): number {
  return Math.floor((bytesXferPeriod * triggerThresholdPct) / 100);
}

/** QEMU's mig_throttle_guest_down: the new throttle once auto-converge decided to act. */
export function throttleGuestDown(
  throttleNowPct: number,
  params: AutoConvergeParams,
  bytesDirtyPeriod: number,
  bytesDirtyThresholdValue: number,
): number {
  if (throttleNowPct === 0) return clampThrottle(params.cpuThrottleInitialPct);
  let increment = params.cpuThrottleIncrementPct;
  if (params.cpuThrottleTailslow) {
    const cpuNow = 100 - throttleNowPct;
    const cpuIdeal = Math.trunc(cpuNow * ((bytesDirtyThresholdValue * 1.0) / bytesDirtyPeriod));
    increment = Math.min(cpuNow - cpuIdeal, params.cpuThrottleIncrementPct);
  }
  return clampThrottle(Math.min(throttleNowPct + increment, params.maxCpuThrottlePct));
}

/**
 * One sync period of auto-converge (QEMU's migration_trigger_throttle). Criteria for acting:
 * dirtied bytes > sent × trigger % / 100, and this is the second such period since the last
 * action. Returns the new state and whether the throttle was set or raised.
 */
export function autoConvergeStep(
  state: AutoConvergeState,
  params: AutoConvergeParams,
  sample: SyncPeriodSample,
): { readonly state: AutoConvergeState; readonly throttled: boolean } {
  const threshold = bytesDirtyThreshold(sample.bytesXferPeriod, params.throttleTriggerThresholdPct);
  if (sample.bytesDirtyPeriod <= threshold) return { state, throttled: false };
  const count = state.dirtyRateHighCount + 1;
  if (count < 2) return { state: { ...state, dirtyRateHighCount: count }, throttled: false };
  const throttlePct = throttleGuestDown(state.throttlePct, params, sample.bytesDirtyPeriod, threshold);
  return { state: { throttlePct, dirtyRateHighCount: 0 }, throttled: true };
}

/**
 * How long a vCPU sleeps after each CPU_THROTTLE_TIMESLICE_NS of running at `throttlePct`:
 * pct / (1 − pct) × timeslice, truncated to ns (0 when not throttling).
 */
export function throttleSleepNs(throttlePct: number): number {
  if (throttlePct <= 0) return 0;
  const pct = throttlePct / 100;
  return Math.trunc((pct / (1 - pct)) * CPU_THROTTLE_TIMESLICE_NS);
}
