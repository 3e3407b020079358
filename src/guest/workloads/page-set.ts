/**
 * The pages a workload works on, indexed 0..pageCount-1: either a contiguous range of page
 * frames (no allocator, or memory the workload owns by construction) or equal-order blocks
 * taken from the guest's buddy allocator, so that the allocator, and through it the balloon
 * driver, sees the memory as in use. pageAt(i) is O(1) and allocation-free.
 *
 * Cost: 4 bytes per block for allocated sets (4 KiB per 4 GiB with order-10 blocks), nothing
 * for ranges.
 */
import { MAX_PAGE_ORDER } from '../allocator/buddy.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import { WorkloadConfigError, WorkloadOutOfMemoryError } from './types.ts';

export class PageSet {
  /** Number of pages in the set. */
  readonly pageCount: number;
  /** First page frame of a range set; unused for block sets. */
  private readonly firstPage: number;
  /** First page frame of each block, in allocation order; null for a range set. */
  private readonly blockPfns: Int32Array | null;
  /** Order of every block of a block set; 0 for a range set. */
  readonly blockOrder: number;

  private constructor(pageCount: number, firstPage: number, blockPfns: Int32Array | null, blockOrder: number) {
    this.pageCount = pageCount;
    this.firstPage = firstPage;
    this.blockPfns = blockPfns;
    this.blockOrder = blockOrder;
  }

  /** Pages [firstPage, firstPage + pageCount). */
  static range(firstPage: number, pageCount: number): PageSet {
    if (!Number.isInteger(firstPage) || !Number.isInteger(pageCount) || firstPage < 0 || pageCount < 0) {
      throw new WorkloadConfigError(`bad page range: first ${firstPage}, count ${pageCount}`);
    }
    return new PageSet(pageCount, firstPage, null, 0);
  }

  /**
   * Allocates at least `pageCount` pages as blocks of `order` (the count is rounded up to whole
   * blocks). On failure frees what it took and throws WorkloadOutOfMemoryError.
   */
  static allocate(allocator: BuddyAllocator, pageCount: number, order = MAX_PAGE_ORDER): PageSet {
    if (!Number.isInteger(pageCount) || pageCount < 0) throw new WorkloadConfigError(`bad page count: ${pageCount}`);
    if (!Number.isInteger(order) || order < 0 || order > MAX_PAGE_ORDER) throw new WorkloadConfigError(`bad block order: ${order}`);
    const blockCount = Math.ceil(pageCount / 2 ** order);
    const pfns = new Int32Array(blockCount);
    for (let b = 0; b < blockCount; b++) {
      const pfn = allocator.alloc(order);
      if (pfn < 0) {
        const free = allocator.freePages;
        for (let j = 0; j < b; j++) allocator.free(pfns[j], order);
        throw new WorkloadOutOfMemoryError(blockCount * 2 ** order, free + b * 2 ** order);
      }
      pfns[b] = pfn;
    }
    return new PageSet(blockCount * 2 ** order, 0, pfns, order);
  }

  /** The page frame number of the set's i-th page. */
  pageAt(i: number): number {
    if (this.blockPfns === null) return this.firstPage + i;
    return this.blockPfns[i >>> this.blockOrder] + (i & ((1 << this.blockOrder) - 1));
  }

  /** True when the set's pages came from an allocator. */
  get isAllocated(): boolean {
    return this.blockPfns !== null;
  }

  /** Gives an allocated set's blocks back to the allocator; a range set has nothing to free. */
  release(allocator: BuddyAllocator): void {
    if (this.blockPfns === null) return;
    for (let b = 0; b < this.blockPfns.length; b++) allocator.free(this.blockPfns[b], this.blockOrder);
  }

  /** The largest order ≤ MAX_PAGE_ORDER whose block does not exceed pageCount (at least 0). */
  static orderFor(pageCount: number): number {
    let order = 0;
    while (order < MAX_PAGE_ORDER && 2 ** (order + 1) <= pageCount) order++;
    return order;
  }
}
