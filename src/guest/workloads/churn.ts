/**
 * Allocator churn, kernel-build-like: processes come and go, so blocks of assorted orders are
 * allocated from the guest's buddy allocator, written page by page, rewritten while alive and
 * freed when their lifetime ends. The workload keeps about usedTargetBytes allocated.
 *
 * Every write is paced by one rate. Each unit of due work goes, in this priority, to: the next
 * untouched page of the newest block; a new block, when below the target (its pages are then
 * touched); otherwise a rewrite of a random page of a random live block (uniform over blocks,
 * not pages). Block lifetimes are uniform in [0.5, 1.5] × lifetimeMeanNs from allocation.
 * Allocations may reclaim (BuddyAllocator.allocReclaiming: the balloon's hint shrinker gives
 * held blocks back). When even that finds no block of the wanted order, the failure is counted
 * and no new block is tried until some block is freed (no compaction).
 */
import type { Prng } from '../../lib/prng.ts';
import { NS_PER_S, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { MAX_PAGE_ORDER } from '../allocator/buddy.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import { BlockHeap } from './block-heap.ts';
import { bumpByte, RateClock } from './rate-clock.ts';
import { NOT_STALLED, WorkloadConfigError } from './types.ts';
import type { PageWriteTarget, Workload, WorkloadStats } from './types.ts';

/** Mostly single pages (anonymous memory, page cache), some slab/stack orders, some THP. */
export const CHURN_ORDER_WEIGHTS_DEFAULT: readonly number[] = [64, 12, 8, 6, 3, 2, 1, 1, 1, 2, 0];
export const CHURN_LIFETIME_MEAN_NS_DEFAULT = 2 * NS_PER_S;
/** Default bound on live blocks (13 bytes each). */
export const CHURN_LIVE_BLOCKS_MAX_DEFAULT = 1 << 20;

/** What churn needs from an allocator. */
export type ChurnAllocator = Pick<BuddyAllocator, 'allocReclaiming' | 'free'>;

export interface ChurnConfig {
  /** The guest allocator blocks come from (or a per-vCPU cache of it, host/page-cache.ts). */
  readonly allocator: ChurnAllocator;
  /** Memory kept allocated, in bytes (may overshoot by one block). */
  readonly usedTargetBytes: number;
  /** Dirtying rate: page writes (touches and rewrites) per second times the page size. */
  readonly rateBytesPerS: number;
  /** Relative frequency of each block order 0..MAX_PAGE_ORDER (missing entries are 0). */
  readonly orderWeights?: readonly number[];
  /** Mean block lifetime. */
  readonly lifetimeMeanNs?: number;
  /** Bound on live blocks. */
  readonly liveBlocksMax?: number;
  /** Bound on writes per step (see RateClock). */
  readonly stepWritesMax?: number;
}

export class ChurnWorkload implements Workload {
  readonly kind = 'churn' as const;
  /** The guest allocator. */
  private readonly allocator: ChurnAllocator;
  /** Pages kept allocated. */
  private readonly targetPages: number;
  /** Cumulative order weights, index = order. */
  private readonly weightSums: Float64Array;
  /** Mean block lifetime. */
  private readonly lifetimeMeanNs: number;
  /** Live blocks by death time. */
  private readonly live: BlockHeap;
  /** Pacing and counters. */
  private readonly clock: RateClock;
  /** Source of orders, lifetimes, pages and offsets. */
  private readonly prng: Prng;
  /** Pages in live blocks. */
  private usedPageCount = 0;
  /** Next page of the newest block still to touch; equals touchEnd when none. */
  private touchNext = 0;
  /** End of the newest block's pages. */
  private touchEnd = 0;
  /** Page of the chosen next write (retried after a stall), or -1. */
  private pendingPfn = -1;
  /** Offset of the chosen next write. */
  private pendingOffset = 0;
  /** True when the chosen write is a touch of the newest block. */
  private pendingIsTouch = false;
  /** An allocation failed and nothing has been freed since. */
  private allocBlocked = false;
  /** Allocations that failed. */
  allocFailures = 0;
  /** Blocks allocated in total. */
  blocksAllocated = 0;
  /** Blocks freed in total. */
  blocksFreed = 0;

  constructor(config: ChurnConfig, prng: Prng) {
    const weights = config.orderWeights ?? CHURN_ORDER_WEIGHTS_DEFAULT;
    const weightsValid = weights.length <= MAX_PAGE_ORDER + 1 && weights.every((w) => w >= 0 && Number.isFinite(w)) && weights.some((w) => w > 0);
    if (!weightsValid) {
      throw new WorkloadConfigError(`order weights need at most ${MAX_PAGE_ORDER + 1} finite values >= 0, one > 0`);
    }
    if (!(config.usedTargetBytes >= 0 && Number.isFinite(config.usedTargetBytes))) throw new WorkloadConfigError(`bad used target: ${config.usedTargetBytes}`);
    this.lifetimeMeanNs = config.lifetimeMeanNs ?? CHURN_LIFETIME_MEAN_NS_DEFAULT;
    if (!(this.lifetimeMeanNs > 0 && Number.isFinite(this.lifetimeMeanNs))) throw new WorkloadConfigError(`bad lifetime: ${this.lifetimeMeanNs}`);
    this.allocator = config.allocator;
    this.targetPages = Math.floor(config.usedTargetBytes / TARGET_PAGE_SIZE);
    this.weightSums = new Float64Array(MAX_PAGE_ORDER + 1);
    let sum = 0;
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      sum += weights[k] ?? 0;
      this.weightSums[k] = sum;
    }
    const liveMax = config.liveBlocksMax ?? Math.max(1, Math.min(this.targetPages, CHURN_LIVE_BLOCKS_MAX_DEFAULT));
    this.live = new BlockHeap(liveMax);
    this.clock = new RateClock(config.rateBytesPerS, config.stepWritesMax);
    this.prng = prng;
  }

  /** Pages in live blocks. */
  get usedPages(): number {
    return this.usedPageCount;
  }

  /** Number of live blocks. */
  get liveBlocks(): number {
    return this.live.size;
  }

  step(nowNs: number, target: PageWriteTarget): number {
    this.expire(nowNs);
    let due = this.clock.due(nowNs);
    while (due > 0) {
      if (this.pendingPfn < 0 && !this.chooseWrite(nowNs)) {
        this.clock.forgo(due);
        break;
      }
      if (!bumpByte(target, this.pendingPfn, this.pendingOffset)) {
        this.clock.stall(nowNs);
        return this.pendingPfn;
      }
      if (this.pendingIsTouch) this.touchNext++;
      this.pendingPfn = -1;
      this.clock.consume(1);
      due--;
    }
    return NOT_STALLED;
  }

  skipTo(nowNs: number): void {
    this.clock.skipTo(nowNs);
  }

  /** Frees every live block (the build finished, or the scenario is tearing down). */
  releaseAll(): void {
    while (this.live.size > 0) this.freePopped();
  }

  stats(): WorkloadStats {
    return this.clock.stats(this.kind);
  }

  /** Frees the blocks whose lifetime ended by nowNs. */
  private expire(nowNs: number): void {
    while (this.live.size > 0 && this.live.peekDeathNs() <= nowNs) this.freePopped();
  }

  /** Pops the earliest block and frees it, cancelling writes aimed at it. */
  private freePopped(): void {
    this.live.pop();
    const pfn = this.live.poppedPfn;
    const end = pfn + 2 ** this.live.poppedOrder;
    this.allocator.free(pfn, this.live.poppedOrder);
    this.usedPageCount -= end - pfn;
    this.blocksFreed++;
    this.allocBlocked = false;
    if (this.touchNext >= pfn && this.touchNext < end) this.touchNext = this.touchEnd;
    if (this.pendingPfn >= pfn && this.pendingPfn < end) this.pendingPfn = -1;
  }

  /** Picks the next write; false when there is nothing to write to. */
  private chooseWrite(nowNs: number): boolean {
    if (this.touchNext >= this.touchEnd && this.wantsBlock()) this.allocBlock(nowNs);
    if (this.touchNext < this.touchEnd) {
      this.pendingPfn = this.touchNext;
      this.pendingIsTouch = true;
    } else if (this.live.size > 0) {
      const slot = this.prng.int(0, this.live.size - 1);
      this.pendingPfn = this.live.pfnAt(slot) + this.prng.int(0, 2 ** this.live.orderAt(slot) - 1);
      this.pendingIsTouch = false;
    } else {
      return false;
    }
    this.pendingOffset = 1 + (this.prng.u32() % (TARGET_PAGE_SIZE - 1));
    return true;
  }

  private wantsBlock(): boolean {
    return !this.allocBlocked && this.usedPageCount < this.targetPages && this.live.size < this.live.capacity;
  }

  /** Allocates a block of a weighted random order; on success it becomes the one to touch. */
  private allocBlock(nowNs: number): void {
    const pick = this.prng.float() * this.weightSums[MAX_PAGE_ORDER];
    let order = 0;
    while (order < MAX_PAGE_ORDER && this.weightSums[order] <= pick) order++;
    const pfn = this.allocator.allocReclaiming(order);
    if (pfn < 0) {
      this.allocFailures++;
      this.allocBlocked = true;
      return;
    }
    const lifetimeNs = Math.floor(this.lifetimeMeanNs * (0.5 + this.prng.float()));
    this.live.push(nowNs + lifetimeNs, pfn, order);
    this.usedPageCount += 2 ** order;
    this.blocksAllocated++;
    this.touchNext = pfn;
    this.touchEnd = pfn + 2 ** order;
  }
}
