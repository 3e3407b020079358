/**
 * The destination's received map (QEMU's receivedmap): one bit per target page, set when the
 * page has been placed. Postcopy places each page exactly once, so placement goes through
 * testAndSet, which reports whether this call was the first. The map lives in a
 * SharedArrayBuffer so vCPU threads can check it before touching a page (a clear bit means the
 * page has not arrived and the access must wait), while the placing thread sets bits with
 * Atomics; the received count is kept in the same buffer with Atomics.add.
 *
 * Buffer layout: word 0 is the received count, word 1 is reserved (zero), and the bitmap
 * words start at byte 8.
 */
import { Bitmap, popcount32 } from '../lib/bitmap.ts';
import type { Range } from '../lib/range-table.ts';
import { MemoryConfigError, checkPageCount, checkPageIndex } from './page-store.ts';

/** Bytes before the bitmap words: the count word and a reserved word. */
const HEADER_BYTES = 8;

export class ReceivedMap {
  /** Number of target pages. */
  readonly pageCount: number;
  /** The shared buffer; attach from another thread with `ReceivedMap.attach`. */
  readonly buffer: SharedArrayBuffer;
  /** Word 0: how many pages are received. */
  private readonly header: Uint32Array;
  /** The bitmap words, bit i = page i received. */
  private readonly words: Uint32Array;
  /** A Bitmap view of the words for plain queries (nextClear, countRange). */
  readonly bits: Bitmap;

  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    checkPageCount(pageCount);
    const wordCount = Math.ceil(pageCount / 32);
    const byteLength = HEADER_BYTES + wordCount * 4;
    if (buffer !== undefined && buffer.byteLength < byteLength) {
      throw new MemoryConfigError('bad-buffer', `received map of ${pageCount} pages needs ${byteLength} bytes, buffer has ${buffer.byteLength}`);
    }
    this.pageCount = pageCount;
    this.buffer = buffer ?? new SharedArrayBuffer(byteLength);
    this.header = new Uint32Array(this.buffer, 0, 2);
    this.words = new Uint32Array(this.buffer, HEADER_BYTES, wordCount);
    this.bits = new Bitmap(pageCount, this.words);
  }

  /** A view of a map created in another thread. */
  static attach(buffer: SharedArrayBuffer, pageCount: number): ReceivedMap {
    return new ReceivedMap(pageCount, buffer);
  }

  /** True when the page has been placed. */
  isReceived(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    return (Atomics.load(this.words, pageIndex >>> 5) & (1 << (pageIndex & 31))) !== 0;
  }

  /** Marks the page received; true when this call set it (the one placement allowed). */
  testAndSet(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    const mask = 1 << (pageIndex & 31);
    const before = Atomics.or(this.words, pageIndex >>> 5, mask);
    if ((before & mask) !== 0) return false;
    Atomics.add(this.header, 0, 1);
    return true;
  }

  /** Marks pages [startPage, endPage) received; returns how many were not before. */
  markRange(startPage: number, endPage: number): number {
    if (!(startPage >= 0 && startPage <= endPage && endPage <= this.pageCount)) {
      throw new RangeError(`page range [${startPage}, ${endPage}) outside received map of ${this.pageCount} pages`);
    }
    let added = 0;
    for (let w = startPage >>> 5; startPage < endPage; w++) {
      const wordStart = w * 32;
      const from = startPage - wordStart;
      const to = Math.min(endPage - wordStart, 32);
      const mask = ((to === 32 ? 0xffffffff : (1 << to) - 1) & ~((1 << from) - 1)) >>> 0;
      added += popcount32(mask & ~Atomics.or(this.words, w, mask));
      startPage = wordStart + 32;
    }
    if (added > 0) Atomics.add(this.header, 0, added);
    return added;
  }

  /**
   * Marks pages [startPage, endPage) missing again (a postcopy discard); returns how many were
   * received. Only the placing thread calls it, never concurrently with a placement of them.
   */
  clearRange(startPage: number, endPage: number): number {
    if (!(startPage >= 0 && startPage <= endPage && endPage <= this.pageCount)) {
      throw new RangeError(`page range [${startPage}, ${endPage}) outside received map of ${this.pageCount} pages`);
    }
    let removed = 0;
    for (let w = startPage >>> 5; startPage < endPage; w++) {
      const wordStart = w * 32;
      const from = startPage - wordStart;
      const to = Math.min(endPage - wordStart, 32);
      const mask = ((to === 32 ? 0xffffffff : (1 << to) - 1) & ~((1 << from) - 1)) >>> 0;
      // A plain read is exact here: only this thread sets bits. Words with nothing to clear
      // (most of a postcopy discard of a large, mostly unsent guest) skip the atomic.
      if ((this.words[w] & mask) !== 0) removed += popcount32(mask & Atomics.and(this.words, w, ~mask));
      startPage = wordStart + 32;
    }
    if (removed > 0) Atomics.sub(this.header, 0, removed);
    return removed;
  }

  /** How many pages have been received. */
  count(): number {
    return Atomics.load(this.header, 0);
  }

  /** How many pages are still missing. */
  missingCount(): number {
    return this.pageCount - this.count();
  }

  /** True when every page has been received. */
  isComplete(): boolean {
    return this.count() === this.pageCount;
  }

  /** The first missing page at or after `from`, or -1 (a plain read: a snapshot). */
  nextMissing(from: number): number {
    return this.bits.nextClear(from);
  }

  /** The missing pages at or after `from`, in order. */
  *missingPages(from = 0): Generator<number> {
    for (let i = this.bits.nextClear(from); i !== -1; i = this.bits.nextClear(i + 1)) yield i;
  }

  /** The missing pages as maximal ranges, in order (for a background push or a report). */
  *missingRanges(from = 0): Generator<Range> {
    let start = this.bits.nextClear(from);
    while (start !== -1) {
      const stop = this.bits.nextSet(start);
      const end = stop === -1 ? this.pageCount : stop;
      yield { start, end };
      start = end >= this.pageCount ? -1 : this.bits.nextClear(end);
    }
  }

  /** Bytes of memory the map holds. */
  bookkeepingBytes(): number {
    return this.buffer.byteLength;
  }
}
