/**
 * The host's CPUs, shared by the threads a migration keeps busy: the source's migration thread
 * and the destination's receiving thread while the stream flows (two threads), and the guest's
 * vCPU while its balloon driver works through a free page hint round (one thread: under TCG,
 * zeroing a hint block is the host's work). When more threads are busy than the host has
 * cores, each runs at cores / busy of its speed (an even share, as CFS gives equal threads).
 *
 * Also the host's memory: pages the guest wrote are host-backed, never-touched ones are the
 * shared zero page (see `scanCostNs`); and the fixed cost of the switchover (`switchoverNs`).
 *
 * Effects, re-evaluated at every guest tick:
 * - the stream: the link's bandwidth and the sender's per-page scan cost scale with the share;
 * - the guest: the hint driver's paced clock advances at the share (`share()`).
 *
 * This is what makes free page hinting slow a fast migration down on a small host (the guest
 * lab's 2-core machine: see src/sim/calibration.ts), and why hinting keeps pace at 128 MiB/s
 * (the migration threads sleep most of each rate-limit window) but not at 1 GiB/s.
 *
 * Pure: the world calls `update` with what it sees.
 */
import { assert } from '../lib/assert.ts';
import type { LinkDirection } from './link.ts';

/** Threads a flowing migration stream keeps busy: the sender and the receiver. */
export const STREAM_THREADS = 2;
/** Threads a working hint driver keeps busy: the guest's vCPU. */
export const GUEST_HINT_THREADS = 1;

/** The host and the stream it carries. */
export interface HostCpuConfig {
  /** Cores of the host (Infinity: never shared). */
  readonly cores: number;
  /** The stream's bandwidth, bytes/s, at full speed. */
  readonly bandwidthBytesPerSec: number;
  /** Sender time per page examined in the first pass, ns. */
  readonly scanNsPerPage: number;
  /** Sender time per page examined again (a page the guest wrote), ns; default scanNsPerPage. */
  readonly rescanNsPerPage?: number;
  /** Source time to stop the guest and save its devices at the switchover, ns; default 0. */
  readonly switchoverNs?: number;
}

export class HostCpu {
  /** Cores of the host. */
  readonly cores: number;
  /** The share each busy thread gets now, in (0, 1]. */
  private current = 1;
  /** The stream's configured bandwidth and per-page scan cost. */
  private readonly bandwidthBytesPerSec: number;
  private readonly scanNsPerPage: number;
  /** The stream direction whose bandwidth follows the share (set by `attach`). */
  private stream: LinkDirection<Uint8Array> | null = null;
  /** Times the share changed (for reports). */
  changes = 0;
  /** Pages written again and merged by a sync, not examined since. */
  private rewrittenPending = 0;

  private readonly rescanNsPerPage: number;
  /** Source time to stop the guest and save its devices at the switchover, ns. */
  readonly switchoverNs: number;

  constructor(config: HostCpuConfig) {
    assert(config.cores > 0 && Number.isFinite(config.cores), `host cores must be > 0, got ${config.cores}`);
    this.cores = config.cores;
    this.bandwidthBytesPerSec = config.bandwidthBytesPerSec;
    this.scanNsPerPage = config.scanNsPerPage;
    this.rescanNsPerPage = config.rescanNsPerPage ?? config.scanNsPerPage;
    this.switchoverNs = config.switchoverNs ?? 0;
  }

  /** The share of a busy thread now. */
  share(): number {
    return this.current;
  }

  /**
   * A dirty sync merged `addedPages` pages the guest wrote again since they were sent (or
   * skipped): each will be examined once more, and its memory is host-backed.
   */
  onSync(addedPages: number): void {
    this.rewrittenPending += addedPages;
  }

  /**
   * Sender time to examine `pages` pages at the current share, ns (the link's scan hook).
   * Pages the guest wrote again (counted by `onSync`) cost `rescanNsPerPage`: testing
   * host-backed memory for zero reads it from memory, where never-touched memory is the host's
   * shared zero page, always in cache. They are counted first (the scan order within a pass
   * is not tracked; the totals are right).
   */
  scanCostNs(pages: number): number {
    const rewritten = Math.min(pages, this.rewrittenPending);
    this.rewrittenPending -= rewritten;
    return (rewritten * this.rescanNsPerPage + (pages - rewritten) * this.scanNsPerPage) / this.current;
  }

  /** The stream whose bandwidth follows the share. */
  attach(stream: LinkDirection<Uint8Array>): void {
    this.stream = stream;
  }

  /**
   * Re-evaluates the share at `nowNs` from which threads are busy. `receiverOnly`: the stream's
   * receiver is stalled in a fault (dest-faults.ts) and its sender waits on the full socket, so
   * the stream keeps one thread busy, not two.
   */
  update(nowNs: number, streamBusy: boolean, guestBusy: boolean, receiverOnly = false): void {
    const busy = (streamBusy ? (receiverOnly ? 1 : STREAM_THREADS) : 0) + (guestBusy ? GUEST_HINT_THREADS : 0);
    const next = busy <= this.cores ? 1 : this.cores / busy;
    if (next === this.current) return;
    this.current = next;
    this.changes++;
    this.stream?.setBandwidthAt(nowNs, this.bandwidthBytesPerSec * next);
  }
}
