/**
 * QEMU 7.2's migration rate limit (facts §4.4), as an immutable value and pure functions over
 * `nowNs`. Each window of at least 100 ms (BUFFER_DELAY) may carry max-bandwidth / 10 bytes
 * (XFER_LIMIT_RATIO); a limit of 0 means unlimited. QEMU stops sending once the bytes counted in
 * the window *exceed* the budget (so the write that crosses it still goes out), then waits for
 * the window to end. Urgent sends (postcopy page requests) go out even when over budget, and
 * still count.
 *
 * In QEMU the window is the bandwidth window of bandwidth.ts (migration_update_counters resets
 * both); a caller that closes a bandwidth window should call `resetRateWindow` at the same
 * `nowNs`. `rollRateWindow` applies the same ≥ 100 ms rule on its own for callers that don't.
 *
 * What it deliberately doesn't do: sleep, or pick the limit (the caller passes max-bandwidth in
 * precopy, max-postcopy-bandwidth after the switch or on resume, unlimited at completion).
 */
import { NS_PER_MS } from '../lib/units.ts';
import { BUFFER_DELAY_MS, msOf } from './bandwidth.ts';

/** Windows per second: a window's budget is bandwidth / XFER_LIMIT_RATIO. */
export const XFER_LIMIT_RATIO = 10;

/** The limiter's state. */
export interface RateLimiter {
  /** Bytes allowed per window; 0 means unlimited (QEMU's rate_limit_max). */
  readonly maxBytesPerWindow: number;
  /** Start of the current window, ms. */
  readonly windowStartMs: number;
  /** Bytes counted in the current window (QEMU's rate_limit_used). */
  readonly usedBytes: number;
}

/** What the sender may do now. */
export type RateDecision =
  | { readonly kind: 'send' }
  | { readonly kind: 'wait'; /** When the window ends and the budget renews, ns. */ readonly untilNs: number };

/**
 * The per-window budget for a bandwidth in bytes/s: floor(bandwidth / 10). QEMU quirk kept:
 * a bandwidth below 10 bytes/s yields 0, which means unlimited.
 */
export function rateLimitBytesPerWindow(bandwidthBytesPerSec: number): number {
  if (!Number.isFinite(bandwidthBytesPerSec)) return 0;
  return Math.floor(bandwidthBytesPerSec / XFER_LIMIT_RATIO);
}

/** A limiter for `bandwidthBytesPerSec` (0 = unlimited) with a window opening now. */
export function createRateLimiter(bandwidthBytesPerSec: number, nowNs: number): RateLimiter {
  return { maxBytesPerWindow: rateLimitBytesPerWindow(bandwidthBytesPerSec), windowStartMs: msOf(nowNs), usedBytes: 0 };
}

/** The same window with a new bandwidth (migrate-set-parameters applies at once). */
export function setRateLimit(limiter: RateLimiter, bandwidthBytesPerSec: number): RateLimiter {
  return { ...limiter, maxBytesPerWindow: rateLimitBytesPerWindow(bandwidthBytesPerSec) };
}

/** No limit from now on (QEMU sets INT64_MAX for the completion stage). */
export function setUnlimited(limiter: RateLimiter): RateLimiter {
  return { ...limiter, maxBytesPerWindow: 0 };
}

/** A fresh window opening now with nothing counted (QEMU's qemu_file_reset_rate_limit). */
export function resetRateWindow(limiter: RateLimiter, nowNs: number): RateLimiter {
  return { ...limiter, windowStartMs: msOf(nowNs), usedBytes: 0 };
}

/**
 * True when the window may end. Criteria: at least BUFFER_DELAY_MS whole milliseconds since it
 * opened.
 */
export function isRateWindowDue(limiter: RateLimiter, nowNs: number): boolean {
  return msOf(nowNs) >= limiter.windowStartMs + BUFFER_DELAY_MS;
}

/** Starts a new window if the current one is due; otherwise returns `limiter` unchanged. */
export function rollRateWindow(limiter: RateLimiter, nowNs: number): RateLimiter {
  return isRateWindowDue(limiter, nowNs) ? resetRateWindow(limiter, nowNs) : limiter;
}

/**
 * True when ordinary sends must wait (QEMU's qemu_file_rate_limit, without its error and
 * shutdown cases). Criteria: a limit is set and the bytes counted exceed it.
 */
export function isOverBudget(limiter: RateLimiter): boolean {
  return limiter.maxBytesPerWindow > 0 && limiter.usedBytes > limiter.maxBytesPerWindow;
}

/**
 * Whether to send now. Urgent sends always go; otherwise over budget means waiting until the
 * window's end (start + 100 ms). Call `rollRateWindow` (or `resetRateWindow`) first.
 */
export function rateDecision(limiter: RateLimiter, urgent: boolean): RateDecision {
  if (urgent || !isOverBudget(limiter)) return { kind: 'send' };
  return { kind: 'wait', untilNs: (limiter.windowStartMs + BUFFER_DELAY_MS) * NS_PER_MS };
}

/** Counts `bytes` sent (every byte counts, urgent or not). */
export function recordSent(limiter: RateLimiter, bytes: number): RateLimiter {
  return { ...limiter, usedBytes: limiter.usedBytes + bytes };
}

/**
 * Bytes that may still be sent before the limiter blocks: up to and including the budget, plus
 * whatever single write crosses it. Infinity when unlimited.
 */
export function budgetLeftBytes(limiter: RateLimiter): number {
  if (limiter.maxBytesPerWindow === 0) return Infinity;
  return Math.max(0, limiter.maxBytesPerWindow - limiter.usedBytes);
}

/** Rolls the window if due, then decides: the usual call before each send. */
export function checkRate(
  limiter: RateLimiter,
  nowNs: number,
  urgent: boolean,
): { readonly limiter: RateLimiter; readonly decision: RateDecision } {
  const rolled = rollRateWindow(limiter, nowNs);
  return { limiter: rolled, decision: rateDecision(rolled, urgent) };
}
