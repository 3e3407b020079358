/**
 * Guest RAM as one version number per page, for simulated guests too large for real bytes
 * (a 1 TiB guest has 268,435,456 pages: 1 GiB of 32-bit versions, or 512 MiB of 16-bit ones).
 * A page's bytes are a pure function of (pageIndex, version), see page-content.ts: version 0 is
 * the zero page; any other version v is a pseudo-random page whose first 8 bytes are v as a
 * little-endian u64. Single-threaded: the simulator owns it.
 *
 * Version semantics, and the approximation they make:
 * - bumpPage adds 1 to the version, which is exactly what a workload that increments the u64
 *   at page offset 0 does to bytes 0..7 (QEMU's byte-0 incrementer, for its first 255 steps;
 *   after that a real byte wraps where the version carries into byte 1). The rest of the page
 *   changes too, as if the guest had rewritten it.
 * - A byte-level write that changes only byte 0 (of all the bytes it writes) sets the version's
 *   low byte to the new value, so byte 0 always reads back exactly what was written there.
 * - Any other changing write keeps byte 0 exact and adds 1 to the "generation" (the version
 *   divided by 256): the page becomes a new pseudo-random page. The written bytes other than
 *   byte 0 do not read back as written. A write that stores the bytes already there changes
 *   nothing, and a whole-page write of representable bytes (zeros, or a page materialized
 *   from a version) is exact.
 * - Versions stay below versionLimit = 2^bits - 256, so the generation wraps (to 1) before the
 *   top 256 values, one of which marks exact pages.
 *
 * Exact pages: a bounded number of pages (exactPageLimit) can be held as real bytes, for
 * memory that devices read back (virtqueue rings) and for pages received from a peer that no
 * version represents. makeExact pins a page as exact for good (a destination pins the same
 * ring pages as its source); writePageFrom stores an unrepresentable page as exact if there is
 * room and throws CompactPageError otherwise, and such an unpinned page goes back to a version
 * when it is next set to representable content.
 */
import { isZeroRange } from '../lib/zero-range.ts';
import { GuestMemoryError, type GuestMemory } from './guest-memory.ts';
import {
  PAGE_SIZE_BYTES,
  compactByte,
  compactVersionOfPage,
  digestPageBytes,
  isZeroPageBytes,
  materializeCompactPage,
} from './page-content.ts';
import {
  EXACT_PAGE_VERSION,
  MemoryConfigError,
  checkPageCount,
  checkPageIndex,
  isVersionedPageStore,
  pageEqualsByBytes,
  pageIndexOfGpa,
  type PageStore,
  type VersionedPageStore,
} from './page-store.ts';

/** Why a compact store refused a page. */
export type CompactPageReason = 'bad-version' | 'not-representable';

/** Thrown when a compact store cannot hold the requested page content. */
export class CompactPageError extends Error {
  override name = 'CompactPageError';
  constructor(readonly reason: CompactPageReason, readonly pageIndex: number, detail: string) {
    super(`Compact page ${pageIndex}: ${detail}`);
  }
}

export interface CompactBackingOptions {
  /** Width of one version: 32 (default) or 16 bits. */
  readonly versionBits?: 16 | 32;
  /** How many pages may be held as exact bytes; 256 (1 MiB) by default. */
  readonly exactPageLimit?: number;
}

/** The default bound on exact pages. */
export const DEFAULT_EXACT_PAGE_LIMIT = 256;
/** Estimated bytes of one exact page beyond its 4096 content bytes (Map entry, typed array). */
const EXACT_PAGE_OVERHEAD_BYTES = 160;
const TWO_32 = 4294967296;
/** Pages per span of zeroPages: each span is tested for being zero already in one call. */
const ZERO_SPAN_PAGES = 16384;

/** A page-sized scratch buffer for digests and whole-page reads. */
const scratchPage = new Uint8Array(PAGE_SIZE_BYTES);
/** Eight bytes for encoding a multi-byte accessor's value before writing it. */
const scratchValue = new Uint8Array(8);

export class CompactBacking implements VersionedPageStore, GuestMemory {
  readonly kind = 'compact' as const;
  /** Number of guest pages. */
  readonly pageCount: number;
  /** Total bytes of guest RAM. */
  readonly sizeBytes: number;
  /** Bytes per page (4096). */
  readonly pageSizeBytes = PAGE_SIZE_BYTES;
  /** Width of one version in bits. */
  readonly versionBits: 16 | 32;
  /** Every version is below this: 2^versionBits - 256. */
  readonly versionLimit: number;
  /** The bound on exact pages. */
  readonly exactPageLimit: number;
  /** One version per page; exactMarker for a page held in exactPages. */
  readonly versions: Uint16Array | Uint32Array;
  /** The value in `versions` that marks an exact page (2^versionBits - 1). */
  private readonly exactMarker: number;
  /** The bytes of exact pages, by page index. */
  private readonly exactPages = new Map<number, Uint8Array>();
  /** Exact pages that stay exact whatever is written (makeExact). */
  private readonly pinnedPages = new Set<number>();

  constructor(pageCount: number, options: CompactBackingOptions = {}) {
    this.pageCount = checkPageCount(pageCount);
    this.sizeBytes = pageCount * PAGE_SIZE_BYTES;
    const bits = options.versionBits ?? 32;
    if (bits !== 16 && bits !== 32) throw new MemoryConfigError('bad-option', `versionBits must be 16 or 32, not ${String(bits)}`);
    this.versionBits = bits;
    this.versionLimit = 2 ** bits - 256;
    this.exactMarker = 2 ** bits - 1;
    const limit = options.exactPageLimit ?? DEFAULT_EXACT_PAGE_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new MemoryConfigError('bad-option', `exactPageLimit ${limit}`);
    this.exactPageLimit = limit;
    this.versions = bits === 16 ? new Uint16Array(pageCount) : new Uint32Array(pageCount);
  }

  // ---- Versions ----------------------------------------------------------------------------

  pageVersion(pageIndex: number): number {
    checkPageIndex(pageIndex, this.pageCount);
    const v = this.versions[pageIndex];
    return v === this.exactMarker ? EXACT_PAGE_VERSION : v;
  }

  acceptsVersion(version: number): boolean {
    return Number.isInteger(version) && version >= 0 && version < this.versionLimit;
  }

  setVersion(pageIndex: number, version: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    if (!this.acceptsVersion(version)) {
      throw new CompactPageError('bad-version', pageIndex, `version ${version} is not below ${this.versionLimit}`);
    }
    if (this.versions[pageIndex] === this.exactMarker) {
      if (this.pinnedPages.has(pageIndex)) {
        materializeCompactPage(pageIndex, version, this.exactPages.get(pageIndex)!, 0);
        return;
      }
      this.exactPages.delete(pageIndex);
    }
    this.versions[pageIndex] = version;
  }

  /** Adds 1 to the version (see the file comment); an exact page gets its u64 at 0 incremented. */
  bumpPage(pageIndex: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    const v = this.versions[pageIndex];
    if (v === this.exactMarker) {
      const page = this.exactPages.get(pageIndex)!;
      for (let i = 0; i < 8; i++) if (++page[i] !== 0) break;
      return;
    }
    const next = v + 1;
    this.versions[pageIndex] = next < this.versionLimit ? next : 256;
  }

  /** True when the page is held as exact bytes. */
  isExactPage(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    return this.versions[pageIndex] === this.exactMarker;
  }

  /** How many pages are held as exact bytes. */
  get exactPageCount(): number {
    return this.exactPages.size;
  }

  /**
   * Pins the page as exact bytes from now on (its current content is kept), so that byte
   * writes to it read back exactly. Throws CompactPageError when exactPageLimit is reached.
   */
  makeExact(pageIndex: number): void {
    checkPageIndex(pageIndex, this.pageCount);
    if (this.versions[pageIndex] !== this.exactMarker) {
      const page = this.newExactPage(pageIndex);
      materializeCompactPage(pageIndex, this.versions[pageIndex], page, 0);
      this.exactPages.set(pageIndex, page);
      this.versions[pageIndex] = this.exactMarker;
    }
    this.pinnedPages.add(pageIndex);
  }

  private newExactPage(pageIndex: number): Uint8Array {
    if (this.exactPages.size >= this.exactPageLimit) {
      throw new CompactPageError('not-representable', pageIndex, `no version represents the page and all ${this.exactPageLimit} exact pages are in use`);
    }
    return new Uint8Array(PAGE_SIZE_BYTES);
  }

  /** The version that represents bytes[offset .. + 4096) as this page, or -1 when none does. */
  versionOfBytes(pageIndex: number, bytes: Uint8Array, offset = 0): number {
    return compactVersionOfPage(pageIndex, bytes, offset, this.versionLimit);
  }

  // ---- PageStore ---------------------------------------------------------------------------

  /** Writes the page's bytes into out[outOffset ..]; the same as copyPageOut. */
  materializePage(pageIndex: number, out: Uint8Array, outOffset = 0): void {
    this.copyPageOut(pageIndex, out, outOffset);
  }

  copyPageOut(pageIndex: number, out: Uint8Array, outOffset = 0): void {
    checkPageIndex(pageIndex, this.pageCount);
    const v = this.versions[pageIndex];
    if (v === this.exactMarker) out.set(this.exactPages.get(pageIndex)!, outOffset);
    else materializeCompactPage(pageIndex, v, out, outOffset);
  }

  isZeroPage(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    const v = this.versions[pageIndex];
    if (v === this.exactMarker) return isZeroPageBytes(this.exactPages.get(pageIndex)!, 0);
    return v === 0;
  }

  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset = 0): void {
    checkPageIndex(pageIndex, this.pageCount);
    if (!(bytesOffset >= 0 && bytes.length - bytesOffset >= PAGE_SIZE_BYTES)) throw new RangeError('writePageFrom: input shorter than a page');
    const version = this.pinnedPages.has(pageIndex) ? -1 : this.versionOfBytes(pageIndex, bytes, bytesOffset);
    if (version >= 0) {
      this.setVersion(pageIndex, version);
      return;
    }
    let page = this.exactPages.get(pageIndex);
    if (page === undefined) {
      page = this.newExactPage(pageIndex);
      this.exactPages.set(pageIndex, page);
      this.versions[pageIndex] = this.exactMarker;
    }
    for (let i = 0; i < PAGE_SIZE_BYTES; i++) page[i] = bytes[bytesOffset + i];
  }

  zeroPage(pageIndex: number): void {
    this.setVersion(pageIndex, 0);
  }

  /**
   * zeroPage over [start, end), by spans: a span whose versions are all 0 already is only
   * read (lib/zero-range.ts; memory never written stays unallocated), in the others the exact
   * pages are zeroed one by one (a native search finds them) and the rest by fill.
   */
  zeroPages(start: number, end: number): void {
    if (end <= start) return;
    checkPageIndex(start, this.pageCount);
    checkPageIndex(end - 1, this.pageCount);
    for (let spanStart = start; spanStart < end; spanStart += ZERO_SPAN_PAGES) {
      const run = this.versions.subarray(spanStart, Math.min(end, spanStart + ZERO_SPAN_PAGES));
      if (isZeroRange(new Uint8Array(run.buffer, run.byteOffset, run.byteLength), 0, run.byteLength)) continue;
      let from = 0;
      for (let k = run.indexOf(this.exactMarker); k !== -1; k = run.indexOf(this.exactMarker, k + 1)) {
        run.fill(0, from, k);
        this.zeroPage(spanStart + k);
        from = k + 1;
      }
      run.fill(0, from);
    }
  }

  pageDigest(pageIndex: number): number {
    this.copyPageOut(pageIndex, scratchPage, 0);
    return digestPageBytes(scratchPage, 0);
  }

  pageEquals(other: PageStore, pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.pageCount);
    if (isVersionedPageStore(other)) {
      const mine = this.pageVersion(pageIndex);
      const theirs = other.pageVersion(pageIndex);
      // Content is a function of (pageIndex, version) and distinct versions differ in bytes
      // 0..3, so for two version pages equal versions are exactly equal contents.
      if (mine !== EXACT_PAGE_VERSION && theirs !== EXACT_PAGE_VERSION) return mine === theirs;
    }
    return pageEqualsByBytes(this, other, pageIndex);
  }

  /** The versions array, the exact pages and their estimated overhead. */
  bookkeepingBytes(): number {
    return this.versions.byteLength + this.exactPages.size * (PAGE_SIZE_BYTES + EXACT_PAGE_OVERHEAD_BYTES);
  }

  // ---- GuestMemory -------------------------------------------------------------------------

  private check(gpa: number, lengthBytes: number): void {
    if (!(gpa >= 0 && gpa + lengthBytes <= this.sizeBytes && Math.floor(gpa) === gpa)) {
      throw new GuestMemoryError(gpa, lengthBytes, this.sizeBytes);
    }
  }

  /** Byte `offsetBytes` of page `pageIndex` (both already checked). */
  private byteAt(pageIndex: number, offsetBytes: number): number {
    const v = this.versions[pageIndex];
    if (v === this.exactMarker) return this.exactPages.get(pageIndex)![offsetBytes];
    return compactByte(pageIndex, v, offsetBytes);
  }

  /** A little-endian value of `lengthBytes` (at most 4) bytes, possibly across pages. */
  private readLe(gpa: number, lengthBytes: number): number {
    this.check(gpa, lengthBytes);
    let value = 0;
    for (let i = lengthBytes - 1; i >= 0; i--) {
      const at = gpa + i;
      const page = pageIndexOfGpa(at);
      value = value * 256 + this.byteAt(page, at - page * PAGE_SIZE_BYTES);
    }
    return value;
  }

  readU8(gpa: number): number {
    return this.readLe(gpa, 1);
  }

  readLe16(gpa: number): number {
    return this.readLe(gpa, 2);
  }

  readLe32(gpa: number): number {
    return this.readLe(gpa, 4);
  }

  /** A little-endian u64 as a number, rounded above 2^53 exactly as BytesBacking rounds it. */
  readLe64(gpa: number): number {
    this.check(gpa, 8);
    return this.readLe(gpa + 4, 4) * TWO_32 + this.readLe(gpa, 4);
  }

  read(gpa: number, lengthBytes: number): Uint8Array {
    this.check(gpa, lengthBytes);
    const out = new Uint8Array(lengthBytes);
    let done = 0;
    while (done < lengthBytes) {
      const at = gpa + done;
      const page = pageIndexOfGpa(at);
      const offset = at - page * PAGE_SIZE_BYTES;
      const chunk = Math.min(PAGE_SIZE_BYTES - offset, lengthBytes - done);
      if (chunk === PAGE_SIZE_BYTES) this.copyPageOut(page, out, done);
      else for (let i = 0; i < chunk; i++) out[done + i] = this.byteAt(page, offset + i);
      done += chunk;
    }
    return out;
  }

  writeU8(gpa: number, value: number): void {
    scratchValue[0] = value;
    this.writeBytes(gpa, scratchValue, 0, 1);
  }

  writeLe16(gpa: number, value: number): void {
    scratchValue[0] = value;
    scratchValue[1] = value >>> 8;
    this.writeBytes(gpa, scratchValue, 0, 2);
  }

  writeLe32(gpa: number, value: number): void {
    for (let i = 0; i < 4; i++) scratchValue[i] = value >>> (8 * i);
    this.writeBytes(gpa, scratchValue, 0, 4);
  }

  writeLe64(gpa: number, value: number): void {
    const low = value % TWO_32;
    const high = Math.floor(value / TWO_32);
    for (let i = 0; i < 4; i++) {
      scratchValue[i] = low >>> (8 * i);
      scratchValue[4 + i] = high >>> (8 * i);
    }
    this.writeBytes(gpa, scratchValue, 0, 8);
  }

  write(gpa: number, bytes: Uint8Array): void {
    this.writeBytes(gpa, bytes, 0, bytes.length);
  }

  /** Splits a write at page boundaries and applies each piece. */
  private writeBytes(gpa: number, source: Uint8Array, sourceOffset: number, lengthBytes: number): void {
    this.check(gpa, lengthBytes);
    let done = 0;
    while (done < lengthBytes) {
      const at = gpa + done;
      const page = pageIndexOfGpa(at);
      const offset = at - page * PAGE_SIZE_BYTES;
      const chunk = Math.min(PAGE_SIZE_BYTES - offset, lengthBytes - done);
      this.writeWithinPage(page, offset, source, sourceOffset + done, chunk);
      done += chunk;
    }
  }

  /** Applies a write inside one page with the semantics of the file comment. */
  private writeWithinPage(pageIndex: number, offset: number, source: Uint8Array, sourceOffset: number, lengthBytes: number): void {
    const v = this.versions[pageIndex];
    if (v === this.exactMarker) {
      const page = this.exactPages.get(pageIndex)!;
      for (let i = 0; i < lengthBytes; i++) page[offset + i] = source[sourceOffset + i];
      return;
    }
    // Which bytes does the write change: byte 0, and any other?
    const byte0Changed = offset === 0 && (v & 0xff) !== source[sourceOffset];
    let otherChanged = false;
    for (let i = offset === 0 ? 1 : 0; i < lengthBytes && !otherChanged; i++) {
      otherChanged = compactByte(pageIndex, v, offset + i) !== source[sourceOffset + i];
    }
    if (!byte0Changed && !otherChanged) return;
    if (lengthBytes === PAGE_SIZE_BYTES) {
      const exact = this.versionOfBytes(pageIndex, source, sourceOffset);
      if (exact >= 0) {
        this.versions[pageIndex] = exact;
        return;
      }
    }
    const low = v & 0xff;
    if (!otherChanged) {
      this.versions[pageIndex] = v - low + source[sourceOffset];
      return;
    }
    let generation = v - low + 256;
    if (generation >= this.versionLimit) generation = 256;
    this.versions[pageIndex] = generation + (offset === 0 ? source[sourceOffset] : low);
  }
}
