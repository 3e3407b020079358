/**
 * MigrationStats accounting of a QEMU 7.2 source, and the `query-migrate` reply built from it
 * with QEMU's presence rules (facts §9.3): which members appear in setup, active, completed,
 * failed, and so on. Byte counts are attributed to a phase the way ram_transferred_add does:
 * precopy while the guest runs, postcopy once the source is in postcopy, downtime otherwise.
 *
 * This is a small mutable accumulator owned by one source machine (counters are bumped per
 * page; an immutable copy per page would cost more than it shows). Times are integer ns in,
 * whole ms out, computed as differences of floor(ns / 1e6) like QEMU's ms clock.
 *
 * Two byte counts exist and must not be mixed: `transferred` (RAM bytes accounted by the RAM
 * code: page headers and data, EOS markers) lives here; the stream's total bytes (everything
 * written, used for bandwidth and for the completion mbps) are the caller's and are passed in.
 *
 * What it deliberately doesn't do: xbzrle, compression, disk or vfio members (not modelled),
 * the destination's blocktime (blocktime.ts), or QEMU's huge-downtime quirk after a postcopy
 * switch shorter than 1 ms (we keep the true 0).
 */
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { completionMbps, msOf, type BandwidthSample } from './bandwidth.ts';
import type { MigrationStatus } from './status.ts';

/** Which of precopy-bytes, downtime-bytes and postcopy-bytes a transfer counts toward. */
export type TransferPhase = 'precopy' | 'downtime' | 'postcopy';

/**
 * QEMU's attribution rule. Criteria: guest running → precopy; else in postcopy (the source's
 * status is a postcopy one) → postcopy; else → downtime.
 */
export function transferPhase(vmRunning: boolean, inPostcopy: boolean): TransferPhase {
  if (vmRunning) return 'precopy';
  return inPostcopy ? 'postcopy' : 'downtime';
}

/** MigrationStats as `query-migrate` shows it (all members required), in QEMU's wire order. */
export interface MigrationStatsQmp {
  readonly total: number;
  readonly 'postcopy-requests': number;
  readonly 'dirty-sync-count': number;
  readonly 'multifd-bytes': number;
  readonly 'pages-per-second': number;
  readonly 'downtime-bytes': number;
  readonly 'page-size': number;
  readonly remaining: number;
  readonly 'postcopy-bytes': number;
  readonly mbps: number;
  readonly transferred: number;
  readonly 'dirty-sync-missed-zero-copy': number;
  readonly 'precopy-bytes': number;
  readonly duplicate: number;
  readonly 'dirty-pages-rate': number;
  readonly skipped: number;
  readonly 'normal-bytes': number;
  readonly normal: number;
}

/** The MigrationInfo members livemig produces (all optional, as in QAPI). */
export interface MigrationInfoQmp {
  readonly 'expected-downtime'?: number;
  readonly status?: MigrationStatus;
  readonly 'error-desc'?: string;
  readonly 'setup-time'?: number;
  readonly downtime?: number;
  readonly 'total-time'?: number;
  readonly 'cpu-throttle-percentage'?: number;
  readonly ram?: MigrationStatsQmp;
  readonly 'blocked-reasons'?: readonly string[];
  readonly 'postcopy-blocktime'?: number;
  readonly 'postcopy-vcpu-blocktime'?: readonly number[];
  readonly 'socket-address'?: readonly unknown[];
}

/** Source statuses that show time and RAM statistics while the migration is under way. */
const IN_PROGRESS_WITH_STATS: ReadonlySet<MigrationStatus> = new Set<MigrationStatus>([
  'active',
  'cancelling',
  'postcopy-active',
  'pre-switchover',
  'device',
  'postcopy-paused',
  'postcopy-recover',
]);

export class MigrationStatsAccumulator {
  /** Target page size, bytes (page-size; normal-bytes = normal × this). */
  readonly pageSizeBytes: number;
  /** RAM bytes accounted so far (transferred). */
  transferredBytes = 0;
  /** RAM bytes accounted while the guest ran (precopy-bytes). */
  precopyBytes = 0;
  /** RAM bytes accounted while the guest was stopped outside postcopy (downtime-bytes). */
  downtimeBytes = 0;
  /** RAM bytes accounted in postcopy (postcopy-bytes). */
  postcopyBytes = 0;
  /** Bytes sent on multifd channels (multifd-bytes). */
  multifdBytes = 0;
  /** Zero pages sent as a flag only (duplicate). */
  duplicatePages = 0;
  /** Pages sent with their contents (normal). */
  normalPages = 0;
  /** Bytes of guest RAM being migrated (total). */
  totalBytes = 0;
  /** Dirty bytes still to send (remaining), set by the caller from the bitmap count. */
  remainingBytes = 0;
  /** Pages dirtied per second in the last sync period (dirty-pages-rate). */
  dirtyPagesRate = 0;
  /** Dirty bitmap syncs so far (dirty-sync-count). */
  dirtySyncCount = 0;
  /** Page requests served in postcopy (postcopy-requests). */
  postcopyRequests = 0;
  /** Zero-copy flushes missed (dirty-sync-missed-zero-copy); always 0 without zero copy. */
  dirtySyncMissedZeroCopy = 0;
  /** Last bandwidth window's megabits per second, or the completion value (mbps). */
  mbps = 0;
  /** Last bandwidth window's pages per second, unrounded (pages-per-second truncates it). */
  pagesPerSecond = 0;
  /** Expected downtime, ms (starts at the downtime limit). */
  expectedDowntimeMs = 0;
  /** Current auto-converge throttle, %; 0 = not throttling (then not reported). */
  cpuThrottlePct = 0;
  /** Why the migration failed (error-desc), when it did. */
  errorDesc: string | null = null;
  /** Migration blockers to report (blocked-reasons), in any status. */
  blockedReasons: readonly string[] = [];
  /** When the migration started, ns (null before `begin`). */
  private startNs: number | null = null;
  /** Setup time, ms (0 until setup is done). */
  private setupTimeMs = 0;
  /** When the guest was stopped for switchover, ns. */
  private downtimeStartNs: number | null = null;
  /** Downtime, ms, once known (postcopy: at the switch; precopy: at completion). */
  private downtimeMs: number | null = null;
  /** Total time, ms, once completed. */
  private totalTimeMs: number | null = null;

  constructor(pageSizeBytes: number = TARGET_PAGE_SIZE) {
    this.pageSizeBytes = pageSizeBytes;
  }

  /** Starts a migration now: counters cleared, expected downtime = the downtime limit. */
  begin(nowNs: number, totalBytes: number, downtimeLimitMs: number): void {
    const blocked = this.blockedReasons;
    // Every field (private ones too) back to its initial value; blockers outlive a migration.
    Object.assign(this, new MigrationStatsAccumulator(this.pageSizeBytes));
    this.blockedReasons = blocked;
    this.startNs = nowNs;
    this.totalBytes = totalBytes;
    this.expectedDowntimeMs = downtimeLimitMs;
  }

  /** Setup finished now (setup-time). */
  markSetupDone(nowNs: number): void {
    this.setupTimeMs = msOf(nowNs) - msOf(this.requireStart());
  }

  /** Accounts `bytes` of RAM stream output in `phase`. */
  addTransferred(bytes: number, phase: TransferPhase): void {
    this.transferredBytes += bytes;
    if (phase === 'precopy') this.precopyBytes += bytes;
    else if (phase === 'downtime') this.downtimeBytes += bytes;
    else this.postcopyBytes += bytes;
  }

  /** Counts zero pages sent as a flag (duplicate). */
  addZeroPages(count: number): void {
    this.duplicatePages += count;
  }

  /** Counts pages sent with contents (normal). */
  addNormalPages(count: number): void {
    this.normalPages += count;
  }

  /** Pages sent in any form: the page count bandwidth windows use. */
  totalTransferredPages(): number {
    return this.normalPages + this.duplicatePages;
  }

  /** One dirty bitmap sync happened (dirty-sync-count). */
  recordDirtySync(): void {
    this.dirtySyncCount++;
  }

  /** One postcopy page request was served (postcopy-requests). */
  recordPostcopyRequest(): void {
    this.postcopyRequests++;
  }

  /** Takes mbps, pages-per-second and (when QEMU would) expected-downtime from a window. */
  applyBandwidthSample(sample: BandwidthSample): void {
    this.mbps = sample.mbps;
    this.pagesPerSecond = sample.pagesPerSecond;
    if (sample.expectedDowntimeMs !== null) this.expectedDowntimeMs = sample.expectedDowntimeMs;
  }

  /** The guest was stopped for switchover now (downtime starts). */
  markDowntimeStart(nowNs: number): void {
    this.downtimeStartNs = nowNs;
  }

  /** Postcopy: the switch package is sent, the destination runs; downtime ends now. */
  markPostcopyDowntimeEnd(nowNs: number): void {
    this.downtimeMs = msOf(nowNs) - msOf(this.requireDowntimeStart());
  }

  /**
   * Completion now: total-time, downtime (if postcopy did not set it), and QEMU's completion
   * mbps over all `totalStreamBytes` written.
   */
  complete(nowNs: number, totalStreamBytes: number): void {
    const endMs = msOf(nowNs);
    this.totalTimeMs = endMs - msOf(this.requireStart());
    if (this.downtimeMs === null) this.downtimeMs = endMs - msOf(this.requireDowntimeStart());
    const mbps = completionMbps(totalStreamBytes, this.totalTimeMs, this.setupTimeMs);
    if (mbps !== null) this.mbps = mbps;
  }

  /** Records the failure text shown as error-desc. */
  fail(errorDesc: string): void {
    this.errorDesc = errorDesc;
  }

  /** The `ram` member. In `completed`, remaining and dirty-pages-rate read 0. */
  toStats(status: MigrationStatus): MigrationStatsQmp {
    const completed = status === 'completed';
    return {
      total: this.totalBytes,
      'postcopy-requests': this.postcopyRequests,
      'dirty-sync-count': this.dirtySyncCount,
      'multifd-bytes': this.multifdBytes,
      'pages-per-second': Math.trunc(this.pagesPerSecond),
      'downtime-bytes': this.downtimeBytes,
      'page-size': this.pageSizeBytes,
      remaining: completed ? 0 : this.remainingBytes,
      'postcopy-bytes': this.postcopyBytes,
      mbps: this.mbps,
      transferred: this.transferredBytes,
      'dirty-sync-missed-zero-copy': this.dirtySyncMissedZeroCopy,
      'precopy-bytes': this.precopyBytes,
      duplicate: this.duplicatePages,
      'dirty-pages-rate': completed ? 0 : this.dirtyPagesRate,
      skipped: 0,
      'normal-bytes': this.normalPages * this.pageSizeBytes,
      normal: this.normalPages,
    };
  }

  /**
   * The source's `query-migrate` reply in `status` at `nowNs`, following QEMU 7.2:
   * - none → nothing (only blocked-reasons, if any);
   * - setup → status;
   * - active, cancelling, postcopy-active/-paused/-recover, pre-switchover, device → status,
   *   setup-time, total-time so far, expected-downtime, ram, cpu-throttle-percentage while
   *   throttling;
   * - completed → status, setup-time, total-time, downtime, ram (+ cpu-throttle-percentage
   *   if still throttling);
   * - failed → status and error-desc when known; cancelled, wait-unplug, colo → status.
   * blocked-reasons appears in every status when there are blockers.
   */
  toQueryMigrate(status: MigrationStatus, nowNs: number): MigrationInfoQmp {
    const info: Record<string, unknown> = {};
    if (IN_PROGRESS_WITH_STATS.has(status)) {
      info['expected-downtime'] = this.expectedDowntimeMs;
    }
    if (status !== 'none') info.status = status;
    if (status === 'failed' && this.errorDesc !== null) info['error-desc'] = this.errorDesc;
    if (IN_PROGRESS_WITH_STATS.has(status) || status === 'completed') {
      info['setup-time'] = this.setupTimeMs;
      if (status === 'completed') {
        info.downtime = this.downtimeMs ?? 0;
        info['total-time'] = this.totalTimeMs ?? msOf(nowNs) - msOf(this.requireStart());
      } else {
        info['total-time'] = msOf(nowNs) - msOf(this.requireStart());
      }
      if (this.cpuThrottlePct > 0) info['cpu-throttle-percentage'] = this.cpuThrottlePct;
      info.ram = this.toStats(status);
    }
    if (this.blockedReasons.length > 0) info['blocked-reasons'] = [...this.blockedReasons];
    return info as MigrationInfoQmp;
  }

  private requireStart(): number {
    if (this.startNs === null) throw new RangeError('MigrationStatsAccumulator: begin() was not called');
    return this.startNs;
  }

  private requireDowntimeStart(): number {
    if (this.downtimeStartNs === null) throw new RangeError('MigrationStatsAccumulator: markDowntimeStart() was not called');
    return this.downtimeStartNs;
  }
}

/**
 * The destination's `query-migrate` reply: status in any state but none; the postcopy blocktime
 * members once completed, when blocktime was tracked; socket-address when listening on TCP.
 */
export function toDestinationQueryMigrate(
  status: MigrationStatus,
  options: {
    readonly blocktime?: { readonly 'postcopy-blocktime': number; readonly 'postcopy-vcpu-blocktime': readonly number[] } | null;
    readonly socketAddress?: readonly unknown[];
  } = {},
): MigrationInfoQmp {
  const info: Record<string, unknown> = {};
  if (options.socketAddress !== undefined) info['socket-address'] = options.socketAddress;
  if (status === 'none') return info as MigrationInfoQmp;
  info.status = status;
  if (status === 'completed' && options.blocktime) {
    info['postcopy-blocktime'] = options.blocktime['postcopy-blocktime'];
    info['postcopy-vcpu-blocktime'] = [...options.blocktime['postcopy-vcpu-blocktime']];
  }
  return info as MigrationInfoQmp;
}

/**
 * One process's `query-migrate`: QEMU fills the destination part first, then the source part,
 * whose members win (a source that never migrated adds nothing).
 */
export function mergeQueryMigrate(destination: MigrationInfoQmp, source: MigrationInfoQmp): MigrationInfoQmp {
  return { ...destination, ...source };
}
