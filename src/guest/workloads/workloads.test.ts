// Tests for the workloads: determinism (same seed and step times give the same writes, for
// every kind), pacing (rate, per-step cap, no catch-up after skipTo or a stall), memory
// ownership (churn and allocated sets only write allocated pages), and the phases of
// alloc-then-free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../lib/prng.ts';
import { MiB, NS_PER_MS, NS_PER_S } from '../../lib/units.ts';
import { BuddyAllocator } from '../allocator/buddy.ts';
import { auditBuddy } from '../allocator/audit.ts';
import { ArrayPageTarget } from './array-target.ts';
import { BlockHeap } from './block-heap.ts';
import { createWorkload, NOT_STALLED, PageSet, WorkloadConfigError, WorkloadOutOfMemoryError } from './index.ts';
import type { ChurnWorkload, AllocThenFreeWorkload, IncrementerWorkload, Workload, WorkloadSpec } from './index.ts';

const PAGES = 2048; // 8 MiB

/** A target that hashes every write (page, offset, value) in order, FNV-1a style. */
class HashingTarget extends ArrayPageTarget {
  /** Hash of all writes so far. */
  hash = 0x811c9dc5;
  /** Called before each write; tests use it to check ownership. */
  onWrite: ((page: number) => void) | null = null;

  override writeByte(pageIndex: number, offsetInPage: number, value: number): void {
    this.onWrite?.(pageIndex);
    for (const x of [pageIndex, offsetInPage, value]) this.hash = Math.imul(this.hash ^ x, 0x01000193) >>> 0;
    super.writeByte(pageIndex, offsetInPage, value);
  }
}

const SPECS: WorkloadSpec[] = [
  { kind: 'idle', backgroundBytesPerS: 40 * 4096 },
  { kind: 'incrementer', rateBytesPerS: 4 * MiB, sizeBytes: 4 * MiB },
  { kind: 'hot-set', sizeBytes: 1 * MiB, rateBytesPerS: 2 * MiB },
  { kind: 'random', rateBytesPerS: 2 * MiB, sizeBytes: 2 * MiB },
  { kind: 'churn', usedTargetBytes: 3 * MiB, rateBytesPerS: 8 * MiB, lifetimeMeanNs: 200 * NS_PER_MS },
  { kind: 'alloc-then-free', rateBytesPerS: 16 * MiB, holdNs: 100 * NS_PER_MS },
  { kind: 'mix', parts: [{ kind: 'hot-set', sizeBytes: 64 * 4096, rateBytesPerS: 1 * MiB }, { kind: 'churn', usedTargetBytes: 1 * MiB, rateBytesPerS: 1 * MiB }] },
];

/** Runs a spec with a seed over irregular step times; returns the write hash and stats. */
function run(spec: WorkloadSpec, seed: number, stepTimesNs: readonly number[]) {
  const allocator = new BuddyAllocator({ pageCount: PAGES, reserved: [{ start: 0, end: 64 }] });
  const target = new HashingTarget(PAGES);
  // With an allocator, every workload writes only memory the guest has allocated.
  target.onWrite = (p) => assert.ok(allocator.isAllocated(p), `${spec.kind} wrote unallocated page ${p}`);
  const workload = createWorkload(spec, { pageCount: PAGES, prng: new Prng(seed), allocator });
  for (const t of stepTimesNs) assert.equal(workload.step(t, target), NOT_STALLED);
  assert.deepEqual(auditBuddy(allocator), []);
  return { hash: target.hash, stats: workload.stats(), allocator, workload };
}

function stepTimes(seed: number, count: number, spanNs: number): number[] {
  const prng = new Prng(seed);
  const times = [0];
  for (let i = 1; i < count; i++) times.push(times[i - 1] + prng.int(0, Math.floor((2 * spanNs) / count)));
  return times;
}

test('every workload is deterministic (same seed and step times, same writes) and writes only allocated pages', () => {
  const times = stepTimes(7, 120, 2 * NS_PER_S);
  for (const spec of SPECS) {
    const first = run(spec, 42, times);
    const second = run(spec, 42, times);
    assert.equal(first.hash, second.hash, spec.kind);
    assert.deepEqual(first.stats, second.stats, spec.kind);
    assert.ok(first.stats.pageWrites > 0, `${spec.kind} wrote nothing`);
    if (spec.kind === 'hot-set' || spec.kind === 'random' || spec.kind === 'churn' || spec.kind === 'mix') {
      assert.notEqual(run(spec, 43, times).hash, first.hash, `${spec.kind} ignores its seed`);
    }
  }
});

test('writes follow the rate, and the measured rate is reported', () => {
  const target = new ArrayPageTarget(PAGES);
  const w = createWorkload({ kind: 'random', rateBytesPerS: 1000 * 4096 }, { pageCount: PAGES, prng: new Prng(1) });
  for (let t = 0; t <= NS_PER_S; t += 7 * NS_PER_MS) w.step(t, target);
  w.step(NS_PER_S, target);
  const s = w.stats();
  assert.equal(s.pageWrites, 1000);
  assert.equal(s.rateBytesPerS, 1000 * 4096);
  assert.equal(s.writtenBytesPerS, 1000 * 4096);
  let total = 0;
  for (let p = 0; p < PAGES; p++) total += target.writeCounts[p];
  assert.equal(total, 1000);
});

test('skipTo forgives the gap and the per-step cap drops a backlog', () => {
  const target = new ArrayPageTarget(PAGES);
  const w = createWorkload({ kind: 'incrementer', rateBytesPerS: 1000 * 4096 }, { pageCount: PAGES, prng: new Prng(1) });
  w.step(0, target);
  w.step(NS_PER_S / 2, target);
  w.skipTo(10 * NS_PER_S);
  w.step(10 * NS_PER_S + NS_PER_S / 2, target);
  assert.equal(w.stats().pageWrites, 1000);

  const capped = createWorkload({ kind: 'incrementer', rateBytesPerS: 1000 * 4096, stepWritesMax: 100 }, { pageCount: PAGES, prng: new Prng(1) });
  capped.step(0, target);
  capped.step(NS_PER_S, target);
  assert.equal(capped.stats().pageWrites, 100);
  assert.equal(capped.stats().writesDropped, 900);
  capped.step(NS_PER_S + 50 * NS_PER_MS, target);
  assert.equal(capped.stats().pageWrites, 150, 'the dropped backlog is not owed later');
});

test('a missing page stalls the workload, which retries the same write and does not catch up', () => {
  const target = new ArrayPageTarget(PAGES);
  const w = createWorkload({ kind: 'incrementer', rateBytesPerS: 1000 * 4096 }, { pageCount: PAGES, prng: new Prng(1) }) as IncrementerWorkload;
  w.step(0, target);
  target.present = (p) => p !== 30;
  assert.equal(w.step(100 * NS_PER_MS, target), 30);
  assert.equal(w.cursor, 30);
  assert.equal(target.readByte(30, 0), 0);
  assert.equal(w.step(200 * NS_PER_MS, target), 30);
  target.present = null;
  assert.equal(w.step(300 * NS_PER_MS, target), NOT_STALLED);
  assert.equal(w.cursor, 130, 'time spent stalled is not made up');
  assert.equal(w.stats().stalls, 2);
});

test('churn writes only allocated pages and keeps about the target allocated', () => {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const target = new HashingTarget(PAGES);
  target.onWrite = (p) => assert.ok(allocator.isAllocated(p), `write to unallocated page ${p}`);
  const spec: WorkloadSpec = { kind: 'churn', usedTargetBytes: 4 * MiB, rateBytesPerS: 32 * MiB, lifetimeMeanNs: 300 * NS_PER_MS };
  const churn = createWorkload(spec, { pageCount: PAGES, prng: new Prng(5), allocator }) as ChurnWorkload;
  for (let t = 0; t <= 3 * NS_PER_S; t += 10 * NS_PER_MS) {
    churn.step(t, target);
    assert.equal(allocator.allocatedPages, churn.usedPages);
  }
  assert.ok(churn.usedPages >= 1024 - 512 && churn.usedPages <= 1024 + 1024, `used ${churn.usedPages} pages`);
  assert.ok(churn.blocksFreed > 100, `${churn.blocksFreed} blocks freed`);
  assert.deepEqual(auditBuddy(allocator), []);
  churn.releaseAll();
  assert.equal(allocator.freeBlocksAt(10), 2);
});

test('alloc-then-free fills ~70% of RAM, holds it, frees it all and idles', () => {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const target = new ArrayPageTarget(PAGES);
  const spec: WorkloadSpec = { kind: 'alloc-then-free', rateBytesPerS: 64 * MiB, holdNs: 50 * NS_PER_MS };
  const w = createWorkload(spec, { pageCount: PAGES, prng: new Prng(5), allocator }) as AllocThenFreeWorkload;
  let t = 0;
  for (; w.phase === 'fill'; t += 5 * NS_PER_MS) w.step(t, target);
  assert.equal(w.phase, 'hold');
  assert.equal(w.peakPages, Math.floor(0.7 * PAGES));
  assert.equal(allocator.allocatedPages, w.peakPages);
  for (; w.phase === 'hold'; t += 5 * NS_PER_MS) w.step(t, target);
  assert.ok(w.freedNs - w.fillDoneNs >= 50 * NS_PER_MS);
  assert.equal(allocator.freePages, PAGES);
  assert.equal(allocator.freeBlocksAt(10), 2);
  let touched = 0;
  for (let p = 0; p < PAGES; p++) if (target.writeCounts[p] > 0) touched++;
  assert.equal(touched, w.peakPages);
  const writes = w.stats().pageWrites;
  w.step(t + NS_PER_S, target);
  assert.equal(w.stats().pageWrites, writes, 'idle after freeing');
});

test('allocated page sets come from the allocator and roll back on failure', () => {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const set = PageSet.allocate(allocator, 1500, 9);
  assert.equal(set.pageCount, 1536);
  assert.equal(allocator.allocatedPages, 1536);
  for (let i = 0; i < set.pageCount; i += 97) assert.ok(allocator.isAllocated(set.pageAt(i)));
  assert.throws(() => PageSet.allocate(allocator, 1024, 10), WorkloadOutOfMemoryError);
  assert.equal(allocator.allocatedPages, 1536);
  set.release(allocator);
  assert.equal(allocator.freePages, PAGES);
});

test('spec errors are typed', () => {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const ctx = { pageCount: PAGES, prng: new Prng(1), allocator };
  assert.throws(() => createWorkload({ kind: 'random', rateBytesPerS: 1 }, ctx), WorkloadConfigError);
  assert.throws(() => createWorkload({ kind: 'churn', usedTargetBytes: 1, rateBytesPerS: 1 }, { pageCount: PAGES, prng: new Prng(1) }), WorkloadConfigError);
  assert.throws(() => createWorkload({ kind: 'hot-set', sizeBytes: 4096, rateBytesPerS: -1 }, ctx), WorkloadConfigError);
  assert.throws(() => createWorkload({ kind: 'incrementer', rateBytesPerS: 1, firstPage: 2000, sizeBytes: MiB }, ctx), WorkloadConfigError);
  const w: Workload = createWorkload({ kind: 'random', rateBytesPerS: 1, firstPage: 0 }, ctx);
  assert.equal(w.kind, 'random');
});

test('the block heap pops blocks in death-time order', () => {
  const heap = new BlockHeap(500);
  const prng = new Prng(9);
  const deaths: number[] = [];
  for (let i = 0; i < 500; i++) {
    const d = prng.int(0, 1000);
    deaths.push(d);
    heap.push(d, i, i % 11);
  }
  deaths.sort((x, y) => x - y);
  for (const d of deaths) {
    assert.equal(heap.peekDeathNs(), d);
    heap.pop();
    assert.equal(heap.poppedOrder, heap.poppedPfn % 11);
  }
  assert.equal(heap.size, 0);
});

test('churn retries a stalled write and never writes a block freed while it waited', () => {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const target = new HashingTarget(PAGES);
  target.onWrite = (p) => assert.ok(allocator.isAllocated(p), `write to unallocated page ${p}`);
  const churn = createWorkload(
    { kind: 'churn', usedTargetBytes: 2 * MiB, rateBytesPerS: 16 * MiB, lifetimeMeanNs: 50 * NS_PER_MS },
    { pageCount: PAGES, prng: new Prng(11), allocator },
  );
  let stalls = 0;
  for (let t = 0; t <= NS_PER_S; t += 5 * NS_PER_MS) {
    // Every third step, a tenth of the pages is missing.
    target.present = (t / (5 * NS_PER_MS)) % 3 === 0 ? (p) => p % 10 !== 0 : null;
    if (churn.step(t, target) !== NOT_STALLED) stalls++;
  }
  assert.ok(stalls > 0);
  assert.equal(churn.stats().stalls, stalls);
  assert.deepEqual(auditBuddy(allocator), []);
});
