/**
 * Uniform random page writes over a page set at a fixed rate. Three workloads are this one
 * loop with different sets and rates:
 * - random: the set is all of RAM (or a given size), a memory-stress guest;
 * - hot-set: a working set of a given size rewritten at a given rate, the classic case that
 *   decides whether precopy converges (set size vs. bandwidth × downtime);
 * - idle: rate 0 by default, or a tiny background rate (timers, logging).
 *
 * Each write increments one byte at a seeded offset in 1..4095 (byte 0 belongs to the
 * incrementer), so the page content always changes.
 */
import type { Prng } from '../../lib/prng.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { bumpByte, RateClock } from './rate-clock.ts';
import type { PageSet } from './page-set.ts';
import { NOT_STALLED } from './types.ts';
import type { PageWriteTarget, Workload, WorkloadKind, WorkloadStats } from './types.ts';

export interface RandomWriterConfig {
  /** Which of the three workloads this is (only the reported kind differs). */
  readonly kind: 'idle' | 'hot-set' | 'random';
  /** Pages to write; writes pick one uniformly. */
  readonly pages: PageSet;
  /** Dirtying rate: page writes per second times the page size. */
  readonly rateBytesPerS: number;
  /** Bound on writes per step (see RateClock). */
  readonly stepWritesMax?: number;
}

export class RandomWriterWorkload implements Workload {
  readonly kind: WorkloadKind;
  /** The pages written. */
  readonly pages: PageSet;
  /** Pacing and counters. */
  private readonly clock: RateClock;
  /** Source of page and offset choices. */
  private readonly prng: Prng;
  /** Page of a write that stalled and is retried first on the next step, or -1. */
  private pendingPfn = -1;
  /** Offset of that pending write. */
  private pendingOffset = 0;

  constructor(config: RandomWriterConfig, prng: Prng) {
    this.kind = config.kind;
    this.pages = config.pages;
    this.clock = new RateClock(config.rateBytesPerS, config.stepWritesMax);
    this.prng = prng;
  }

  step(nowNs: number, target: PageWriteTarget): number {
    let due = this.clock.due(nowNs);
    if (this.pages.pageCount === 0) {
      this.clock.forgo(due);
      return NOT_STALLED;
    }
    while (due > 0) {
      if (this.pendingPfn < 0) {
        this.pendingPfn = this.pages.pageAt(this.prng.int(0, this.pages.pageCount - 1));
        this.pendingOffset = 1 + (this.prng.u32() % (TARGET_PAGE_SIZE - 1));
      }
      if (!bumpByte(target, this.pendingPfn, this.pendingOffset)) {
        this.clock.stall(nowNs);
        return this.pendingPfn;
      }
      this.pendingPfn = -1;
      this.clock.consume(1);
      due--;
    }
    return NOT_STALLED;
  }

  skipTo(nowNs: number): void {
    this.clock.skipTo(nowNs);
  }

  stats(): WorkloadStats {
    return this.clock.stats(this.kind);
  }
}
