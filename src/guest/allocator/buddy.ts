/**
 * The guest's page allocator: a binary buddy allocator like Linux's zone free lists, over page
 * frames [0, pageCount) of 4 KiB pages, orders 0..MAX_PAGE_ORDER (10, inclusive: 4 MiB blocks,
 * the free page hint block of Linux's virtio-balloon driver).
 *
 * Free lists. Linux keeps a doubly linked list per order. Here each order has a SummaryBitmap
 * with one bit per naturally aligned block of that order (bit b of order k = pages
 * [b << k, (b + 1) << k)). Removing a buddy during coalescing is a bit clear, and finding a
 * block is a short walk down the summary levels. Allocated blocks are remembered by one plain
 * bit per block head per order, which is what catches double frees and wrong orders (Linux
 * keeps that in struct page; we do not model struct page).
 *
 * Cost per page: free bitmaps sum over orders of 1/2^k ~ 2 bits (+3% summaries) and allocated
 * bitmaps ~ 2 bits: about 0.52 bytes per page (1 MiB for an 8 GiB guest, 136 MiB for 1 TiB), plus
 * the freed list's 8 bytes per 4 MiB block (2 MiB for 1 TiB).
 * alloc and free are O(MAX_PAGE_ORDER * summary levels) with no allocation.
 *
 * Policy (deterministic): allocation takes the smallest order that has a free block, as
 * __rmqueue_smallest does. A split keeps the low half and frees the high halves, as Linux's
 * expand() does. Freed blocks coalesce with free buddies up to MAX_PAGE_ORDER. Within an order:
 * - MAX_PAGE_ORDER follows Linux's list. Memory released at boot (memblock_free_all) goes to the
 *   tail in address order (FPI_TO_TAIL), so it is taken lowest first. A block that a free
 *   completes goes to the head (__free_one_page: buddy_merge_likely is false from order
 *   MAX_ORDER - 2 up), so the block freed last is taken first. A process that exits after
 *   touching memory bottom-up therefore gives the free page hint driver its highest block first.
 *   The freed blocks are a doubly linked list beside the bitmap (`recent*`, 8 bytes a block).
 * - Lower orders: the block at the lowest address (a documented difference: Linux takes the
 *   head, or the tail when a merge is likely).
 *
 * Direct reclaim (optional): `allocReclaiming` is `alloc` for callers that may wait for
 * memory (user-space faults, a growing process). When no block is free it asks `reclaimer`
 * (Linux's shrinkers, here the balloon driver's free page hint shrinker) to give memory back
 * and tries once more. Plain `alloc` never reclaims (__GFP_NORETRY | __GFP_NOMEMALLOC, as the
 * hint worker's own allocations are). kswapd and the OOM killer are not modelled.
 *
 * Reserved pages (a kernel image, offlined memory) are neither free nor allocated. The
 * leftover pages of a pageCount that is not a multiple of 1024, and pages next to reserved
 * ranges, live in lower-order blocks.
 */
import { Bitmap } from '../../lib/bitmap.ts';
import { RangeTable } from '../../lib/range-table.ts';
import type { Range } from '../../lib/range-table.ts';
import { SummaryBitmap } from './summary-bitmap.ts';

/** The highest order (inclusive): Linux's MAX_PAGE_ORDER on x86-64, 2^10 pages = 4 MiB. */
export const MAX_PAGE_ORDER = 10;
/** Pages in a block of MAX_PAGE_ORDER. */
export const MAX_ORDER_PAGES = 1 << MAX_PAGE_ORDER;
/** recentPrev of a MAX_PAGE_ORDER block that is not on the freed list. */
const NOT_RECENT = -2;
/** The largest page count supported: page frame numbers stay positive int32 values. */
export const BUDDY_PAGE_COUNT_MAX = 2 ** 31 - 1;

export type BuddyErrorCode =
  | 'double-free' // The block, or part of it, is already free.
  | 'not-allocated' // No allocated block starts at that page (interior page, reserved page).
  | 'order-mismatch' // A block starts there but was allocated with another order.
  | 'bad-argument' // An order, page number or range out of bounds or misaligned.
  | 'not-reserved' // unreserveRange over pages that are not reserved.
  | 'not-free'; // reserveRangeOrThrow over pages that are not all free.

/** A misuse of the allocator. Its code says which; pfn and order are as passed in. */
export class BuddyError extends Error {
  override name = 'BuddyError';
  constructor(readonly code: BuddyErrorCode, readonly pfn: number, readonly order: number, message: string) {
    super(message);
  }
}

export interface BuddyOptions {
  /** Number of 4 KiB page frames managed, [0, pageCount). */
  readonly pageCount: number;
  /** Page ranges [start, end) that are never free (a kernel image, holes). */
  readonly reserved?: readonly Range[];
}

export class BuddyAllocator {
  /** Number of page frames managed. */
  readonly pageCount: number;
  /** freeLists[k] bit b: the block of order k at page b << k is on the free list. */
  private readonly freeLists: SummaryBitmap[];
  /** allocatedHeads[k] bit b: a block of order k starting at page b << k is allocated. */
  private readonly allocatedHeads: Bitmap[];
  /** freeBlockCounts[k]: number of free blocks of order k. */
  private readonly freeBlockCounts: number[];
  /** Pages that are neither free nor allocatable. */
  private readonly reservedRanges: RangeTable;
  /** Pages in free blocks. */
  private freePageCount = 0;
  /** Pages in allocated blocks. */
  private allocatedPageCount = 0;
  /** Free MAX_PAGE_ORDER blocks that a free completed, newest first: the head, or -1. */
  private recentHead = -1;
  /** Per MAX_PAGE_ORDER block: the next (older) freed block, or -1. */
  private readonly recentNext: Int32Array;
  /** Per MAX_PAGE_ORDER block: the previous (newer) freed block, -1 at the head, NOT_RECENT when not listed. */
  private readonly recentPrev: Int32Array;
  /**
   * Direct reclaim for `allocReclaiming`: asked to free memory for a block of `order` that
   * could not be allocated; returns the pages it freed. Null: no reclaim.
   */
  reclaimer: ((order: number) => number) | null = null;
  /** Told about every free (a host's audit of which memory the guest gave up); null: nobody. */
  onFree: ((pfn: number, order: number) => void) | null = null;
  /** Times `allocReclaiming` had to reclaim, and the pages the reclaimer freed. */
  reclaimCalls = 0;
  reclaimedPages = 0;

  constructor(options: BuddyOptions) {
    const { pageCount } = options;
    if (!Number.isInteger(pageCount) || pageCount < 0 || pageCount > BUDDY_PAGE_COUNT_MAX) {
      throw new BuddyError('bad-argument', pageCount, 0, `page count out of range: ${pageCount}`);
    }
    this.pageCount = pageCount;
    this.freeLists = [];
    this.allocatedHeads = [];
    this.freeBlockCounts = [];
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      this.freeLists.push(new SummaryBitmap(Math.floor(pageCount / 2 ** k)));
      this.allocatedHeads.push(new Bitmap(Math.floor(pageCount / 2 ** k)));
      this.freeBlockCounts.push(0);
    }
    const topBlocks = this.freeLists[MAX_PAGE_ORDER].sizeBits;
    this.recentNext = new Int32Array(topBlocks).fill(-1);
    this.recentPrev = new Int32Array(topBlocks).fill(NOT_RECENT);
    // Start with everything reserved, then hand the usable ranges to the allocator, the way
    // memblock releases memory to the buddy allocator at boot.
    this.reservedRanges = new RangeTable();
    this.reservedRanges.add(0, pageCount);
    const usable = new RangeTable();
    usable.add(0, pageCount);
    for (const r of options.reserved ?? []) {
      this.checkRange(r.start, r.end);
      usable.remove(r.start, r.end);
    }
    for (const r of usable) this.unreserveRange(r.start, r.end);
  }

  /** Pages in free blocks. */
  get freePages(): number {
    return this.freePageCount;
  }

  /** Pages in allocated blocks. */
  get allocatedPages(): number {
    return this.allocatedPageCount;
  }

  /** Reserved pages: pageCount - free - allocated. */
  get reservedPages(): number {
    return this.pageCount - this.freePageCount - this.allocatedPageCount;
  }

  /** Number of free blocks of `order` (Linux's free_area[order].nr_free). */
  freeBlocksAt(order: number): number {
    this.checkOrder(order);
    return this.freeBlockCounts[order];
  }

  /** Bytes of bookkeeping held, for memory accounting. */
  get bookkeepingBytes(): number {
    let n = 0;
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) n += this.freeLists[k].byteLength + this.allocatedHeads[k].words.byteLength;
    return n + this.recentNext.byteLength + this.recentPrev.byteLength;
  }

  /**
   * Allocates a naturally aligned block of 2^order pages and returns its first page frame
   * number, or -1 when no block of that order or larger is free (no reclaim, no compaction:
   * like __GFP_NORETRY).
   */
  alloc(order: number): number {
    this.checkOrder(order);
    for (let k = order; k <= MAX_PAGE_ORDER; k++) {
      if (this.freeBlockCounts[k] === 0) continue;
      const block = k === MAX_PAGE_ORDER && this.recentHead >= 0 ? this.recentHead : this.freeLists[k].first();
      this.removeFree(k, block);
      const pfn = block << k;
      // Split down to the requested order, keeping the low half and freeing each high half.
      for (let j = k - 1; j >= order; j--) this.addFree(j, (pfn >> j) + 1);
      this.allocatedHeads[order].set(pfn >> order);
      const pages = 1 << order;
      this.freePageCount -= pages;
      this.allocatedPageCount += pages;
      return pfn;
    }
    return -1;
  }

  /**
   * `alloc`, but when nothing is free the reclaimer is asked for memory and the allocation
   * is tried once more (Linux's direct reclaim). Returns -1 when that did not help either.
   */
  allocReclaiming(order: number): number {
    const pfn = this.alloc(order);
    if (pfn >= 0 || this.reclaimer === null) return pfn;
    this.reclaimCalls++;
    const freed = this.reclaimer(order);
    this.reclaimedPages += freed;
    return freed > 0 ? this.alloc(order) : -1;
  }

  /** Frees a block returned by alloc(order), merging it with free buddies. */
  free(pfn: number, order: number): void {
    this.checkOrder(order);
    if (!Number.isInteger(pfn) || pfn < 0 || pfn + (1 << order) > this.pageCount || (pfn & ((1 << order) - 1)) !== 0) {
      throw new BuddyError('bad-argument', pfn, order, `free of page ${pfn} order ${order}: not an aligned block inside [0, ${this.pageCount})`);
    }
    if (!this.allocatedHeads[order].test(pfn >> order)) throw this.freeError(pfn, order);
    this.allocatedHeads[order].clear(pfn >> order);
    const pages = 1 << order;
    this.allocatedPageCount -= pages;
    this.freePageCount += pages;
    this.insertCoalescing(pfn, order, true);
    if (this.onFree !== null) this.onFree(pfn, order);
  }

  /** True when page `pfn` lies in a free block. */
  isFree(pfn: number): boolean {
    return this.freeBlockOrderOf(pfn) >= 0;
  }

  /** True when page `pfn` lies in an allocated block. */
  isAllocated(pfn: number): boolean {
    return this.allocatedBlockOrderOf(pfn) >= 0;
  }

  /** True when page `pfn` is reserved (never free, never allocated). */
  isReserved(pfn: number): boolean {
    return this.reservedRanges.has(pfn);
  }

  /** The order of the allocated block that starts at `pfn`, or -1 if none starts there. */
  allocatedOrderAt(pfn: number): number {
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      if ((pfn & ((1 << k) - 1)) !== 0) break;
      const block = pfn >> k;
      if (block < this.allocatedHeads[k].sizeBits && this.allocatedHeads[k].test(block)) return k;
    }
    return -1;
  }

  /** The order of the free block that contains `pfn`, or -1 if the page is not free. */
  freeBlockOrderOf(pfn: number): number {
    if (!(pfn >= 0 && pfn < this.pageCount)) return -1;
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      const block = pfn >> k;
      if (block < this.freeLists[k].sizeBits && this.freeLists[k].test(block)) return k;
    }
    return -1;
  }

  /** The order of the allocated block that contains `pfn`, or -1 if none does. */
  allocatedBlockOrderOf(pfn: number): number {
    if (!(pfn >= 0 && pfn < this.pageCount)) return -1;
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      const block = pfn >> k;
      if (block < this.allocatedHeads[k].sizeBits && this.allocatedHeads[k].test(block)) return k;
    }
    return -1;
  }

  /**
   * Takes [start, end) out of the allocator, as memory offlining does: every page must be free,
   * and afterwards all are reserved. Returns false, changing nothing, if any page is not free.
   */
  reserveRange(start: number, end: number): boolean {
    this.checkRange(start, end);
    for (let pos = start; pos < end;) {
      const k = this.freeBlockOrderOf(pos);
      if (k < 0) return false;
      pos = ((pos >> k) + 1) << k;
    }
    for (let pos = start; pos < end;) {
      const k = this.freeBlockOrderOf(pos);
      const head = (pos >> k) << k;
      const blockEnd = head + (1 << k);
      this.removeFree(k, head >> k);
      // The parts of the block outside the range stay free. Their buddies lie inside the old
      // block and are partly taken, so they cannot merge: insert without coalescing.
      this.carve(head, Math.max(head, start), false);
      this.carve(Math.min(blockEnd, end), blockEnd, false);
      pos = blockEnd;
    }
    this.freePageCount -= end - start;
    this.reservedRanges.add(start, end);
    return true;
  }

  /** Gives reserved pages [start, end) to the allocator as free memory (memory onlining). */
  unreserveRange(start: number, end: number): void {
    this.checkRange(start, end);
    if (!this.reservedRanges.covers(start, end)) {
      throw new BuddyError('not-reserved', start, 0, `unreserve of [${start}, ${end}): not all pages are reserved`);
    }
    this.reservedRanges.remove(start, end);
    this.freePageCount += end - start;
    this.carve(start, end, true);
  }

  /** The reserved ranges, canonical and sorted. */
  reservedRangeList(): Range[] {
    return this.reservedRanges.toArray();
  }

  /** Calls `visit` with the first page of each free block of `order`, in address order. */
  forEachFreeBlock(order: number, visit: (pfn: number) => void): void {
    this.checkOrder(order);
    const list = this.freeLists[order];
    for (let b = list.first(); b >= 0; b = list.nextSet(b + 1)) visit(b << order);
  }

  /** Calls `visit` for each allocated block, by order then address. */
  forEachAllocatedBlock(visit: (pfn: number, order: number) => void): void {
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      const heads = this.allocatedHeads[k];
      for (let b = heads.nextSet(0); b >= 0; b = heads.nextSet(b + 1)) visit(b << k, k);
    }
  }

  /** Summary-level consistency of every free list, for audits: null when all agree. */
  auditFreeListSummaries(): string | null {
    for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
      const problem = this.freeLists[k].auditSummaries();
      if (problem !== null) return `order ${k}: ${problem}`;
    }
    return null;
  }

  /**
   * The freed MAX_PAGE_ORDER list's consistency, for audits: null when every listed block is a
   * free MAX_PAGE_ORDER block, the links agree both ways and end, and no unlisted block says
   * otherwise.
   */
  auditRecentList(): string | null {
    const top = this.freeLists[MAX_PAGE_ORDER];
    let listed = 0;
    let prev = -1;
    for (let b = this.recentHead; b >= 0; b = this.recentNext[b]) {
      if (++listed > top.sizeBits) return 'the freed list has a cycle';
      if (!top.test(b)) return `block ${b} is on the freed list but not free at order ${MAX_PAGE_ORDER}`;
      if (this.recentPrev[b] !== prev) return `block ${b} links back to ${this.recentPrev[b]}, not ${prev}`;
      prev = b;
    }
    let marked = 0;
    for (let b = 0; b < top.sizeBits; b++) if (this.recentPrev[b] !== NOT_RECENT) marked++;
    return marked === listed ? null : `${marked} blocks are marked as listed, ${listed} are on the freed list`;
  }

  /**
   * Inserts a free block, merging it upward with free buddies. `freed`: a free (not boot), so
   * a block that ends at MAX_PAGE_ORDER goes to the head of the list.
   */
  private insertCoalescing(pfn: number, order: number, freed: boolean): void {
    let block = pfn >> order;
    let k = order;
    while (k < MAX_PAGE_ORDER) {
      const buddy = block ^ 1;
      if (buddy >= this.freeLists[k].sizeBits || !this.freeLists[k].test(buddy)) break;
      this.removeFree(k, buddy);
      block >>= 1;
      k++;
    }
    this.addFree(k, block);
    if (freed && k === MAX_PAGE_ORDER) this.pushRecent(block);
  }

  /**
   * Splits [start, end) into maximal naturally aligned blocks and inserts each as free,
   * merging with buddies when `coalesce` is set.
   */
  private carve(start: number, end: number, coalesce: boolean): void {
    let pos = start;
    while (pos < end) {
      let k = MAX_PAGE_ORDER;
      while ((pos & ((1 << k) - 1)) !== 0 || pos + (1 << k) > end) k--;
      if (coalesce) this.insertCoalescing(pos, k, false);
      else this.addFree(k, pos >> k);
      pos += 1 << k;
    }
  }

  private addFree(order: number, block: number): void {
    this.freeLists[order].set(block);
    this.freeBlockCounts[order]++;
  }

  private removeFree(order: number, block: number): void {
    this.freeLists[order].clear(block);
    this.freeBlockCounts[order]--;
    if (order === MAX_PAGE_ORDER && this.recentPrev[block] !== NOT_RECENT) this.unlinkRecent(block);
  }

  private pushRecent(block: number): void {
    this.recentNext[block] = this.recentHead;
    this.recentPrev[block] = -1;
    if (this.recentHead >= 0) this.recentPrev[this.recentHead] = block;
    this.recentHead = block;
  }

  private unlinkRecent(block: number): void {
    const prev = this.recentPrev[block];
    const next = this.recentNext[block];
    if (prev >= 0) this.recentNext[prev] = next;
    else this.recentHead = next;
    if (next >= 0) this.recentPrev[next] = prev;
    this.recentPrev[block] = NOT_RECENT;
    this.recentNext[block] = -1;
  }

  /** Classifies a free of something that is not an allocated block of that order. */
  private freeError(pfn: number, order: number): BuddyError {
    if (this.isFree(pfn)) return new BuddyError('double-free', pfn, order, `double free of page ${pfn} order ${order}`);
    const actual = this.allocatedOrderAt(pfn);
    if (actual >= 0) {
      return new BuddyError('order-mismatch', pfn, order, `free of page ${pfn} with order ${order}, allocated with order ${actual}`);
    }
    const why = this.isReserved(pfn) ? 'reserved' : 'inside another block';
    return new BuddyError('not-allocated', pfn, order, `free of page ${pfn} order ${order}: not an allocated block (${why})`);
  }

  private checkOrder(order: number): void {
    if (!Number.isInteger(order) || order < 0 || order > MAX_PAGE_ORDER) {
      throw new BuddyError('bad-argument', -1, order, `order out of range 0..${MAX_PAGE_ORDER}: ${order}`);
    }
  }

  private checkRange(start: number, end: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.pageCount || start > end) {
      throw new BuddyError('bad-argument', start, 0, `range [${start}, ${end}) is not inside [0, ${this.pageCount})`);
    }
  }
}
