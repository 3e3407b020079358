/**
 * Page contents as pure functions: the deterministic content of a compact page, whole-page
 * digests and zero checks. Both backings use these, so a compact page and a bytes page holding
 * the same bytes have the same digest.
 *
 * A compact page with version v (v > 0) is 4096 bytes: bytes 0..7 are v as a little-endian
 * u64, and every further 32-bit word k (k = 2..1023) is `compactWord(pageIndex, v, k)`, a
 * counter-based hash, so any single word can be computed without the rest of the page.
 * Version 0 is the all-zero page. A version-0 page is the only zero page: every other version
 * has a non-zero byte among bytes 0..7.
 *
 * Whole-word access goes through Uint32Array views, so the layout assumes a little-endian host
 * (every platform Node 20 ships for); the module asserts that when it loads.
 */
import { assert } from '../lib/assert.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';

/** Bytes per guest page (x86_64 TARGET_PAGE_SIZE). */
export const PAGE_SIZE_BYTES = TARGET_PAGE_SIZE;
/** 32-bit words per guest page. */
export const PAGE_SIZE_WORDS = PAGE_SIZE_BYTES / 4;

assert(new Uint8Array(new Uint32Array([1]).buffer)[0] === 1, 'livemig needs a little-endian host');

/** Murmur3's 32-bit finalizer: a bijection of 32-bit integers with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The per-page seed of the compact content function; pageIndex may exceed 2^32. */
export function compactPageSeed(pageIndex: number, version: number): number {
  const low = pageIndex >>> 0;
  const high = Math.floor(pageIndex / 4294967296) >>> 0;
  return fmix32(Math.imul(low, 0x9e3779b1) ^ fmix32((version ^ Math.imul(high, 0x85ebca77) ^ 0x27d4eb2f) >>> 0));
}

/** Word `wordIndex` (2..1023) of a compact page, given the page's seed. */
export function compactWordFromSeed(seed: number, wordIndex: number): number {
  return fmix32((seed + Math.imul(wordIndex, 0x9e3779b9)) >>> 0);
}

/** Word `wordIndex` (0..1023) of the compact page (pageIndex, version). */
export function compactWord(pageIndex: number, version: number, wordIndex: number): number {
  if (version === 0) return 0;
  if (wordIndex === 0) return version >>> 0;
  if (wordIndex === 1) return 0;
  return compactWordFromSeed(compactPageSeed(pageIndex, version), wordIndex);
}

/** Byte `offsetBytes` (0..4095) of the compact page (pageIndex, version). */
export function compactByte(pageIndex: number, version: number, offsetBytes: number): number {
  return (compactWord(pageIndex, version, offsetBytes >>> 2) >>> ((offsetBytes & 3) * 8)) & 0xff;
}

/**
 * A one-entry cache of a Uint32Array over a whole buffer, so that repeated page operations on
 * the same buffer (a backing, a scratch page, a stream chunk) allocate no view per page.
 */
class WordViewCache {
  /** The buffer the cached view covers, or null before first use. */
  private buffer: ArrayBufferLike | null = null;
  /** A word view over all of `buffer` (its length rounded down to whole words). */
  private words: Uint32Array = new Uint32Array(0);

  over(buffer: ArrayBufferLike): Uint32Array {
    if (buffer !== this.buffer) {
      this.words = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
      this.buffer = buffer;
    }
    return this.words;
  }
}

/** The view cache for single-operand helpers and the first operand of comparisons. */
const primaryViews = new WordViewCache();
/** The view cache for the second operand of comparisons. */
const secondaryViews = new WordViewCache();

/**
 * A Uint32Array over the whole of `buffer`, from a one-entry cache. The cache keeps the last
 * buffer alive until another one replaces it, so backings pass their own word views to the
 * *Words functions instead, and only caller buffers (scratch pages, stream chunks) land here.
 */
export function wordsOver(buffer: ArrayBufferLike): Uint32Array {
  return primaryViews.over(buffer);
}

/** Writes the compact page (pageIndex, version) into out[outOffset .. outOffset + 4096). */
export function materializeCompactPage(pageIndex: number, version: number, out: Uint8Array, outOffset = 0): void {
  assert(out.length - outOffset >= PAGE_SIZE_BYTES && outOffset >= 0, 'materialize: output shorter than a page');
  const byteOffset = out.byteOffset + outOffset;
  if (version === 0) {
    out.fill(0, outOffset, outOffset + PAGE_SIZE_BYTES);
    return;
  }
  const seed = compactPageSeed(pageIndex, version);
  if ((byteOffset & 3) === 0) {
    const words = wordsOver(out.buffer);
    const base = byteOffset >>> 2;
    words[base] = version;
    words[base + 1] = 0;
    for (let k = 2; k < PAGE_SIZE_WORDS; k++) words[base + k] = compactWordFromSeed(seed, k);
    return;
  }
  // Unaligned output (rare: a page inside an odd stream chunk): the same words, byte by byte.
  for (let k = 0; k < PAGE_SIZE_WORDS; k++) {
    const w = k === 0 ? version : k === 1 ? 0 : compactWordFromSeed(seed, k);
    const at = outOffset + 4 * k;
    out[at] = w;
    out[at + 1] = w >>> 8;
    out[at + 2] = w >>> 16;
    out[at + 3] = w >>> 24;
  }
}

/** True when bytes[offset .. offset + 4096) are all zero. */
export function isZeroPageBytes(bytes: Uint8Array, offset = 0): boolean {
  assert(bytes.length - offset >= PAGE_SIZE_BYTES && offset >= 0, 'zero check: input shorter than a page');
  const byteOffset = bytes.byteOffset + offset;
  if ((byteOffset & 3) === 0) {
    const words = wordsOver(bytes.buffer);
    const base = byteOffset >>> 2;
    for (let k = 0; k < PAGE_SIZE_WORDS; k++) if (words[base + k] !== 0) return false;
    return true;
  }
  for (let i = 0; i < PAGE_SIZE_BYTES; i++) if (bytes[offset + i] !== 0) return false;
  return true;
}

/** True when the pages at a[aOffset ..] and b[bOffset ..] hold the same 4096 bytes. */
export function pageBytesEqual(a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number): boolean {
  assert(a.length - aOffset >= PAGE_SIZE_BYTES && b.length - bOffset >= PAGE_SIZE_BYTES, 'compare: input shorter than a page');
  const aByte = a.byteOffset + aOffset;
  const bByte = b.byteOffset + bOffset;
  if ((aByte & 3) === 0 && (bByte & 3) === 0) {
    const aWords = primaryViews.over(a.buffer);
    const bWords = secondaryViews.over(b.buffer);
    const aBase = aByte >>> 2;
    const bBase = bByte >>> 2;
    for (let k = 0; k < PAGE_SIZE_WORDS; k++) if (aWords[aBase + k] !== bWords[bBase + k]) return false;
    return true;
  }
  for (let i = 0; i < PAGE_SIZE_BYTES; i++) if (a[aOffset + i] !== b[bOffset + i]) return false;
  return true;
}

/**
 * MurmurHash3 (x86, 32-bit, seed 0) of the page whose words are words[base .. base + 1024).
 * A page is a whole number of words, so there is no tail step. Used for traces and spot
 * checks; equal digests do not prove equal pages.
 */
export function digestPageWords(words: Uint32Array, base: number): number {
  let h = 0;
  for (let k = 0; k < PAGE_SIZE_WORDS; k++) {
    let w = words[base + k];
    w = Math.imul(w, 0xcc9e2d51);
    w = (w << 15) | (w >>> 17);
    w = Math.imul(w, 0x1b873593);
    h ^= w;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return fmix32((h ^ PAGE_SIZE_BYTES) >>> 0);
}

/** Page-sized scratch for digests of unaligned pages. */
const unalignedScratch = new Uint8Array(PAGE_SIZE_BYTES);
/** Word view of unalignedScratch. */
const unalignedScratchWords = new Uint32Array(unalignedScratch.buffer);

/** The digest of the page at bytes[offset .. offset + 4096); see digestPageWords. */
export function digestPageBytes(bytes: Uint8Array, offset = 0): number {
  assert(bytes.length - offset >= PAGE_SIZE_BYTES && offset >= 0, 'digest: input shorter than a page');
  const byteOffset = bytes.byteOffset + offset;
  if ((byteOffset & 3) === 0) return digestPageWords(wordsOver(bytes.buffer), byteOffset >>> 2);
  for (let i = 0; i < PAGE_SIZE_BYTES; i++) unalignedScratch[i] = bytes[offset + i];
  return digestPageWords(unalignedScratchWords, 0);
}

/**
 * The version v < versionLimit whose compact page (pageIndex, v) equals the page at
 * bytes[offset .. offset + 4096), or -1 when no version does. Checks every word without
 * materializing the page.
 */
export function compactVersionOfPage(pageIndex: number, bytes: Uint8Array, offset: number, versionLimit: number): number {
  if (isZeroPageBytes(bytes, offset)) return 0;
  const byteOffset = bytes.byteOffset + offset;
  if ((byteOffset & 3) !== 0) {
    // Unaligned input (rare): check an aligned copy.
    for (let i = 0; i < PAGE_SIZE_BYTES; i++) unalignedScratch[i] = bytes[offset + i];
    return compactVersionOfPage(pageIndex, unalignedScratch, 0, versionLimit);
  }
  const words = wordsOver(bytes.buffer);
  const base = byteOffset >>> 2;
  const version = words[base];
  if (words[base + 1] !== 0 || version === 0 || version >= versionLimit) return -1;
  const seed = compactPageSeed(pageIndex, version);
  for (let k = 2; k < PAGE_SIZE_WORDS; k++) if (words[base + k] !== compactWordFromSeed(seed, k)) return -1;
  return version;
}
