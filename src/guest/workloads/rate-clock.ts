/**
 * The pacing shared by all workloads: how many page writes are due at a given time, plus the
 * counters every workload reports. Writes owed are floor(elapsed × rate) minus those done
 * since the base time; a unit of work may overshoot (touching a whole block), which leaves a
 * debt that later steps pay off by doing nothing.
 */
import { assert } from '../../lib/assert.ts';
import { NS_PER_S, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { WorkloadConfigError } from './types.ts';
import type { PageWriteTarget, WorkloadKind, WorkloadStats } from './types.ts';

/** Default bound on writes per step; the excess after a long gap is dropped and counted. */
export const STEP_WRITES_MAX_DEFAULT = 1 << 20;

export class RateClock {
  /** Page writes per second. */
  readonly writesPerS: number;
  /** Bound on the writes one step may perform. */
  readonly stepWritesMax: number;
  /** Time from which writes are owed; -1 before the first step. */
  private baseNs = -1;
  /** Writes performed or dropped since baseNs (may exceed what is owed: a debt). */
  private doneSinceBase = 0;
  /** Time of the first step, or -1. */
  firstNs = -1;
  /** Time of the latest step, or -1. */
  lastNs = -1;
  /** Page writes performed in total. */
  writes = 0;
  /** Writes dropped by the per-step cap. */
  dropped = 0;
  /** Steps that ended on a missing page. */
  stalls = 0;

  constructor(rateBytesPerS: number, stepWritesMax = STEP_WRITES_MAX_DEFAULT) {
    if (!Number.isFinite(rateBytesPerS) || rateBytesPerS < 0) {
      throw new WorkloadConfigError(`rate must be a finite number >= 0 bytes/s, got ${rateBytesPerS}`);
    }
    if (!Number.isInteger(stepWritesMax) || stepWritesMax < 1) {
      throw new WorkloadConfigError(`step write bound must be a positive integer, got ${stepWritesMax}`);
    }
    this.writesPerS = rateBytesPerS / TARGET_PAGE_SIZE;
    this.stepWritesMax = stepWritesMax;
  }

  /** Writes due by nowNs and not yet done, at most stepWritesMax (the rest is dropped). */
  due(nowNs: number): number {
    assert(Number.isFinite(nowNs), 'step time must be finite');
    if (this.baseNs < 0) {
      this.baseNs = nowNs;
      this.firstNs = nowNs;
    }
    assert(nowNs >= this.lastNs, `workload time went backwards: ${nowNs} < ${this.lastNs}`);
    this.lastNs = nowNs;
    const owed = this.owedAt(nowNs);
    if (owed > this.stepWritesMax) {
      this.dropped += owed - this.stepWritesMax;
      this.doneSinceBase += owed - this.stepWritesMax;
      return this.stepWritesMax;
    }
    return owed > 0 ? owed : 0;
  }

  /** Records n writes done (n may exceed what was due). */
  consume(n: number): void {
    this.writes += n;
    this.doneSinceBase += n;
  }

  /** Records n writes due that the workload had nothing to spend on. */
  forgo(n: number): void {
    this.doneSinceBase += n;
  }

  /** The step stopped on a missing page: the work owed up to now is given up. */
  stall(nowNs: number): void {
    this.stalls++;
    this.rebase(nowNs);
  }

  /** The guest was stopped until nowNs. */
  skipTo(nowNs: number): void {
    if (this.baseNs < 0) this.firstNs = nowNs;
    assert(nowNs >= this.lastNs, `workload time went backwards: ${nowNs} < ${this.lastNs}`);
    this.lastNs = nowNs;
    this.rebase(nowNs);
  }

  /** Counters in the common stats shape. */
  stats(kind: WorkloadKind): WorkloadStats {
    const spanNs = this.lastNs - this.firstNs;
    return {
      kind,
      pageWrites: this.writes,
      writesDropped: this.dropped,
      stalls: this.stalls,
      rateBytesPerS: this.writesPerS * TARGET_PAGE_SIZE,
      writtenBytesPerS: spanNs > 0 ? (this.writes * TARGET_PAGE_SIZE * NS_PER_S) / spanNs : 0,
      firstStepNs: this.firstNs,
      lastStepNs: this.lastNs,
    };
  }

  private owedAt(nowNs: number): number {
    return Math.floor(((nowNs - this.baseNs) * this.writesPerS) / NS_PER_S) - this.doneSinceBase;
  }

  /** Moves the base to nowNs, forgetting what is owed but keeping any debt. */
  private rebase(nowNs: number): void {
    const owed = this.baseNs < 0 ? 0 : this.owedAt(nowNs);
    this.baseNs = nowNs;
    this.doneSinceBase = owed < 0 ? -owed : 0;
  }
}

/**
 * Increments the byte at `offsetInPage` of page `pfn` (so its content changes on every
 * write). Returns false, touching nothing, when the page is not present.
 */
export function bumpByte(target: PageWriteTarget, pfn: number, offsetInPage: number): boolean {
  if (target.isPresent !== undefined && !target.isPresent(pfn)) return false;
  target.writeByte(pfn, offsetInPage, (target.readByte(pfn, offsetInPage) + 1) & 0xff);
  return true;
}
