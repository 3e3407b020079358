/**
 * The page-level view of guest RAM that the migration engine uses, whatever holds the pages.
 * Two backings implement it: BytesBacking (real bytes, for real mode and small simulations)
 * and CompactBacking (one version number per page, for huge simulated guests). The engine
 * moves pages with copyPageOut on the source and writePageFrom on the destination, so any
 * pair of backings interoperates; transferPage takes a faster path when it can.
 *
 * Pages are numbered from 0 at guest physical address 0; page i covers
 * [i * 4096, (i + 1) * 4096). Page-level calls check the page index and throw PageRangeError
 * on a bad one (a cheap compare, kept on the hot path because a typed array silently ignores
 * an out-of-range store).
 */
import { PAGE_SIZE_BYTES } from './page-content.ts';

/** Which representation a store uses. */
export type PageStoreKind = 'bytes' | 'compact';

export interface PageStore {
  /** The representation, for callers that take a backing-specific fast path. */
  readonly kind: PageStoreKind;
  /** Number of guest pages. */
  readonly pageCount: number;
  /** Bytes per page: always PAGE_SIZE_BYTES (4096). */
  readonly pageSizeBytes: number;
  /** pageCount * pageSizeBytes. */
  readonly sizeBytes: number;
  /** True when every byte of the page is zero. */
  isZeroPage(pageIndex: number): boolean;
  /** Copies the page's 4096 bytes into out[outOffset ..]. */
  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void;
  /**
   * Sets the page to bytes[bytesOffset .. + 4096). A compact store accepts only bytes it can
   * represent and throws CompactPageError otherwise (see CompactBacking).
   */
  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset?: number): void;
  /** Sets every byte of the page to zero (a zero-page record; a discarded page). */
  zeroPage(pageIndex: number): void;
  /** Optional: zeroPage on every page of [start, end), in far less than one call per page. */
  zeroPages?(start: number, end: number): void;
  /**
   * Changes the page the way a simple workload does: adds 1 to the little-endian u64 at page
   * offset 0. Exact in a bytes store; in a compact store it adds 1 to the version, which also
   * changes the rest of the page (see CompactBacking for the approximation).
   */
  bumpPage(pageIndex: number): void;
  /** MurmurHash3-32 of the page's bytes; equal bytes give equal digests in either store. */
  pageDigest(pageIndex: number): number;
  /** True when this store's page equals `other`'s page with the same index. */
  pageEquals(other: PageStore, pageIndex: number): boolean;
  /** Bytes of process memory this store holds (page contents plus its own bookkeeping). */
  bookkeepingBytes(): number;
}

/** Thrown for a page index outside the store (a RangeError, as for other bad indexes). */
export class PageRangeError extends RangeError {
  override name = 'PageRangeError';
  constructor(readonly pageIndex: number, readonly pageCount: number) {
    super(`Page index ${pageIndex} out of range (guest has ${pageCount} pages)`);
  }
}

/** Why a memory object could not be created. */
export type MemoryConfigReason = 'bad-size' | 'too-large' | 'bad-buffer' | 'bad-option';

/** Thrown when a backing, log or map is created with an unusable size, buffer or option. */
export class MemoryConfigError extends Error {
  override name = 'MemoryConfigError';
  constructor(readonly reason: MemoryConfigReason, detail: string) {
    super(`Invalid memory configuration (${reason}): ${detail}`);
  }
}

/** Throws PageRangeError unless 0 <= pageIndex < pageCount and pageIndex is an integer. */
export function checkPageIndex(pageIndex: number, pageCount: number): void {
  if (!(pageIndex >= 0 && pageIndex < pageCount && Math.floor(pageIndex) === pageIndex)) {
    throw new PageRangeError(pageIndex, pageCount);
  }
}

/** The page index that holds guest physical address `gpa` (gpa may exceed 2^32). */
export function pageIndexOfGpa(gpa: number): number {
  return gpa < 4294967296 ? gpa >>> 12 : Math.floor(gpa / PAGE_SIZE_BYTES);
}

/**
 * The most pages a store, log or map may have: 2^32 - 1 (16 TiB), the longest typed array
 * Node 20 allows, which also keeps page indexes valid operands of `>>>`.
 */
export const MAX_PAGE_COUNT = 4294967295;

/** Validates a page count for a new store, log or map, and returns it. */
export function checkPageCount(pageCount: number): number {
  if (!Number.isSafeInteger(pageCount) || pageCount < 0) {
    throw new MemoryConfigError('bad-size', `page count ${pageCount} is not a non-negative integer`);
  }
  if (pageCount > MAX_PAGE_COUNT) throw new MemoryConfigError('too-large', `${pageCount} pages exceed the limit of ${MAX_PAGE_COUNT}`);
  return pageCount;
}

/** Page-sized scratch buffers for comparisons that must materialize both sides. */
const scratchA = new Uint8Array(PAGE_SIZE_BYTES);
const scratchB = new Uint8Array(PAGE_SIZE_BYTES);
/** Word views of the scratch buffers, made once. */
const scratchWordsA = new Uint32Array(scratchA.buffer);
const scratchWordsB = new Uint32Array(scratchB.buffer);

/**
 * The generic page comparison: copies both pages out and compares bytes. Backings call it when
 * they have no faster way (different representations, or exact pages in a compact store).
 */
export function pageEqualsByBytes(a: PageStore, b: PageStore, pageIndex: number): boolean {
  a.copyPageOut(pageIndex, scratchA, 0);
  b.copyPageOut(pageIndex, scratchB, 0);
  for (let k = 0; k < scratchWordsA.length; k++) if (scratchWordsA[k] !== scratchWordsB[k]) return false;
  return true;
}

/** The version value pageVersion reports for a compact page held as exact bytes. */
export const EXACT_PAGE_VERSION = -1;

/** The version interface of a compact store (see CompactBacking). */
export interface VersionedPageStore extends PageStore {
  readonly kind: 'compact';
  /** The page's version, or EXACT_PAGE_VERSION when the page is held as exact bytes. */
  pageVersion(pageIndex: number): number;
  /** True when `version` is a version this store can hold. */
  acceptsVersion(version: number): boolean;
  /** Sets the page's content to that of `version` (0 = zero page). */
  setVersion(pageIndex: number, version: number): void;
}

/** Narrows a store to the compact (versioned) interface. */
export function isVersionedPageStore(store: PageStore): store is VersionedPageStore {
  return store.kind === 'compact';
}

/**
 * Copies page `pageIndex` from one store to another, as a migration does (the source's page
 * becomes the destination's). `scratch` is a caller-owned page buffer, reused across calls.
 * Compact to compact copies the version without materializing bytes when it can.
 */
export function transferPage(from: PageStore, to: PageStore, pageIndex: number, scratch: Uint8Array): void {
  if (isVersionedPageStore(from) && isVersionedPageStore(to)) {
    const version = from.pageVersion(pageIndex);
    if (version !== EXACT_PAGE_VERSION && to.acceptsVersion(version)) {
      to.setVersion(pageIndex, version);
      return;
    }
  }
  if (from.isZeroPage(pageIndex)) {
    to.zeroPage(pageIndex);
    return;
  }
  from.copyPageOut(pageIndex, scratch, 0);
  to.writePageFrom(pageIndex, scratch, 0);
}
