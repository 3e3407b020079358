// Tests for the buddy allocator: example cases for the policy and the typed errors, and
// fast-check properties over random alloc/free sequences (no overlap, exact counters,
// complete coalescing) checked against a simple page-owner model and the full audit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BuddyAllocator, BuddyError, MAX_PAGE_ORDER } from './buddy.ts';
import { auditBuddy } from './audit.ts';
import { SummaryBitmap } from './summary-bitmap.ts';
import type { Range } from '../../lib/range-table.ts';

/** The maximal naturally aligned blocks covering [start, end), as [pfn, order] pairs. */
function canonicalBlocks(start: number, end: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let pos = start;
  while (pos < end) {
    let k = MAX_PAGE_ORDER;
    while (pos % 2 ** k !== 0 || pos + 2 ** k > end) k--;
    out.push([pos, k]);
    pos += 2 ** k;
  }
  return out;
}

/** The free blocks of an allocator, as [pfn, order] pairs sorted by pfn. */
function freeBlocksOf(a: BuddyAllocator): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let k = 0; k <= MAX_PAGE_ORDER; k++) a.forEachFreeBlock(k, (pfn) => out.push([pfn, k]));
  return out.sort((x, y) => x[0] - y[0]);
}

/** The usable (non-reserved) runs of [0, pageCount). */
function usableRuns(pageCount: number, reserved: readonly Range[]): Range[] {
  const mark = new Uint8Array(pageCount);
  for (const r of reserved) mark.fill(1, r.start, r.end);
  const runs: Range[] = [];
  for (let p = 0; p < pageCount;) {
    if (mark[p] === 1) { p++; continue; }
    const start = p;
    while (p < pageCount && mark[p] === 0) p++;
    runs.push({ start, end: p });
  }
  return runs;
}

function expectBuddyError(code: string, f: () => void): void {
  assert.throws(f, (e: unknown) => e instanceof BuddyError && e.code === code);
}

test('a fresh allocator holds maximal blocks, leftover pages in lower orders', () => {
  // 3 * 1024 + 7 pages: three order-10 blocks, then 4 + 2 + 1 pages.
  const a = new BuddyAllocator({ pageCount: 3 * 1024 + 7 });
  assert.equal(a.freePages, 3 * 1024 + 7);
  assert.equal(a.freeBlocksAt(10), 3);
  assert.equal(a.freeBlocksAt(2), 1);
  assert.equal(a.freeBlocksAt(1), 1);
  assert.equal(a.freeBlocksAt(0), 1);
  assert.deepEqual(freeBlocksOf(a), canonicalBlocks(0, 3 * 1024 + 7));
  assert.deepEqual(auditBuddy(a), []);
});

test('allocation takes the smallest order, lowest address, and splits keeping the low half', () => {
  const a = new BuddyAllocator({ pageCount: 2048 });
  assert.equal(a.alloc(0), 0);
  // The split of block 0 left free blocks at 1 (order 0), 2 (order 1), 4 (order 2) ... 512.
  for (let k = 0; k < 10; k++) assert.equal(a.freeBlocksAt(k), 1);
  assert.equal(a.alloc(1), 2);
  assert.equal(a.alloc(0), 1);
  assert.equal(a.alloc(10), 1024);
  assert.equal(a.alloc(10), -1);
  a.free(1024, 10);
  a.free(2, 1);
  a.free(0, 0);
  a.free(1, 0);
  assert.equal(a.freeBlocksAt(10), 2);
  assert.deepEqual(auditBuddy(a), []);
});

test('order 10: boot memory is taken lowest first, a block a free completes is taken first (Linux list head)', () => {
  const a = new BuddyAllocator({ pageCount: 8 * 1024 });
  // Boot memory: lowest first, as memblock_free_all adds it to the tail in address order.
  assert.deepEqual([a.alloc(10), a.alloc(10), a.alloc(10), a.alloc(10)], [0, 1024, 2048, 3072]);
  // A process frees its pages bottom-up, page by page: each block completes when its last page
  // is freed, and goes to the head, so the block freed last comes back first.
  const pages: number[] = [];
  for (let p = a.alloc(0); p >= 0 && p < 7 * 1024; p = a.alloc(0)) pages.push(p);
  assert.equal(pages[0], 4096);
  assert.equal(pages.at(-1)! >= 7 * 1024 - 1, true);
  for (const p of pages) a.free(p, 0);
  a.free(1024, 10);
  assert.deepEqual([a.alloc(10), a.alloc(10), a.alloc(10), a.alloc(10)], [1024, 6144, 5120, 4096]);
  assert.deepEqual(auditBuddy(a), []);
  // A listed block taken by a split or a reservation leaves the list; the rest keeps its order.
  for (const b of [4096, 5120, 6144]) a.free(b, 10);
  assert.equal(a.reserveRange(5120, 5121), true);
  assert.deepEqual(auditBuddy(a), []);
  assert.deepEqual([a.alloc(10), a.alloc(10)], [6144, 4096]);
  assert.deepEqual(auditBuddy(a), []);
});

test('reserved ranges are never handed out and the blocks around them are smaller', () => {
  const a = new BuddyAllocator({ pageCount: 4096, reserved: [{ start: 0, end: 300 }, { start: 2000, end: 2100 }] });
  assert.equal(a.reservedPages, 400);
  assert.equal(a.freePages, 4096 - 400);
  assert.equal(a.isReserved(299), true);
  assert.equal(a.isFree(299), false);
  assert.equal(a.isFree(300), true);
  const runs = usableRuns(4096, [{ start: 0, end: 300 }, { start: 2000, end: 2100 }]);
  assert.deepEqual(freeBlocksOf(a), runs.flatMap((r) => canonicalBlocks(r.start, r.end)));
  expectBuddyError('not-allocated', () => a.free(0, 0));
});

test('double free, wrong order and interior frees are typed errors', () => {
  const a = new BuddyAllocator({ pageCount: 1024 });
  const p = a.alloc(2);
  expectBuddyError('order-mismatch', () => a.free(p, 1));
  expectBuddyError('not-allocated', () => a.free(p + 1, 0));
  expectBuddyError('bad-argument', () => a.free(p + 1, 2));
  expectBuddyError('bad-argument', () => a.alloc(11));
  a.free(p, 2);
  expectBuddyError('double-free', () => a.free(p, 2));
  expectBuddyError('double-free', () => a.free(500, 0));
  assert.deepEqual(auditBuddy(a), []);
});

test('reserveRange takes free pages out and unreserveRange gives them back merged', () => {
  const a = new BuddyAllocator({ pageCount: 4096 });
  const held = a.alloc(0);
  assert.equal(a.reserveRange(0, 1024), false, 'page 0 is allocated');
  assert.equal(a.freePages, 4095);
  assert.equal(a.reserveRange(1500, 2600), true);
  assert.equal(a.reservedPages, 1100);
  assert.equal(a.isFree(1499), true);
  assert.equal(a.isFree(1500), false);
  assert.deepEqual(auditBuddy(a), []);
  expectBuddyError('not-reserved', () => a.unreserveRange(1400, 1600));
  a.unreserveRange(1500, 2600);
  a.free(held, 0);
  assert.equal(a.freeBlocksAt(10), 4);
  assert.deepEqual(auditBuddy(a), []);
});

test('SummaryBitmap finds the next set bit across levels', () => {
  const b = new SummaryBitmap(100_000);
  assert.equal(b.first(), -1);
  for (const i of [99_999, 70_000, 5, 33_000]) b.set(i);
  assert.equal(b.first(), 5);
  assert.equal(b.nextSet(6), 33_000);
  assert.equal(b.nextSet(33_001), 70_000);
  b.clear(70_000);
  assert.equal(b.nextSet(33_001), 99_999);
  assert.equal(b.nextSet(100_000), -1);
  assert.equal(b.auditSummaries(), null);
});

type Command = { kind: 'alloc'; order: number } | { kind: 'free'; pick: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('alloc' as const), order: fc.nat(MAX_PAGE_ORDER) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }) },
);

const layoutArb = fc.integer({ min: 1, max: 5000 }).chain((pageCount) => fc.record({
  pageCount: fc.constant(pageCount),
  reserved: fc.array(
    fc.tuple(fc.nat(pageCount - 1), fc.nat(400)).map(([start, len]) => ({ start, end: Math.min(pageCount, start + len) })),
    { maxLength: 3 },
  ),
}));

test('property: random alloc/free never overlaps, counters stay exact, coalescing is complete', () => {
  fc.assert(fc.property(layoutArb, fc.array(commandArb, { maxLength: 300 }), ({ pageCount, reserved }, commands) => {
    const a = new BuddyAllocator({ pageCount, reserved });
    const reservedPages = a.reservedPages;
    // owner[p] = 1 + index into live of the block holding p, or 0.
    const owner = new Int32Array(pageCount);
    const live: Array<[number, number]> = [];
    let allocated = 0;
    for (const c of commands) {
      if (c.kind === 'alloc') {
        const pfn = a.alloc(c.order);
        if (pfn < 0) {
          // Nothing of that order or above may be free.
          for (let k = c.order; k <= MAX_PAGE_ORDER; k++) assert.equal(a.freeBlocksAt(k), 0);
          continue;
        }
        assert.equal(pfn % 2 ** c.order, 0);
        for (let p = pfn; p < pfn + 2 ** c.order; p++) {
          assert.equal(owner[p], 0, `page ${p} handed out twice`);
          assert.equal(a.isReserved(p), false);
          owner[p] = 1;
        }
        live.push([pfn, c.order]);
        allocated += 2 ** c.order;
      } else if (live.length > 0) {
        const [pfn, order] = live.splice(c.pick % live.length, 1)[0];
        a.free(pfn, order);
        owner.fill(0, pfn, pfn + 2 ** order);
        allocated -= 2 ** order;
      }
      assert.equal(a.allocatedPages, allocated);
      assert.equal(a.freePages, pageCount - reservedPages - allocated);
    }
    assert.deepEqual(auditBuddy(a), []);
    for (const [pfn, order] of live) a.free(pfn, order);
    const runs = usableRuns(pageCount, reserved);
    assert.deepEqual(freeBlocksOf(a), runs.flatMap((r) => canonicalBlocks(r.start, r.end)));
    if (reserved.length === 0) assert.equal(a.freeBlocksAt(10), Math.floor(pageCount / 1024));
    assert.deepEqual(auditBuddy(a), []);
  }), { numRuns: 150 });
});

test('property: reserve/unreserve of random ranges keeps the allocator consistent', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4000 }), fc.array(fc.tuple(fc.nat(3999), fc.nat(600), fc.boolean()), { maxLength: 20 }), (pageCount, ops) => {
    const a = new BuddyAllocator({ pageCount });
    const taken: Range[] = [];
    for (const [s, len, release] of ops) {
      if (release && taken.length > 0) {
        const r = taken.pop()!;
        a.unreserveRange(r.start, r.end);
      } else {
        const start = s % pageCount;
        const end = Math.min(pageCount, start + len);
        if (a.reserveRange(start, end)) taken.push({ start, end });
      }
      assert.deepEqual(auditBuddy(a), []);
    }
    for (const r of taken.reverse()) a.unreserveRange(r.start, r.end);
    assert.deepEqual(freeBlocksOf(a), canonicalBlocks(0, pageCount));
  }), { numRuns: 60 });
});

test('direct reclaim: allocReclaiming asks the reclaimer once when nothing is free; plain alloc never does; frees are reported', () => {
  const buddy = new BuddyAllocator({ pageCount: 2048 });
  const held = [buddy.alloc(10), buddy.alloc(10)]; // a shrinker's two held blocks: nothing free
  const frees: string[] = [];
  buddy.onFree = (pfn, order) => frees.push(`${pfn}/${order}`);
  assert.equal(buddy.allocReclaiming(0), -1, 'no reclaimer: fails like alloc');
  buddy.reclaimer = (order) => {
    assert.equal(order, 0);
    const pfn = held.pop();
    if (pfn === undefined) return 0;
    buddy.free(pfn, 10);
    return 1024;
  };
  assert.equal(buddy.alloc(0), -1, 'alloc does not reclaim');
  assert.equal(buddy.allocReclaiming(0), 1024);
  assert.deepEqual(frees, ['1024/10']);
  assert.equal(buddy.reclaimCalls, 1);
  assert.equal(buddy.reclaimedPages, 1024);
  for (let i = 1; i < 1024; i++) assert.ok(buddy.allocReclaiming(0) >= 0);
  assert.ok(buddy.allocReclaiming(0) >= 0, 'the second block');
  for (let i = 1; i < 1024; i++) buddy.allocReclaiming(0);
  assert.equal(buddy.allocReclaiming(0), -1, 'the reclaimer has nothing left');
  assert.equal(buddy.reclaimCalls, 3);
});
