/**
 * A fixed-size bitmap over 32-bit words. Bit i lives in word i >>> 5 at bit i & 31. The
 * words may sit in a SharedArrayBuffer; this class does plain (non-atomic) access, and the
 * dirty log in memory/ layers atomic access over the same layout.
 *
 * Bits at and past sizeBits in the last word are kept clear, so whole-word counts are exact.
 * Single-bit operations do not check their index (they are the hot path); range operations
 * assert that the range lies inside the bitmap.
 */
import { assert } from './assert.ts';

export class Bitmap {
  /** Exactly ceil(sizeBits / 32) words; a longer caller-supplied array is cut to this length. */
  readonly words: Uint32Array;
  /** Number of usable bits. */
  readonly sizeBits: number;

  constructor(sizeBits: number, words?: Uint32Array) {
    assert(Number.isSafeInteger(sizeBits) && sizeBits >= 0, `bad bitmap size ${sizeBits}`);
    this.sizeBits = sizeBits;
    const wordCount = Math.ceil(sizeBits / 32);
    if (words !== undefined && words.length < wordCount) throw new RangeError('bitmap backing too small');
    // A view of exactly wordCount words: count(), setAll() and orFrom() walk `words` whole, so
    // spare words of a larger shared buffer must not be part of it.
    this.words = words === undefined ? new Uint32Array(wordCount) : words.subarray(0, wordCount);
  }

  /** Asserts that [start, end) is a well-formed range inside the bitmap. */
  private checkRange(start: number, end: number): void {
    assert(start >= 0 && end <= this.sizeBits, `bit range [${start}, ${end}) outside bitmap of ${this.sizeBits}`);
  }

  test(i: number): boolean {
    return (this.words[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  set(i: number): void {
    this.words[i >>> 5] |= 1 << (i & 31);
  }

  clear(i: number): void {
    this.words[i >>> 5] &= ~(1 << (i & 31));
  }

  /** Sets bit i and returns whether it was clear before. */
  testAndSet(i: number): boolean {
    const w = i >>> 5;
    const m = 1 << (i & 31);
    const was = this.words[w] & m;
    this.words[w] |= m;
    return was === 0;
  }

  /** Clears bit i and returns whether it was set before. */
  testAndClear(i: number): boolean {
    const w = i >>> 5;
    const m = 1 << (i & 31);
    const was = this.words[w] & m;
    this.words[w] &= ~m;
    return was !== 0;
  }

  /** Sets bits [start, end). */
  setRange(start: number, end: number): void {
    this.applyRange(start, end, true);
  }

  /** Clears bits [start, end). */
  clearRange(start: number, end: number): void {
    this.applyRange(start, end, false);
  }

  /** Counts the set bits in [start, end) and clears them; returns the count. */
  clearRangeCount(start: number, end: number): number {
    const n = this.countRange(start, end);
    this.applyRange(start, end, false);
    return n;
  }

  private applyRange(start: number, end: number, value: boolean): void {
    this.checkRange(start, end);
    if (start >= end) return;
    let i = start;
    while (i < end && (i & 31) !== 0) {
      if (value) this.set(i); else this.clear(i);
      i++;
    }
    while (i + 32 <= end) {
      this.words[i >>> 5] = value ? 0xffffffff : 0;
      i += 32;
    }
    while (i < end) {
      if (value) this.set(i); else this.clear(i);
      i++;
    }
  }

  setAll(): void {
    this.words.fill(0xffffffff);
    this.trimTail();
  }

  clearAll(): void {
    this.words.fill(0);
  }

  /** Zeroes the bits past sizeBits in the last word, so counts stay exact. */
  private trimTail(): void {
    const extra = this.words.length * 32 - this.sizeBits;
    // A mask, not a shift: shifting would move the kept bits as well as drop the extra ones.
    if (extra > 0) this.words[this.words.length - 1] &= 0xffffffff >>> extra;
  }

  count(): number {
    let n = 0;
    for (let w = 0; w < this.words.length; w++) n += popcount32(this.words[w]);
    return n;
  }

  /** Counts the set bits in [start, end). */
  countRange(start: number, end: number): number {
    this.checkRange(start, end);
    let n = 0;
    let i = start;
    while (i < end && (i & 31) !== 0) {
      if (this.test(i)) n++;
      i++;
    }
    while (i + 32 <= end) {
      n += popcount32(this.words[i >>> 5]);
      i += 32;
    }
    while (i < end) {
      if (this.test(i)) n++;
      i++;
    }
    return n;
  }

  /** The index of the first set bit at or after `from`, or -1. */
  nextSet(from: number): number {
    if (from < 0) from = 0;
    if (from >= this.sizeBits) return -1;
    let w = from >>> 5;
    let word = this.words[w] & (0xffffffff << (from & 31));
    while (word === 0) {
      w++;
      if (w >= this.words.length) return -1;
      word = this.words[w];
    }
    const i = w * 32 + ctz32(word);
    return i < this.sizeBits ? i : -1;
  }

  /** The index of the first set bit in [from, end), or -1 (scans only the words of the range). */
  nextSetBelow(from: number, end: number): number {
    if (from < 0) from = 0;
    if (end > this.sizeBits) end = this.sizeBits;
    if (from >= end) return -1;
    let w = from >>> 5;
    const lastWord = (end - 1) >>> 5;
    let word = this.words[w] & (0xffffffff << (from & 31));
    while (word === 0) {
      w++;
      if (w > lastWord) return -1;
      word = this.words[w];
    }
    const i = w * 32 + ctz32(word);
    return i < end ? i : -1;
  }

  /** The index of the first clear bit at or after `from`, or -1. */
  nextClear(from: number): number {
    if (from < 0) from = 0;
    if (from >= this.sizeBits) return -1;
    let w = from >>> 5;
    let word = ~this.words[w] & (0xffffffff << (from & 31));
    while (word === 0) {
      w++;
      if (w >= this.words.length) return -1;
      word = ~this.words[w];
    }
    const i = w * 32 + ctz32(word >>> 0);
    return i < this.sizeBits ? i : -1;
  }

  /** ORs another bitmap of the same size into this one; returns how many bits became set. */
  orFrom(other: Bitmap): number {
    assert(other.sizeBits === this.sizeBits, `orFrom size mismatch: ${other.sizeBits} into ${this.sizeBits}`);
    let added = 0;
    for (let w = 0; w < this.words.length; w++) {
      const incoming = other.words[w] & ~this.words[w];
      if (incoming !== 0) {
        added += popcount32(incoming);
        this.words[w] |= incoming;
      }
    }
    return added;
  }
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}
