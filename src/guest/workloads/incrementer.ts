/**
 * The incrementer, after QEMU's migration-test guest (tests/migration/i386/a-b-bootblock.S):
 * it walks its pages in order and increments byte 0 of each (wrapping at 256), forever, at a
 * fixed rate. At any instant the pages before the cursor hold v + 1 and the rest hold v, so
 * memory has at most one place where the value steps down by one; oracle.ts checkIncrementer
 * checks exactly that after a migration.
 *
 * It reads the byte before writing it (as the real guest's `incb` does), so a page that
 * arrives stale on the destination stays wrong and the oracle sees it.
 */
import { bumpByte, RateClock } from './rate-clock.ts';
import type { PageSet } from './page-set.ts';
import { NOT_STALLED } from './types.ts';
import type { PageWriteTarget, Workload, WorkloadStats } from './types.ts';

export interface IncrementerConfig {
  /** The pages walked, in this order. */
  readonly pages: PageSet;
  /** Dirtying rate: pages incremented per second times the page size. */
  readonly rateBytesPerS: number;
  /** Bound on writes per step (see RateClock). */
  readonly stepWritesMax?: number;
}

export class IncrementerWorkload implements Workload {
  readonly kind = 'incrementer' as const;
  /** The pages walked; oracle checks read them through pages.pageAt. */
  readonly pages: PageSet;
  /** Pacing and counters. */
  private readonly clock: RateClock;
  /** Index into pages of the next page to increment. */
  private cursorIndex = 0;
  /** Completed walks over all pages. */
  private passCount = 0;

  constructor(config: IncrementerConfig) {
    this.pages = config.pages;
    this.clock = new RateClock(config.rateBytesPerS, config.stepWritesMax);
  }

  /** Index of the next page to increment: where the oracle expects the edge. */
  get cursor(): number {
    return this.cursorIndex;
  }

  /** Completed passes over all pages. */
  get passes(): number {
    return this.passCount;
  }

  step(nowNs: number, target: PageWriteTarget): number {
    let due = this.clock.due(nowNs);
    const count = this.pages.pageCount;
    if (count === 0) {
      this.clock.forgo(due);
      return NOT_STALLED;
    }
    while (due > 0) {
      const pfn = this.pages.pageAt(this.cursorIndex);
      if (!bumpByte(target, pfn, 0)) {
        this.clock.stall(nowNs);
        return pfn;
      }
      this.clock.consume(1);
      due--;
      this.cursorIndex++;
      if (this.cursorIndex === count) {
        this.cursorIndex = 0;
        this.passCount++;
      }
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
