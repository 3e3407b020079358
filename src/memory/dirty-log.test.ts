// Tests for DirtyLog. Single-threaded: random sequences of marks, range marks, range clears and
// (range) syncs are replayed against a reference set of "written since the last sync" pages;
// each sync must return exactly those pages and count exactly the bits it added. Concurrent:
// two worker threads write random pages of a shared bytes backing through DirtyTrackingMemory
// while the main thread syncs and copies dirty pages to a destination in a loop, as precopy
// does. The union of all syncs must equal the union of the pages the workers report writing,
// and after a final sync and copy the destination must equal the source byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { Bitmap } from '../lib/bitmap.ts';
import { Prng } from '../lib/prng.ts';
import { BytesBacking } from './bytes-backing.ts';
import { DirtyLog } from './dirty-log.ts';
import { PAGE_SIZE_BYTES } from './page-content.ts';

type Op =
  | { kind: 'mark'; page: number }
  | { kind: 'markRange' | 'clearRange' | 'syncRange'; from: number; to: number }
  | { kind: 'sync' };

function opArb(pageCount: number): fc.Arbitrary<Op> {
  const page = fc.integer({ min: 0, max: pageCount - 1 });
  const bound = fc.integer({ min: 0, max: pageCount });
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('mark' as const), page }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('markRange' as const, 'clearRange' as const, 'syncRange' as const), from: bound, to: bound }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const) }) },
  );
}

test('DirtyLog.sync returns exactly the pages written since the last sync', () => {
  const scenario = fc.integer({ min: 1, max: 130 }).chain((pageCount) => fc.tuple(fc.constant(pageCount), fc.array(opArb(pageCount), { maxLength: 60 })));
  fc.assert(
    fc.property(scenario, ([pageCount, ops]) => {
      const log = new DirtyLog(pageCount);
      const pending = new Set<number>();
      // `seen` accumulates every sync, like the migration bitmap does.
      const seen = new Bitmap(pageCount);
      for (const op of ops) {
        if (op.kind === 'mark') {
          log.markDirty(op.page);
          pending.add(op.page);
          continue;
        }
        const [start, end] = op.kind === 'sync' ? [0, pageCount] : op.from <= op.to ? [op.from, op.to] : [op.to, op.from];
        if (op.kind === 'markRange') {
          log.markRange(start, end);
          for (let p = start; p < end; p++) pending.add(p);
        } else if (op.kind === 'clearRange') {
          let expected = 0;
          for (let p = start; p < end; p++) if (pending.delete(p)) expected++;
          assert.equal(log.clearRange(start, end), expected);
        } else {
          const fresh = new Bitmap(pageCount);
          const seenBefore = seen.count();
          const fetched = op.kind === 'sync' ? log.sync(fresh) : log.syncRange(fresh, start, end);
          const expected = [...pending].filter((p) => p >= start && p < end).sort((a, b) => a - b);
          const got: number[] = [];
          for (let p = fresh.nextSet(0); p !== -1; p = fresh.nextSet(p + 1)) got.push(p);
          assert.deepEqual(got, expected);
          assert.equal(fetched, expected.length);
          assert.equal(seen.orFrom(fresh), seen.count() - seenBefore);
          for (const p of expected) pending.delete(p);
        }
        assert.equal(log.count(), pending.size);
      }
      for (let p = 0; p < pageCount; p++) assert.equal(log.isDirty(p), pending.has(p));
    }),
    { numRuns: 200 },
  );
});

test('DirtyLog.sync counts only bits new to the destination', () => {
  const log = new DirtyLog(100);
  const dest = new Bitmap(100);
  dest.set(3);
  log.markDirty(3);
  log.markDirty(4);
  log.markRange(60, 70);
  assert.equal(log.sync(dest), 11);
  assert.equal(dest.count(), 12);
  assert.equal(log.count(), 0);
  assert.equal(log.sync(dest), 0);
  assert.throws(() => log.sync(new Bitmap(99)));
  assert.throws(() => log.markDirty(100), RangeError);
  const twin = DirtyLog.attach(log.buffer, 100);
  twin.markDirty(99);
  assert.ok(log.isDirty(99));
});

/**
 * Worker source (ESM): registers tsx (under Node 20, `--import tsx` does not reach worker
 * threads), attaches the shared log and memory, performs its precomputed writes through
 * DirtyTrackingMemory, publishes how many writes have completed after each one, and reports
 * the set of pages it wrote.
 */
const WORKER_SOURCE = `
import { workerData, parentPort } from 'node:worker_threads';
const { register } = await import(workerData.urls.tsx);
register();
const { DirtyLog } = await import(workerData.urls.dirtyLog);
const { BytesBacking } = await import(workerData.urls.bytesBacking);
const { DirtyTrackingMemory } = await import(workerData.urls.tracking);
const { Bitmap } = await import(workerData.urls.bitmap);
const { pageCount, index, firstPages, lastPages, offsets, values, spins, control } = workerData;
const flags = new Int32Array(control);
const memory = new DirtyTrackingMemory(BytesBacking.over(workerData.memory), DirtyLog.attach(workerData.log, pageCount));
const written = new Bitmap(pageCount);
parentPort.postMessage({ kind: 'ready' });
Atomics.wait(flags, 0, 0);
for (let n = 0; n < firstPages.length; n++) {
  const page = firstPages[n];
  if (lastPages[n] !== page) memory.writeLe32((page + 1) * 4096 - 2, values[n]);
  else memory.writeLe32(page * 4096 + offsets[n], values[n]);
  written.set(page);
  written.set(lastPages[n]);
  Atomics.store(flags, 2 + index, n + 1);
  for (let j = 0; j < spins[n]; j++) Atomics.load(flags, 0);
}
Atomics.add(flags, 1, 1);
parentPort.postMessage({ kind: 'done', words: written.words });
`;

/**
 * The writes one worker performs: write n stores values[n] at offsets[n] of page
 * firstPages[n], or across the boundary into lastPages[n] = firstPages[n] + 1, then spins
 * spins[n] loads.
 */
interface WriteSchedule {
  readonly firstPages: Uint32Array;
  readonly lastPages: Uint32Array;
  readonly offsets: Uint32Array;
  readonly values: Uint32Array;
  readonly spins: Uint32Array;
}

/**
 * Random writes over the first `writablePageCount` pages; 5% straddle into the next page.
 * Blocks of 2000 writes alternate between full speed (contention on the log words) and a
 * throttled pace (sparse rounds, where a lost bit would leave a page out of both the sync
 * that should have seen it and the next one).
 */
function makeSchedule(seed: number, writeCount: number, writablePageCount: number): WriteSchedule {
  const prng = new Prng(seed);
  const schedule = {
    firstPages: new Uint32Array(writeCount),
    lastPages: new Uint32Array(writeCount),
    offsets: new Uint32Array(writeCount),
    values: new Uint32Array(writeCount),
    spins: new Uint32Array(writeCount),
  };
  for (let i = 0; i < writeCount; i++) {
    const page = prng.int(0, writablePageCount - 1);
    schedule.firstPages[i] = page;
    schedule.lastPages[i] = prng.chance(0.05) ? page + 1 : page;
    schedule.offsets[i] = 4 * prng.int(0, 1023);
    schedule.values[i] = prng.u32();
    schedule.spins[i] = Math.floor(i / 2000) % 2 === 0 ? 0 : 1000;
  }
  return schedule;
}

function spawnWriter(data: Record<string, unknown>): { worker: Worker; ready: Promise<void>; result: Promise<Uint32Array> } {
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`), { workerData: data });
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<Uint32Array>((resolve, reject) => {
    worker.on('message', (m: { kind: string; words?: Uint32Array }) => {
      if (m.kind === 'ready') onReady();
      else resolve(m.words!);
    });
    worker.on('error', reject);
  });
  return { worker, ready, result };
}

test('DirtyLog with two concurrent writer threads: each sync returns the writes since the last', async (t) => {
  // Writers touch only the first three quarters (plus one page by a straddling write), so a
  // sync that invented pages would be caught.
  const pageCount = 1024;
  const writablePageCount = 768;
  const writeCount = 60_000;
  const source = new BytesBacking(pageCount * PAGE_SIZE_BYTES, { shared: true });
  const dest = new BytesBacking(pageCount * PAGE_SIZE_BYTES);
  const log = new DirtyLog(pageCount);
  // flags[0]: go; flags[1]: writers done; flags[2 + k]: writes completed by worker k.
  const control = new SharedArrayBuffer(16);
  const flags = new Int32Array(control);
  const urls = {
    tsx: import.meta.resolve('tsx/esm/api'),
    dirtyLog: new URL('./dirty-log.ts', import.meta.url).href,
    bytesBacking: new URL('./bytes-backing.ts', import.meta.url).href,
    tracking: new URL('./dirty-tracking-memory.ts', import.meta.url).href,
    bitmap: new URL('../lib/bitmap.ts', import.meta.url).href,
  };
  const schedules = [makeSchedule(1, writeCount, writablePageCount), makeSchedule(2, writeCount, writablePageCount)];
  const common = { urls, pageCount, control, memory: source.buffer, log: log.buffer };
  const writers = schedules.map((schedule, index) => spawnWriter({ ...common, ...schedule, index }));
  await Promise.all(writers.map((w) => w.ready));

  const synced = new Bitmap(pageCount);
  const current = new Bitmap(pageCount);
  // For each page, the number of the last sync that returned it (-1: none yet).
  const lastSyncOfPage = new Int32Array(pageCount).fill(-1);
  // Per worker: the completed-write count read before the previous sync, and the number of
  // the last sync whose count was below that (the earliest sync that can hold the write at
  // that index, see below).
  const beforePrevious = [0, 0];
  const lowSync = [-1, -1];
  let syncs = 0;
  let busySyncs = 0;
  /**
   * One precopy round: sync, copy the returned pages, then check the round against the
   * schedules. A worker stores write n, marks it, then publishes n + 1 as its completed count.
   * - Completeness. A write below `before` (read just before this sync) was marked before this
   *   sync began, so this sync or an earlier one returned its pages. Its mark came after the
   *   worker published write n - 1, so after the start of the last sync whose count was below
   *   n: that sync or a later one returned the pages. For n above the previous `before`, that is
   *   the previous sync; for n equal to it (the write in flight then), it may be earlier.
   * - Soundness. Every returned page comes from a write marked after the previous sync began
   *   (index at least the previous `before`) and before this one ended (index at most `after`,
   *   read just after this sync: the write in flight).
   */
  const syncAndCopy = (): void => {
    const before = [Atomics.load(flags, 2), Atomics.load(flags, 3)];
    const added = log.sync(current);
    const after = [Atomics.load(flags, 2), Atomics.load(flags, 3)];
    assert.equal(added, current.count());
    for (let p = current.nextSet(0); p !== -1; p = current.nextSet(p + 1)) {
      dest.writePageFrom(p, source.pageView(p));
      lastSyncOfPage[p] = syncs;
    }
    const explained = new Bitmap(pageCount);
    for (let k = 0; k < 2; k++) {
      const { firstPages, lastPages } = schedules[k];
      const boundary = beforePrevious[k];
      for (let n = boundary; n < Math.min(after[k] + 1, writeCount); n++) {
        const first = firstPages[n];
        const last = lastPages[n];
        explained.set(first);
        explained.set(last);
        if (n >= before[k]) continue;
        const earliest = n === boundary ? lowSync[k] : syncs - 1;
        // Messages are built only on failure: this loop runs once per write.
        if (lastSyncOfPage[first] < earliest || lastSyncOfPage[last] < earliest) {
          assert.fail(`sync ${syncs} missed page ${first}..${last} of write ${n} by worker ${k}`);
        }
      }
      if (before[k] > boundary) lowSync[k] = syncs - 1;
      beforePrevious[k] = before[k];
    }
    for (let p = current.nextSet(0); p !== -1; p = current.nextSet(p + 1)) {
      if (!explained.test(p)) assert.fail(`sync ${syncs} returned page ${p}, which no recent write touched`);
    }
    synced.orFrom(current);
    if (added > 0) busySyncs++;
    syncs++;
    current.clearAll();
  };
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  const deadlineMs = Date.now() + 30_000;
  while (Atomics.load(flags, 1) < 2) {
    assert.ok(Date.now() < deadlineMs, 'writers did not finish');
    syncAndCopy();
  }
  syncAndCopy();
  const written = new Bitmap(pageCount);
  for (const words of await Promise.all(writers.map((w) => w.result))) written.orFrom(new Bitmap(pageCount, words));
  await Promise.all(writers.map((w) => w.worker.terminate()));

  t.diagnostic(`${syncs} syncs, ${busySyncs} returned pages; ${written.count()} distinct pages written`);
  assert.deepEqual(synced.words, written.words, 'union of syncs equals union of writes');
  assert.equal(synced.nextSet(writablePageCount + 1), -1, 'no page that no worker wrote');
  assert.ok(busySyncs >= 2, 'syncs overlapped the writers');
  assert.equal(log.count(), 0);
  assert.ok(Buffer.from(dest.bytes).equals(Buffer.from(source.bytes)), 'destination equals source');
});
