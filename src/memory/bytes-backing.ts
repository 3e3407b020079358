/**
 * Guest RAM as real bytes in one ArrayBuffer or SharedArrayBuffer: the backing of real mode
 * (vCPU worker threads write the shared buffer) and of small simulations. It is both the
 * byte-level GuestMemory that devices use and the page-level PageStore the engine uses.
 *
 * Node 20 limits one typed array to 2^32 - 1 elements (4 GiB), so one BytesBacking holds up to
 * 4 GiB minus a page; bigger guests use CompactBacking. Multi-byte accessors are little-endian
 * and may cross page boundaries. Access from several threads needs no locks for correctness of
 * the memory model (JavaScript has no data-race undefined behaviour); ordering with the dirty
 * log comes from its atomics (see DirtyTrackingMemory).
 */
import { assert } from '../lib/assert.ts';
import { GuestMemoryError, type GuestMemory } from './guest-memory.ts';
import { PAGE_SIZE_BYTES, PAGE_SIZE_WORDS, digestPageWords } from './page-content.ts';
import {
  MemoryConfigError,
  checkPageCount,
  checkPageIndex,
  pageEqualsByBytes,
  type PageStore,
} from './page-store.ts';

/** The largest BytesBacking, in bytes: whole pages below Node 20's 4 GiB typed-array limit. */
export const BYTES_BACKING_MAX_SIZE_BYTES = 4294967296 - PAGE_SIZE_BYTES;

const TWO_32 = 4294967296;

export interface BytesBackingOptions {
  /** Allocate a SharedArrayBuffer (for worker threads) instead of an ArrayBuffer. */
  readonly shared?: boolean;
}

export class BytesBacking implements PageStore, GuestMemory {
  readonly kind = 'bytes' as const;
  /** The buffer holding guest RAM; share it with a worker and attach there with `over`. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** All of guest RAM; page i is bytes[i * 4096, (i + 1) * 4096). */
  readonly bytes: Uint8Array;
  /** The same memory as 32-bit words, for whole-page scans. */
  readonly words: Uint32Array;
  /** The same memory for little-endian multi-byte access. */
  private readonly view: DataView;
  /** Total bytes of guest RAM. */
  readonly sizeBytes: number;
  /** Number of guest pages. */
  readonly pageCount: number;
  /** Bytes per page (4096). */
  readonly pageSizeBytes = PAGE_SIZE_BYTES;

  /**
   * Allocates zeroed guest RAM of `sizeBytes` (a whole number of pages), or wraps an existing
   * buffer (for example a SharedArrayBuffer a worker received; see also `over`).
   */
  constructor(size: number | ArrayBuffer | SharedArrayBuffer, options: BytesBackingOptions = {}) {
    const sizeBytes = typeof size === 'number' ? size : size.byteLength;
    BytesBacking.checkSize(sizeBytes);
    const buffer = typeof size !== 'number' ? size : options.shared === true ? new SharedArrayBuffer(sizeBytes) : new ArrayBuffer(sizeBytes);
    this.buffer = buffer;
    this.bytes = new Uint8Array(buffer);
    this.words = new Uint32Array(buffer);
    this.view = new DataView(buffer);
    this.sizeBytes = sizeBytes;
    this.pageCount = checkPageCount(sizeBytes / PAGE_SIZE_BYTES);
  }

  /** Wraps an existing buffer without copying it. */
  static over(buffer: ArrayBuffer | SharedArrayBuffer): BytesBacking {
    return new BytesBacking(buffer);
  }

  private static checkSize(sizeBytes: number): void {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes % PAGE_SIZE_BYTES !== 0) {
      throw new MemoryConfigError('bad-size', `guest RAM of ${sizeBytes} bytes is not a whole number of 4096-byte pages`);
    }
    if (sizeBytes > BYTES_BACKING_MAX_SIZE_BYTES) {
      throw new MemoryConfigError('too-large', `a bytes backing holds at most ${BYTES_BACKING_MAX_SIZE_BYTES} bytes; use a compact backing`);
    }
  }

  /** Throws GuestMemoryError unless [gpa, gpa + lengthBytes) lies inside guest RAM. */
  private check(gpa: number, lengthBytes: number): void {
    if (!(gpa >= 0 && gpa + lengthBytes <= this.sizeBytes && Math.floor(gpa) === gpa)) {
      throw new GuestMemoryError(gpa, lengthBytes, this.sizeBytes);
    }
  }

  // ---- GuestMemory -------------------------------------------------------------------------

  readU8(gpa: number): number {
    this.check(gpa, 1);
    return this.bytes[gpa];
  }

  readLe16(gpa: number): number {
    this.check(gpa, 2);
    return this.view.getUint16(gpa, true);
  }

  readLe32(gpa: number): number {
    this.check(gpa, 4);
    return this.view.getUint32(gpa, true);
  }

  /** A little-endian u64 as a number: exact up to 2^53, rounded above (still out of any range). */
  readLe64(gpa: number): number {
    this.check(gpa, 8);
    return this.view.getUint32(gpa + 4, true) * TWO_32 + this.view.getUint32(gpa, true);
  }

  writeU8(gpa: number, value: number): void {
    this.check(gpa, 1);
    this.bytes[gpa] = value;
  }

  writeLe16(gpa: number, value: number): void {
    this.check(gpa, 2);
    this.view.setUint16(gpa, value, true);
  }

  writeLe32(gpa: number, value: number): void {
    this.check(gpa, 4);
    this.view.setUint32(gpa, value, true);
  }

  /** Writes a non-negative safe integer as a little-endian u64. */
  writeLe64(gpa: number, value: number): void {
    this.check(gpa, 8);
    this.view.setUint32(gpa, value % TWO_32, true);
    this.view.setUint32(gpa + 4, Math.floor(value / TWO_32), true);
  }

  read(gpa: number, lengthBytes: number): Uint8Array {
    this.check(gpa, lengthBytes);
    return this.bytes.slice(gpa, gpa + lengthBytes);
  }

  write(gpa: number, bytes: Uint8Array): void {
    this.check(gpa, bytes.length);
    this.bytes.set(bytes, gpa);
  }

  // ---- PageStore ---------------------------------------------------------------------------

  /** The byte offset of page `pageIndex` in `bytes`, for loops that index `bytes` directly. */
  pageByteOffset(pageIndex: number): number {
    checkPageIndex(pageIndex, this.pageCount);
    return pageIndex * PAGE_SIZE_BYTES;
  }

  /** A view of the page's bytes, sharing memory with the backing (no copy). */
  pageView(pageIndex: number): Uint8Array {
    checkPageIndex(pageIndex, this.pageCount);
    return this.bytes.subarray(pageIndex * PAGE_SIZE_BYTES, (pageIndex + 1) * PAGE_SIZE_BYTES);
  }

  isZeroPage(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    const base = pageIndex * PAGE_SIZE_WORDS;
    for (let k = 0; k < PAGE_SIZE_WORDS; k++) if (this.words[base + k] !== 0) return false;
    return true;
  }

  copyPageOut(pageIndex: number, out: Uint8Array, outOffset = 0): void {
    checkPageIndex(pageIndex, this.pageCount);
    assert(outOffset >= 0 && out.length - outOffset >= PAGE_SIZE_BYTES, 'copyPageOut: output shorter than a page');
    // One native copy: a subarray view costs far less than a JS loop over 4 KiB, and it is
    // fast whatever the alignment of `out` (stream buffers are rarely 4-byte aligned).
    const start = pageIndex * PAGE_SIZE_BYTES;
    out.set(this.bytes.subarray(start, start + PAGE_SIZE_BYTES), outOffset);
  }

  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset = 0): void {
    checkPageIndex(pageIndex, this.pageCount);
    assert(bytesOffset >= 0 && bytes.length - bytesOffset >= PAGE_SIZE_BYTES, 'writePageFrom: input shorter than a page');
    this.bytes.set(bytes.subarray(bytesOffset, bytesOffset + PAGE_SIZE_BYTES), pageIndex * PAGE_SIZE_BYTES);
  }

  zeroPage(pageIndex: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    this.words.fill(0, pageIndex * PAGE_SIZE_WORDS, (pageIndex + 1) * PAGE_SIZE_WORDS);
  }

  /** Adds 1 to the little-endian u64 at page offset 0, carrying from the low into the high word. */
  bumpPage(pageIndex: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    const w = pageIndex * PAGE_SIZE_WORDS;
    const low = (this.words[w] + 1) >>> 0;
    this.words[w] = low;
    if (low === 0) this.words[w + 1] = (this.words[w + 1] + 1) >>> 0;
  }

  pageDigest(pageIndex: number): number {
    checkPageIndex(pageIndex, this.pageCount);
    return digestPageWords(this.words, pageIndex * PAGE_SIZE_WORDS);
  }

  pageEquals(other: PageStore, pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    if (other instanceof BytesBacking) {
      checkPageIndex(pageIndex, other.pageCount);
      const base = pageIndex * PAGE_SIZE_WORDS;
      for (let k = 0; k < PAGE_SIZE_WORDS; k++) if (this.words[base + k] !== other.words[base + k]) return false;
      return true;
    }
    return pageEqualsByBytes(this, other, pageIndex);
  }

  bookkeepingBytes(): number {
    return this.sizeBytes;
  }
}
