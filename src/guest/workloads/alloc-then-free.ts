/**
 * Alloc-then-free, for the "hint-idle" scenario: a program allocates and touches about
 * fillFraction of guest RAM through the buddy allocator, holds it for holdNs, frees it all at
 * once (a process exiting), and the guest then idles. Afterwards most of RAM is free but has
 * been written: exactly the memory free page hinting lets migration skip.
 *
 * Nothing here is random: the allocator's policy decides the pages, and each touch writes the
 * byte at an offset derived from the page number.
 *
 * Phases: fill (allocate a block, touch its pages at the rate, repeat until the target is
 * reached or an allocation fails even after direct reclaim) → hold → idle (entered by
 * freeing every block in one step).
 */
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { MAX_PAGE_ORDER } from '../allocator/buddy.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import { bumpByte, RateClock } from './rate-clock.ts';
import { NOT_STALLED, WorkloadConfigError } from './types.ts';
import type { PageWriteTarget, Workload, WorkloadStats } from './types.ts';

export const ALLOC_THEN_FREE_FRACTION_DEFAULT = 0.7;

export interface AllocThenFreeConfig {
  /** The guest allocator. */
  readonly allocator: BuddyAllocator;
  /** Share of the allocator's pages to allocate and touch, in (0, 1]. */
  readonly fillFraction?: number;
  /** Dirtying rate while filling: pages touched per second times the page size. */
  readonly rateBytesPerS: number;
  /** Order of the blocks allocated (0 = single pages, as user-space faults). */
  readonly order?: number;
  /** Time between the last touch and the free. */
  readonly holdNs?: number;
  /** Bound on writes per step (see RateClock). */
  readonly stepWritesMax?: number;
}

export type AllocThenFreePhase = 'fill' | 'hold' | 'idle';

export class AllocThenFreeWorkload implements Workload {
  readonly kind = 'alloc-then-free' as const;
  /** The guest allocator. */
  private readonly allocator: BuddyAllocator;
  /** Order of every block. */
  private readonly order: number;
  /** Time to hold the memory after filling. */
  private readonly holdNs: number;
  /** First page of each allocated block, [0, blockCount). */
  private readonly blockPfns: Int32Array;
  /** Blocks allocated so far. */
  private blockCount = 0;
  /** Pacing and counters. */
  private readonly clock: RateClock;
  /** Current phase. */
  private phaseNow: AllocThenFreePhase = 'fill';
  /** Next page of the newest block still to touch; equals touchEnd when none. */
  private touchNext = 0;
  /** End of the newest block. */
  private touchEnd = 0;
  /** When filling finished, or -1. */
  fillDoneNs = -1;
  /** When everything was freed, or -1. */
  freedNs = -1;
  /** Pages allocated at the end of filling (the peak). */
  peakPages = 0;

  constructor(config: AllocThenFreeConfig) {
    const fraction = config.fillFraction ?? ALLOC_THEN_FREE_FRACTION_DEFAULT;
    if (!(fraction > 0 && fraction <= 1)) throw new WorkloadConfigError(`fill fraction must be in (0, 1], got ${fraction}`);
    this.order = config.order ?? 0;
    if (!Number.isInteger(this.order) || this.order < 0 || this.order > MAX_PAGE_ORDER) throw new WorkloadConfigError(`bad block order: ${this.order}`);
    this.holdNs = config.holdNs ?? 0;
    if (!(this.holdNs >= 0)) throw new WorkloadConfigError(`bad hold time: ${this.holdNs}`);
    this.allocator = config.allocator;
    const targetPages = Math.floor(fraction * config.allocator.pageCount);
    this.blockPfns = new Int32Array(Math.ceil(targetPages / 2 ** this.order));
    this.clock = new RateClock(config.rateBytesPerS, config.stepWritesMax);
  }

  get phase(): AllocThenFreePhase {
    return this.phaseNow;
  }

  /** Pages currently held by the workload. */
  get heldPages(): number {
    return this.phaseNow === 'idle' ? 0 : this.blockCount * 2 ** this.order;
  }

  step(nowNs: number, target: PageWriteTarget): number {
    let due = this.clock.due(nowNs);
    while (due > 0 && this.phaseNow === 'fill') {
      if (this.touchNext >= this.touchEnd && !this.allocBlock()) {
        this.finishFill(nowNs);
        break;
      }
      const pfn = this.touchNext;
      if (!bumpByte(target, pfn, 1 + (pfn % (TARGET_PAGE_SIZE - 1)))) {
        this.clock.stall(nowNs);
        return pfn;
      }
      this.touchNext++;
      this.clock.consume(1);
      due--;
      if (this.touchNext === this.touchEnd && this.blockCount === this.blockPfns.length) this.finishFill(nowNs);
    }
    if (due > 0) this.clock.forgo(due);
    if (this.phaseNow === 'hold' && nowNs >= this.fillDoneNs + this.holdNs) this.freeAll(nowNs);
    return NOT_STALLED;
  }

  skipTo(nowNs: number): void {
    this.clock.skipTo(nowNs);
  }

  stats(): WorkloadStats {
    return this.clock.stats(this.kind);
  }

  /** Allocates the next block; false when the target is reached or memory ran out. */
  private allocBlock(): boolean {
    if (this.blockCount === this.blockPfns.length) return false;
    const pfn = this.allocator.allocReclaiming(this.order);
    if (pfn < 0) return false;
    this.blockPfns[this.blockCount++] = pfn;
    this.touchNext = pfn;
    this.touchEnd = pfn + 2 ** this.order;
    return true;
  }

  private finishFill(nowNs: number): void {
    this.phaseNow = 'hold';
    this.fillDoneNs = nowNs;
    this.peakPages = this.blockCount * 2 ** this.order;
  }

  private freeAll(nowNs: number): void {
    for (let b = 0; b < this.blockCount; b++) this.allocator.free(this.blockPfns[b], this.order);
    this.phaseNow = 'idle';
    this.freedNs = nowNs;
  }
}
