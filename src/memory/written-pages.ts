/**
 * Which guest pages were ever written since the VM was built (real mode). A page nobody wrote is
 * still all zero, so an outgoing migration can send a ZERO record for it without reading it:
 * reading RAM that was never touched costs a minor page fault per 4 KiB page (the kernel maps
 * its zero page), which made an all-zero guest's first pass slower than the wire.
 *
 * A page counts as written when its bit is set in either
 * - `history`: every bit a dirty-log sync (or clearRange) ever fetched, ORed in by DirtyLog
 *   itself (`DirtyLog.history`), so no fetch can lose a write; plus explicit marks from the
 *   writers that do not go through the dirty log (a memory-backend-file's content loaded at
 *   start, the pages an incoming migration placed, see `markFrom`); or
 * - the live dirty log: writes not fetched yet (vCPU threads and DirtyTrackingMemory mark it).
 *
 * The live log is read with plain loads. A writer stores to the page first and marks it after;
 * a query that misses a mark racing with it reports the page unwritten, and the page then goes
 * out as ZERO, exactly as if it had been read just before the store. The mark stays in the log,
 * so the next sync sends the page again (the usual precopy argument).
 *
 * Any new path that writes guest RAM must either go through the dirty log, or set the received
 * bit of the page it places (as core/dest/placement.ts does; host/vm-core.ts ORs the received
 * map in when an incoming migration completes), or mark the pages here. A missed path makes the
 * next outgoing migration send its pages as zeros (src/host/migrate-unwritten.test.ts).
 */
import { Bitmap } from '../lib/bitmap.ts';
import type { DirtyLog } from './dirty-log.ts';

export class WrittenPages {
  readonly pageCount: number;
  /** Fetched dirty-log bits and explicit marks (see the module comment). */
  readonly history: Bitmap;
  private readonly log: DirtyLog;

  /** Attaches to `log` (as its history): from now on every fetch of the log is recorded. */
  constructor(log: DirtyLog) {
    this.log = log;
    this.pageCount = log.pageCount;
    this.history = new Bitmap(log.pageCount);
    log.history = this.history;
  }

  /** Records pages [startPage, endPage) as written by a path outside the dirty log. */
  markRange(startPage: number, endPage: number): void {
    this.history.setRange(startPage, endPage);
  }

  /** Records every page set in `pages` (same size) as written. */
  markFrom(pages: Bitmap): void {
    this.history.orFrom(pages);
  }

  /** Records every page as written (nothing is known any more). */
  markAll(): void {
    this.history.setAll();
  }

  /** True when the page may have been written. */
  isWritten(page: number): boolean {
    return this.run(page, 1, true) === 1;
  }

  /** How many pages from `page` on (at most `count`) were never written. */
  unwrittenRun(page: number, count: number): number {
    return this.run(page, count, false);
  }

  /** How many pages from `page` on (at most `count`) may have been written. */
  writtenRun(page: number, count: number): number {
    return this.run(page, count, true);
  }

  /** Length of the run of pages from `page` whose written state is `written`, capped at `count`. */
  private run(page: number, count: number, written: boolean): number {
    const end = Math.min(page + count, this.pageCount);
    const history = this.history.words;
    const log = this.log.words;
    let p = page;
    while (p < end) {
      const w = p >>> 5;
      const shift = p & 31;
      const bits = history[w] | log[w];
      // The word's bits from p on, 1 where the state matches; the run continues past this word
      // only if all of them match.
      const match = (written ? bits : ~bits) >>> shift;
      const ones = trailingOnes(match);
      if (ones < 32 - shift) return Math.min(p + ones, end) - page;
      p = (w + 1) * 32;
    }
    return Math.max(0, end - page);
  }
}

/** Number of consecutive set bits from bit 0 of `x` (32 when all are set). */
function trailingOnes(x: number): number {
  const inverted = ~x;
  if (inverted === 0) return 32;
  return 31 - Math.clz32(inverted & -inverted);
}
