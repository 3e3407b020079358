// Tests for ReceivedMap (exactly-once placement, counts, iteration of missing pages, sharing
// the buffer) and MigrationBitmap (the dirty count stays equal to the number of set bits
// through every operation, including syncs from the dirty log).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DirtyLog } from './dirty-log.ts';
import { MigrationBitmap } from './migration-bitmap.ts';
import { ReceivedMap } from './received-map.ts';

test('ReceivedMap places each page exactly once and iterates the missing ones', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100 }).chain((n) =>
        fc.tuple(fc.constant(n), fc.array(fc.oneof(fc.integer({ min: 0, max: n - 1 }), fc.tuple(fc.integer({ min: 0, max: n }), fc.integer({ min: 0, max: n }))), { maxLength: 40 })),
      ),
      ([pageCount, ops]) => {
        const map = new ReceivedMap(pageCount);
        const model = new Set<number>();
        for (const op of ops) {
          if (typeof op === 'number') {
            assert.equal(map.testAndSet(op), !model.has(op), 'first placement only');
            model.add(op);
          } else {
            const [a, b] = op[0] <= op[1] ? op : [op[1], op[0]];
            let fresh = 0;
            for (let p = a; p < b; p++) if (!model.has(p)) fresh++, model.add(p);
            assert.equal(map.markRange(a, b), fresh);
          }
          assert.equal(map.count(), model.size);
        }
        const missing: number[] = [];
        for (let p = 0; p < pageCount; p++) {
          assert.equal(map.isReceived(p), model.has(p));
          if (!model.has(p)) missing.push(p);
        }
        assert.deepEqual([...map.missingPages()], missing);
        assert.equal(map.missingCount(), missing.length);
        assert.equal(map.isComplete(), missing.length === 0);
        assert.equal(map.nextMissing(0), missing.length > 0 ? missing[0] : -1);
        const fromRanges = [...map.missingRanges()].flatMap((r) => Array.from({ length: r.end - r.start }, (_, i) => r.start + i));
        assert.deepEqual(fromRanges, missing);
      },
    ),
    { numRuns: 200 },
  );
});

test('ReceivedMap state is shared through its buffer', () => {
  const map = new ReceivedMap(70);
  const twin = ReceivedMap.attach(map.buffer, 70);
  assert.ok(map.testAndSet(69));
  assert.ok(!twin.testAndSet(69));
  assert.ok(twin.isReceived(69));
  assert.equal(twin.count(), 1);
  assert.deepEqual([...map.missingRanges(60)], [{ start: 60, end: 69 }]);
  assert.throws(() => map.testAndSet(70), RangeError);
});

test('MigrationBitmap keeps its dirty count equal to its set bits', () => {
  type Op = { kind: 'mark' | 'clear'; page: number } | { kind: 'setRange' | 'clearRange'; a: number; b: number } | { kind: 'setAll' | 'clearAll' | 'sync' };
  const pageCount = 77;
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constantFrom('mark' as const, 'clear' as const), page: fc.integer({ min: 0, max: pageCount - 1 }) }),
    fc.record({ kind: fc.constantFrom('setRange' as const, 'clearRange' as const), a: fc.integer({ min: 0, max: pageCount }), b: fc.integer({ min: 0, max: pageCount }) }),
    fc.record({ kind: fc.constantFrom('setAll' as const, 'clearAll' as const, 'sync' as const) }),
  );
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(fc.integer({ min: 0, max: pageCount - 1 }), { maxLength: 20 }), (ops, logged) => {
      const bitmap = new MigrationBitmap(pageCount);
      const log = new DirtyLog(pageCount);
      for (const op of ops) {
        const before = bitmap.dirtyCount;
        if (op.kind === 'mark') {
          const wasDirty = bitmap.isDirty(op.page);
          assert.equal(bitmap.markDirty(op.page), !wasDirty);
        }
        else if (op.kind === 'clear') bitmap.testAndClear(op.page);
        else if (op.kind === 'setRange') bitmap.setRange(Math.min(op.a, op.b), Math.max(op.a, op.b));
        else if (op.kind === 'clearRange') bitmap.clearRange(Math.min(op.a, op.b), Math.max(op.a, op.b));
        else if (op.kind === 'setAll') bitmap.setAll();
        else if (op.kind === 'clearAll') bitmap.clearAll();
        else {
          for (const p of logged) log.markDirty(p);
          const added = bitmap.syncFrom(log);
          assert.equal(added, bitmap.dirtyCount - before);
        }
        assert.equal(bitmap.dirtyCount, bitmap.recount());
      }
      assert.equal(bitmap.nextDirty(0), bitmap.bits.nextSet(0));
    }),
    { numRuns: 200 },
  );
});

test('MigrationBitmap range syncs and hints: a hint clears the bitmap, never the log', () => {
  const bitmap = new MigrationBitmap(64);
  const log = new DirtyLog(64);
  assert.equal(bitmap.setAll(), 64);
  log.markRange(10, 20);
  // A hint for pages 0..31 clears the migration bitmap only; the log keeps the writes.
  assert.equal(bitmap.clearRange(0, 32), 32);
  assert.equal(log.count(), 10);
  assert.equal(bitmap.syncRangeFrom(log, 0, 15), 5);
  assert.equal(bitmap.syncFrom(log), 5);
  assert.equal(bitmap.dirtyCount, 32 + 10);
  assert.ok(bitmap.isDirty(10) && !bitmap.isDirty(9));
  assert.ok(bitmap.testAndClear(10));
  assert.ok(!bitmap.testAndClear(10));
  assert.equal(bitmap.bookkeepingBytes(), 8);
});

test('ReceivedMap.clearRange makes pages missing again and keeps the count in step', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 })), { maxLength: 30 }), (ops) => {
      const map = new ReceivedMap(100);
      const model = new Set<number>();
      for (const [mark, a, b] of ops) {
        const [start, end] = [Math.min(a, b), Math.max(a, b)];
        let expected = 0;
        for (let p = start; p < end; p++) {
          if (mark && !model.has(p)) expected++;
          if (!mark && model.has(p)) expected++;
          if (mark) model.add(p);
          else model.delete(p);
        }
        assert.equal(mark ? map.markRange(start, end) : map.clearRange(start, end), expected);
        assert.equal(map.count(), model.size);
      }
      for (let p = 0; p < 100; p++) assert.equal(map.isReceived(p), model.has(p));
    }),
    { numRuns: 200 },
  );
  assert.throws(() => new ReceivedMap(8).clearRange(4, 9), RangeError);
});
