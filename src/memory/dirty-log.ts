/**
 * The dirty log: one bit per guest page, set when the guest writes the page, and fetched and
 * cleared by the migration thread at each bitmap sync (KVM_GET_DIRTY_LOG in QEMU terms). It
 * lives in a SharedArrayBuffer so vCPU worker threads can set bits while the migration thread
 * syncs: writers use Atomics.or, a sync takes each word with Atomics.exchange (or Atomics.and
 * for a partial word at a range edge), so no write between two syncs is lost and none is
 * reported twice.
 *
 * Ordering rule for writers: write the page first, then mark it (DirtyTrackingMemory does).
 * Marking first would let a sync clear the bit and send the page before the write landed,
 * losing the write. Atomics operations are sequentially consistent, so a sync that sees the
 * bit also sees the write.
 *
 * Free page hints must never clear the dirty log, only the migration bitmap (MigrationBitmap):
 * a write that races a hint must still reach the next sync. clearRange exists for a future
 * QEMU-style "clear log" path (lazy clearing of the kernel log before a chunk is sent) and for
 * tests, not for hints.
 */
import { Bitmap, popcount32 } from '../lib/bitmap.ts';
import { assert } from '../lib/assert.ts';
import { MemoryConfigError, checkPageCount, checkPageIndex } from './page-store.ts';

/** Bits per word of the log. */
const WORD_BITS = 32;

export class DirtyLog {
  /** Number of guest pages the log covers. */
  readonly pageCount: number;
  /** The shared words; send this to a worker and attach there with `DirtyLog.attach`. */
  readonly buffer: SharedArrayBuffer;
  /** The log as 32-bit words over `buffer`: bit i is word i >>> 5, bit i & 31. */
  readonly words: Uint32Array;
  /** A Bitmap view of the same words, for plain (non-atomic) queries and tests. */
  readonly bits: Bitmap;
  /**
   * When set, every bit a sync fetches is also ORed in here (the pages written at some time
   * since the history was attached, less those still waiting in the log): see written-pages.ts.
   */
  history: Bitmap | null = null;

  /** A log of `pageCount` clear bits, or a view of an existing shared log. */
  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    checkPageCount(pageCount);
    const wordCount = Math.ceil(pageCount / WORD_BITS);
    // At least one word, so an empty log still has a usable buffer to share.
    const byteLength = Math.max(1, wordCount) * 4;
    if (buffer !== undefined && buffer.byteLength < byteLength) {
      throw new MemoryConfigError('bad-buffer', `dirty log of ${pageCount} pages needs ${byteLength} bytes, buffer has ${buffer.byteLength}`);
    }
    this.pageCount = pageCount;
    this.buffer = buffer ?? new SharedArrayBuffer(byteLength);
    this.words = new Uint32Array(this.buffer, 0, wordCount);
    this.bits = new Bitmap(pageCount, this.words);
  }

  /** A view of a log created in another thread, over its shared buffer. */
  static attach(buffer: SharedArrayBuffer, pageCount: number): DirtyLog {
    return new DirtyLog(pageCount, buffer);
  }

  /**
   * Marks one page dirty. Always a read-modify-write, even when the bit looks set already: a
   * "load, and skip if set" shortcut is unsound. The load does not order the writer's earlier
   * plain store to the page (x86 lets a load pass an earlier store), so a sync could fetch the
   * old bit and copy the page before the store lands, and then no bit would be left for it.
   * Atomics.or is a full barrier, so the page store is visible to whoever fetches the bit.
   */
  markDirty(pageIndex: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    Atomics.or(this.words, pageIndex >>> 5, 1 << (pageIndex & 31));
  }

  /** Marks pages [startPage, endPage) dirty. */
  markRange(startPage: number, endPage: number): void {
    this.checkRange(startPage, endPage);
    for (let w = startPage >>> 5; startPage < endPage; w++) {
      const mask = rangeMask(w, startPage, endPage);
      Atomics.or(this.words, w, mask);
      startPage = (w + 1) * WORD_BITS;
    }
  }

  /**
   * Clears pages [startPage, endPage) and returns how many were dirty. Not for free page hints
   * (see the file comment): a cleared bit is a write the next sync will not see.
   */
  clearRange(startPage: number, endPage: number): number {
    this.checkRange(startPage, endPage);
    let cleared = 0;
    for (let w = startPage >>> 5; startPage < endPage; w++) {
      const mask = rangeMask(w, startPage, endPage);
      const fetched = Atomics.and(this.words, w, ~mask) & mask;
      if (this.history !== null) this.history.words[w] |= fetched;
      cleared += popcount32(fetched);
      startPage = (w + 1) * WORD_BITS;
    }
    return cleared;
  }

  /** True when the page is marked dirty now. */
  isDirty(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    return (Atomics.load(this.words, pageIndex >>> 5) & (1 << (pageIndex & 31))) !== 0;
  }

  /** How many pages are marked dirty now (plain reads: a snapshot while writers run). */
  count(): number {
    let n = 0;
    for (let w = 0; w < this.words.length; w++) n += popcount32(this.words[w]);
    return n;
  }

  /**
   * Fetches and clears the whole log, ORs it into `dest` (indexed by page, same size as the
   * log) and returns how many bits of `dest` it set that were clear before.
   */
  sync(dest: Bitmap): number {
    return this.syncRange(dest, 0, this.pageCount);
  }

  /**
   * Fetches and clears pages [startPage, endPage) of the log (a RAM block's range, say), ORs
   * them into the same pages of `dest` and returns how many bits of `dest` became set.
   * Whole words are read first and exchanged only when non-zero: a word that is zero at the
   * read and written just after is simply caught by the next sync.
   */
  syncRange(dest: Bitmap, startPage: number, endPage: number): number {
    assert(dest.sizeBits === this.pageCount, `sync destination has ${dest.sizeBits} bits, log has ${this.pageCount}`);
    this.checkRange(startPage, endPage);
    if (startPage === endPage) return 0;
    const log = this.words;
    const target = dest.words;
    const history = this.history === null ? null : this.history.words;
    const firstWord = startPage >>> 5;
    const lastWord = (endPage - 1) >>> 5;
    // Whole words run from firstWhole to lastWhole (exclusive); partial edge words are
    // fetched with Atomics.and, which clears only the bits inside the range.
    const firstWhole = (startPage & 31) === 0 ? firstWord : firstWord + 1;
    const lastWhole = (endPage & 31) === 0 ? lastWord + 1 : lastWord;
    let added = 0;
    if (firstWhole > firstWord) added += this.fetchPartialWord(target, firstWord, startPage, endPage);
    for (let w = firstWhole; w < lastWhole; w++) {
      // The zero test is a plain read, several times cheaper than Atomics.load in V8. Skipping
      // a word only leaves its bits for the next sync, and a mark that happened before this
      // sync began (by the memory model's happens-before) is visible to a plain read too.
      if (log[w] === 0) continue;
      const fetched = Atomics.exchange(log, w, 0);
      if (history !== null) history[w] |= fetched;
      const incoming = fetched & ~target[w];
      if (incoming !== 0) {
        added += popcount32(incoming);
        target[w] |= incoming;
      }
    }
    if (lastWhole <= lastWord && lastWord >= firstWhole) added += this.fetchPartialWord(target, lastWord, Math.max(startPage, lastWord * WORD_BITS), endPage);
    return added;
  }

  /** Fetches and clears the bits of word `w` inside [startPage, endPage) into `target`. */
  private fetchPartialWord(target: Uint32Array, w: number, startPage: number, endPage: number): number {
    const mask = rangeMask(w, startPage, endPage);
    const fetched = Atomics.and(this.words, w, ~mask) & mask;
    if (this.history !== null) this.history.words[w] |= fetched;
    const incoming = fetched & ~target[w];
    if (incoming === 0) return 0;
    target[w] |= incoming;
    return popcount32(incoming);
  }

  /** Bytes of memory the log holds: one bit per page, rounded up to whole words. */
  bookkeepingBytes(): number {
    return this.buffer.byteLength;
  }

  private checkRange(startPage: number, endPage: number): void {
    if (!(startPage >= 0 && startPage <= endPage && endPage <= this.pageCount)) {
      throw new RangeError(`page range [${startPage}, ${endPage}) outside dirty log of ${this.pageCount} pages`);
    }
  }
}

/** The bits of word `w` that fall in [start, end); start lies in word w. */
function rangeMask(w: number, start: number, end: number): number {
  const wordStart = w * WORD_BITS;
  const from = start - wordStart;
  const to = Math.min(end - wordStart, WORD_BITS);
  const high = to === WORD_BITS ? 0xffffffff : (1 << to) - 1;
  return (high & ~((1 << from) - 1)) >>> 0;
}
