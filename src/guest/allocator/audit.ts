/**
 * A full consistency check of a BuddyAllocator, for tests and simulation checkers. It walks
 * every free and allocated block and the reserved ranges, so it costs O(pageCount) time and
 * one byte per page: do not call it on a hot path.
 *
 * Checked: every page is in exactly one of {a free block, an allocated block, a reserved
 * range}; the page and block counters agree with the walk; no two free buddies of the same
 * order below MAX_PAGE_ORDER exist (coalescing is complete); the summary levels of every free
 * list agree with their bitmaps.
 */
import { Bitmap } from '../../lib/bitmap.ts';
import { MAX_PAGE_ORDER } from './buddy.ts';
import type { BuddyAllocator } from './buddy.ts';

/** At most this many problems are listed; the walk stops adding after that. */
export const AUDIT_PROBLEMS_MAX = 20;

/** Page owners recorded during the walk. */
const OWNER_NONE = 0;
const OWNER_FREE = 1;
const OWNER_ALLOCATED = 2;
const OWNER_RESERVED = 3;
const OWNER_NAMES = ['nothing', 'a free block', 'an allocated block', 'a reserved range'];

/** Returns the problems found, empty when the allocator is consistent. */
export function auditBuddy(allocator: BuddyAllocator): string[] {
  const problems: string[] = [];
  const report = (text: string): void => {
    if (problems.length < AUDIT_PROBLEMS_MAX) problems.push(text);
  };
  const owners = new Uint8Array(allocator.pageCount);
  const claim = (start: number, end: number, owner: number): void => {
    for (let p = start; p < end; p++) {
      if (owners[p] !== OWNER_NONE) report(`page ${p} is in ${OWNER_NAMES[owners[p]]} and in ${OWNER_NAMES[owner]}`);
      owners[p] = owner;
    }
  };

  let freePages = 0;
  for (let k = 0; k <= MAX_PAGE_ORDER; k++) {
    const seen = new Bitmap(Math.floor(allocator.pageCount / 2 ** k));
    let blocks = 0;
    allocator.forEachFreeBlock(k, (pfn) => {
      blocks++;
      freePages += 2 ** k;
      seen.set(pfn >> k);
      claim(pfn, pfn + 2 ** k, OWNER_FREE);
    });
    if (blocks !== allocator.freeBlocksAt(k)) {
      report(`order ${k}: ${blocks} free blocks listed, counter says ${allocator.freeBlocksAt(k)}`);
    }
    if (k < MAX_PAGE_ORDER) {
      for (let b = seen.nextSet(0); b >= 0; b = seen.nextSet(b + 1)) {
        if ((b & 1) === 0 && b + 1 < seen.sizeBits && seen.test(b + 1)) report(`order ${k}: free buddies at pages ${b << k} and ${(b + 1) << k} were not merged`);
      }
    }
  }
  if (freePages !== allocator.freePages) report(`free blocks hold ${freePages} pages, counter says ${allocator.freePages}`);

  let allocatedPages = 0;
  allocator.forEachAllocatedBlock((pfn, order) => {
    allocatedPages += 2 ** order;
    claim(pfn, pfn + 2 ** order, OWNER_ALLOCATED);
  });
  if (allocatedPages !== allocator.allocatedPages) report(`allocated blocks hold ${allocatedPages} pages, counter says ${allocator.allocatedPages}`);

  for (const r of allocator.reservedRangeList()) claim(r.start, r.end, OWNER_RESERVED);
  const unowned = owners.indexOf(OWNER_NONE);
  if (unowned >= 0) report(`page ${unowned} is in no free block, allocated block or reserved range`);

  const summary = allocator.auditFreeListSummaries();
  if (summary !== null) report(`free list summary: ${summary}`);
  const recent = allocator.auditRecentList();
  if (recent !== null) report(`freed list: ${recent}`);
  return problems;
}
