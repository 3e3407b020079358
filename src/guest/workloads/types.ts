/**
 * What a guest workload is: seeded code that, given the time, performs the page writes a
 * program in the guest would have made by then. Workloads write through PageWriteTarget, the
 * narrowest view of guest memory that serves them; the memory layer adapts its GuestMemory
 * and dirty-tracking backings to it (each write must also mark the page in the dirty log).
 *
 * Time comes in as data: step(nowNs) performs the writes due up to nowNs at the workload's
 * rate. Between two steps no writes happen, so the caller picks the granularity. The same seed
 * and the same step times give the same writes, byte for byte.
 */

/**
 * Guest memory as a workload sees it: pages of TARGET_PAGE_SIZE bytes, addressed by page
 * frame number and offset.
 *
 * Compact backings (one version number per page) map a write of byte 0 to "set the low byte
 * of the page version" and must count any write as a change of content; the incrementer only
 * touches byte 0, the other workloads use offsets 1..4095 and rely only on that change.
 */
export interface PageWriteTarget {
  /** Number of guest pages; valid page indexes are [0, pageCount). */
  readonly pageCount: number;
  writeByte(pageIndex: number, offsetInPage: number, value: number): void;
  readByte(pageIndex: number, offsetInPage: number): number;
  /**
   * Optional: false when the page is not present yet (a postcopy destination before the page
   * arrives). The workload then touches nothing on that page, returns the page from step()
   * as its stall and retries the same access on the next step, like a vCPU blocked in a
   * userfault. When absent, every page is present.
   */
  isPresent?(pageIndex: number): boolean;
}

/** step() result when the workload did all its due writes without stalling. */
export const NOT_STALLED = -1;

export type WorkloadKind = 'idle' | 'incrementer' | 'hot-set' | 'random' | 'churn' | 'alloc-then-free' | 'mix';

export interface WorkloadStats {
  readonly kind: WorkloadKind;
  /** Page writes performed; a page written twice counts twice. */
  readonly pageWrites: number;
  /** Writes that fell due but were dropped by the per-step cap (a step after a long gap). */
  readonly writesDropped: number;
  /** Steps that ended on a page that was not present. */
  readonly stalls: number;
  /** The configured dirtying rate: page writes per second times the page size. */
  readonly rateBytesPerS: number;
  /** Measured: pageWrites times the page size over the time between first and last step. */
  readonly writtenBytesPerS: number;
  /** Time of the first step, or -1 before it. */
  readonly firstStepNs: number;
  /** Time of the latest step, or -1 before the first. */
  readonly lastStepNs: number;
}

export interface Workload {
  readonly kind: WorkloadKind;
  /**
   * Performs the writes due up to nowNs (non-decreasing across calls). Returns NOT_STALLED,
   * or the page whose absence stopped the workload; the work owed up to now is then given up,
   * as a blocked vCPU does not catch up later.
   */
  step(nowNs: number, target: PageWriteTarget): number;
  /** The guest was stopped until nowNs: nothing is owed for the gap. */
  skipTo(nowNs: number): void;
  stats(): WorkloadStats;
}

/** A workload configuration that cannot be run (negative rate, set larger than RAM, ...). */
export class WorkloadConfigError extends Error {
  override name = 'WorkloadConfigError';
}

/** The guest could not allocate the memory a workload needs up front. */
export class WorkloadOutOfMemoryError extends Error {
  override name = 'WorkloadOutOfMemoryError';
  constructor(readonly pagesWanted: number, readonly pagesFree: number) {
    super(`Workload needs ${pagesWanted} pages, the guest allocator could not provide them (${pagesFree} free)`);
  }
}
