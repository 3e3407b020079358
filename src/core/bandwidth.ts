/**
 * QEMU 7.2's bandwidth window (migration_update_counters): at least BUFFER_DELAY (100 ms) long;
 * when it closes, the bytes sent in it give the bandwidth in bytes/ms, and from that the
 * convergence threshold (bandwidth × downtime-limit), `mbps`, `pages-per-second` and, under
 * conditions, `expected-downtime`. Also the mbps QEMU reports at completion.
 *
 * Time: the core passes integer nanoseconds; QEMU measures this window on a millisecond clock,
 * so window arithmetic uses whole milliseconds (floor(ns / 1e6)) exactly as QEMU does, including
 * its integer truncations. The same window also resets QEMU's rate limiter (see rate-limiter.ts).
 *
 * What it deliberately doesn't do: count bytes (the caller passes running totals) or decide
 * anything (convergence.ts does).
 */
import { NS_PER_MS } from '../lib/units.ts';

/** Minimum window length, ms (QEMU's BUFFER_DELAY). */
export const BUFFER_DELAY_MS = 100;

/** Milliseconds of a nanosecond time, as QEMU's ms clock would read it. */
export function msOf(timeNs: number): number {
  return Math.floor(timeNs / NS_PER_MS);
}

/** The open window: where it started and the running totals at that moment. */
export interface BandwidthWindow {
  /** Start of the window, ms (QEMU's iteration_start_time). */
  readonly startMs: number;
  /** Total bytes sent when the window started (QEMU's iteration_initial_bytes). */
  readonly startBytes: number;
  /** Total pages sent when the window started (QEMU's iteration_initial_pages). */
  readonly startPages: number;
}

/** What a closed window measured. */
export interface BandwidthSample {
  /** Bytes sent in the window. */
  readonly transferredBytes: number;
  /** Window length, ms (≥ BUFFER_DELAY_MS). */
  readonly timeSpentMs: number;
  /** transferredBytes / timeSpentMs. */
  readonly bandwidthBytesPerMs: number;
  /** Convergence threshold: bandwidth × downtime-limit, truncated (QEMU's threshold_size). */
  readonly thresholdBytes: number;
  /** Megabits per second over the window (QEMU's s->mbps while migrating). */
  readonly mbps: number;
  /** Pages per second over the window, unrounded (the query truncates it). */
  readonly pagesPerSecond: number;
  /** New expected downtime in ms, or null when QEMU keeps the previous value. */
  readonly expectedDowntimeMs: number | null;
}

/** Running totals and settings the window closes over. */
export interface BandwidthInput {
  /** Now, ns. */
  readonly nowNs: number;
  /** Total bytes sent on the migration stream so far (QEMU: file bytes + multifd bytes). */
  readonly totalBytes: number;
  /** Total pages sent so far (normal + zero + compressed + xbzrle). */
  readonly totalPages: number;
  /** The downtime-limit parameter, ms. */
  readonly downtimeLimitMs: number;
  /** The current dirty-pages-rate (pages/s); 0 means "not measured yet". */
  readonly dirtyPagesRate: number;
  /** Bytes still dirty (QEMU's ram_counters.remaining). */
  readonly remainingBytes: number;
}

/** A window starting now at the given totals. */
export function openBandwidthWindow(nowNs: number, totalBytes: number, totalPages: number): BandwidthWindow {
  return { startMs: msOf(nowNs), startBytes: totalBytes, startPages: totalPages };
}

/**
 * True when the window may close. Criteria: at least BUFFER_DELAY_MS whole milliseconds have
 * passed since it opened.
 */
export function isBandwidthWindowDue(window: BandwidthWindow, nowNs: number): boolean {
  return msOf(nowNs) >= window.startMs + BUFFER_DELAY_MS;
}

/** threshold_size: bytes that can be sent within the downtime limit at this bandwidth. */
export function thresholdBytes(bandwidthBytesPerMs: number, downtimeLimitMs: number): number {
  return Math.trunc(bandwidthBytesPerMs * downtimeLimitMs);
}

/** Megabits per second of `bytes` sent in `ms` (QEMU's formula, 10^6 bits per megabit). */
export function mbpsOf(bytes: number, ms: number): number {
  return ((bytes * 8.0) / (ms / 1000.0)) / 1000.0 / 1000.0;
}

/**
 * Whether a window's sample may update expected-downtime. Criteria: the dirty-pages-rate is not
 * 0 (a sync period has measured it) and more than 10000 bytes were sent in the window.
 */
export function updatesExpectedDowntime(dirtyPagesRate: number, transferredBytes: number): boolean {
  return dirtyPagesRate !== 0 && transferredBytes > 10000;
}

/**
 * Closes the window if it is due. Returns the sample and the next window (opened now at the
 * current totals), or null when fewer than BUFFER_DELAY_MS have passed.
 */
export function closeBandwidthWindow(
  window: BandwidthWindow,
  input: BandwidthInput,
): { readonly sample: BandwidthSample; readonly next: BandwidthWindow } | null {
  if (!isBandwidthWindowDue(window, input.nowNs)) return null;
  const transferredBytes = input.totalBytes - window.startBytes;
  const timeSpentMs = msOf(input.nowNs) - window.startMs;
  const bandwidthBytesPerMs = transferredBytes / timeSpentMs;
  const pages = input.totalPages - window.startPages;
  const sample: BandwidthSample = {
    transferredBytes,
    timeSpentMs,
    bandwidthBytesPerMs,
    thresholdBytes: thresholdBytes(bandwidthBytesPerMs, input.downtimeLimitMs),
    mbps: mbpsOf(transferredBytes, timeSpentMs),
    pagesPerSecond: pages / (timeSpentMs / 1000.0),
    expectedDowntimeMs: updatesExpectedDowntime(input.dirtyPagesRate, transferredBytes)
      ? Math.trunc(input.remainingBytes / bandwidthBytesPerMs)
      : null,
  };
  return { sample, next: openBandwidthWindow(input.nowNs, input.totalBytes, input.totalPages) };
}

/**
 * The mbps QEMU reports once completed: all stream bytes over the transfer time (total time
 * minus setup time), or null when that time is 0 (QEMU then keeps the last window's value).
 */
export function completionMbps(totalStreamBytes: number, totalTimeMs: number, setupTimeMs: number): number | null {
  const transferTimeMs = totalTimeMs - setupTimeMs;
  if (transferTimeMs === 0) return null;
  return (totalStreamBytes * 8.0) / transferTimeMs / 1000;
}
