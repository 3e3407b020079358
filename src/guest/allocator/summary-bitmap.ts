/**
 * A bitmap with summary levels, so that "the lowest set bit at or after i" costs a few word
 * reads instead of a scan. The buddy allocator keeps one per order as its free list.
 *
 * Layout: levels[0] holds the bits (bit i in word i >>> 5). Bit j of levels[k + 1] is set
 * exactly when word j of levels[k] is non-zero. The last level has a single word, so a search
 * starts from one word and walks down. With 32-way fan-out the summaries add 1/31 of the base
 * size: about 1.03 bits per tracked bit, and 6 levels cover 2^30 bits.
 */
import { ctz32 } from '../../lib/bitmap.ts';

export class SummaryBitmap {
  /** Number of addressable bits; bits at or past it are never set. */
  readonly sizeBits: number;
  /** levels[0] is the bitmap; each next level summarises the words of the one below. */
  private readonly levels: Uint32Array[];

  constructor(sizeBits: number) {
    if (!Number.isInteger(sizeBits) || sizeBits < 0 || sizeBits > 2 ** 32) {
      throw new RangeError(`SummaryBitmap size out of range: ${sizeBits}`);
    }
    this.sizeBits = sizeBits;
    this.levels = [];
    let words = Math.max(1, Math.ceil(sizeBits / 32));
    this.levels.push(new Uint32Array(words));
    while (words > 1) {
      words = Math.ceil(words / 32);
      this.levels.push(new Uint32Array(words));
    }
  }

  /** Bytes held by all levels, for memory accounting. */
  get byteLength(): number {
    let n = 0;
    for (const level of this.levels) n += level.byteLength;
    return n;
  }

  test(i: number): boolean {
    return (this.levels[0][i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /** Sets bit i (which must be below sizeBits), updating summaries that change. */
  set(i: number): void {
    let index = i;
    for (let k = 0; k < this.levels.length; k++) {
      const words = this.levels[k];
      const w = index >>> 5;
      const before = words[w];
      words[w] = before | (1 << (index & 31));
      // Only a word going from empty to non-empty changes the level above.
      if (before !== 0) return;
      index = w;
    }
  }

  /** Clears bit i, updating summaries that change. */
  clear(i: number): void {
    let index = i;
    for (let k = 0; k < this.levels.length; k++) {
      const words = this.levels[k];
      const w = index >>> 5;
      const after = words[w] & ~(1 << (index & 31));
      words[w] = after;
      // Only a word becoming empty changes the level above.
      if (after !== 0) return;
      index = w;
    }
  }

  /** The lowest set bit, or -1 when none is set. */
  first(): number {
    return this.nextSetAt(0, 0);
  }

  /** The lowest set bit at or after `from`, or -1. */
  nextSet(from: number): number {
    if (from >= this.sizeBits) return -1;
    return this.nextSetAt(0, from);
  }

  /**
   * The lowest set bit at or after `from` in level k, or -1. When the word holding `from` has
   * nothing left, the level above names the next non-empty word; recursion depth is bounded
   * by the level count.
   */
  private nextSetAt(k: number, from: number): number {
    const words = this.levels[k];
    const w = from >>> 5;
    if (w >= words.length) return -1;
    const word = words[w] & (0xffffffff << (from & 31));
    if (word !== 0) return w * 32 + ctz32(word);
    if (k + 1 >= this.levels.length) return -1;
    const nextWord = this.nextSetAt(k + 1, w + 1);
    if (nextWord < 0) return -1;
    return nextWord * 32 + ctz32(words[nextWord]);
  }

  /**
   * Checks that every summary bit matches the level below. Returns a description of the first
   * mismatch, or null. For audits and tests; costs a pass over all words.
   */
  auditSummaries(): string | null {
    for (let k = 0; k + 1 < this.levels.length; k++) {
      const below = this.levels[k];
      const above = this.levels[k + 1];
      for (let w = 0; w < below.length; w++) {
        const marked = (above[w >>> 5] & (1 << (w & 31))) !== 0;
        if (marked !== (below[w] !== 0)) return `level ${k + 1} bit ${w} is ${marked} but word is ${below[w]}`;
      }
    }
    return null;
  }
}
