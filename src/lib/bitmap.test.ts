// Property tests for Bitmap: every operation is replayed against a reference Set<number>, and
// after each step every query (test, count, countRange, nextSet, nextClear) must agree with
// the reference. Sizes are small and deliberately straddle word boundaries (31, 32, 33, 64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitmap, ctz32, popcount32 } from './bitmap.ts';

type Op =
  | { kind: 'set' | 'clear' | 'testAndSet' | 'testAndClear'; at: number }
  | { kind: 'setRange' | 'clearRange' | 'clearRangeCount'; from: number; to: number }
  | { kind: 'setAll' | 'clearAll' };

/** Fractions in [0, 1] are scaled to the bitmap size, so one op list fits every size. */
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('set', 'clear', 'testAndSet', 'testAndClear'), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({
    kind: fc.constantFrom('setRange', 'clearRange', 'clearRangeCount'),
    from: fc.double({ min: 0, max: 1, noNaN: true }),
    to: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  fc.record({ kind: fc.constantFrom('setAll', 'clearAll') }),
) as fc.Arbitrary<Op>;

const sizeArb = fc.oneof(fc.constantFrom(0, 1, 31, 32, 33, 63, 64, 65, 96), fc.integer({ min: 0, max: 200 }));

function scale(fraction: number, sizeBits: number): number {
  return Math.min(sizeBits, Math.floor(fraction * (sizeBits + 1)));
}

/** Applies one op to both the bitmap and the reference; asserts the ops' own return values. */
function apply(bitmap: Bitmap, model: Set<number>, op: Op): void {
  const size = bitmap.sizeBits;
  switch (op.kind) {
    case 'set':
    case 'clear':
    case 'testAndSet':
    case 'testAndClear': {
      if (size === 0) return;
      const i = Math.min(size - 1, scale(op.at, size));
      const had = model.has(i);
      if (op.kind === 'set') bitmap.set(i);
      else if (op.kind === 'clear') bitmap.clear(i);
      else if (op.kind === 'testAndSet') assert.equal(bitmap.testAndSet(i), !had);
      else assert.equal(bitmap.testAndClear(i), had);
      if (op.kind === 'set' || op.kind === 'testAndSet') model.add(i);
      else model.delete(i);
      return;
    }
    case 'setRange':
    case 'clearRange':
    case 'clearRangeCount': {
      const a = scale(op.from, size);
      const b = scale(op.to, size);
      const [start, end] = a <= b ? [a, b] : [b, a];
      let inRange = 0;
      for (let i = start; i < end; i++) if (model.has(i)) inRange++;
      if (op.kind === 'setRange') bitmap.setRange(start, end);
      else if (op.kind === 'clearRange') bitmap.clearRange(start, end);
      else assert.equal(bitmap.clearRangeCount(start, end), inRange);
      for (let i = start; i < end; i++) {
        if (op.kind === 'setRange') model.add(i);
        else model.delete(i);
      }
      return;
    }
    case 'setAll':
      bitmap.setAll();
      for (let i = 0; i < size; i++) model.add(i);
      return;
    case 'clearAll':
      bitmap.clearAll();
      model.clear();
      return;
  }
}

/** Checks every query of the bitmap against the reference set. */
function checkAgainst(bitmap: Bitmap, model: Set<number>): void {
  const size = bitmap.sizeBits;
  for (let i = 0; i < size; i++) assert.equal(bitmap.test(i), model.has(i), `bit ${i}`);
  assert.equal(bitmap.count(), model.size);
  for (let from = 0; from <= size + 1; from++) {
    let expectSet = -1;
    let expectClear = -1;
    for (let i = from; i < size; i++) {
      if (expectSet === -1 && model.has(i)) expectSet = i;
      if (expectClear === -1 && !model.has(i)) expectClear = i;
    }
    assert.equal(bitmap.nextSet(from), expectSet, `nextSet(${from})`);
    assert.equal(bitmap.nextClear(from), expectClear, `nextClear(${from})`);
  }
  for (let start = 0; start <= size; start += 7) {
    for (let end = start; end <= size; end += 11) {
      let n = 0;
      for (let i = start; i < end; i++) if (model.has(i)) n++;
      assert.equal(bitmap.countRange(start, end), n, `countRange(${start}, ${end})`);
    }
  }
  // No bit past sizeBits may ever be set: counts of the whole word array stay exact.
  let words = 0;
  for (const w of bitmap.words) words += popcount32(w);
  assert.equal(words, model.size, 'bits past sizeBits are clear');
}

test('Bitmap matches a reference Set under random operation sequences', () => {
  fc.assert(
    fc.property(sizeArb, fc.array(opArb, { maxLength: 40 }), (size, ops) => {
      const bitmap = new Bitmap(size);
      const model = new Set<number>();
      for (const op of ops) {
        apply(bitmap, model, op);
        checkAgainst(bitmap, model);
      }
    }),
    { numRuns: 200 },
  );
});

test('Bitmap.orFrom ORs in the other bitmap and returns how many bits became set', () => {
  fc.assert(
    fc.property(sizeArb, fc.array(fc.nat(), { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 60 }), (size, xs, ys) => {
      const a = new Bitmap(size);
      const b = new Bitmap(size);
      const union = new Set<number>();
      for (const x of xs) if (size > 0) { a.set(x % size); union.add(x % size); }
      const before = union.size;
      for (const y of ys) if (size > 0) { b.set(y % size); union.add(y % size); }
      assert.equal(a.orFrom(b), union.size - before);
      checkAgainst(a, union);
    }),
    { numRuns: 200 },
  );
});

test('Bitmap over a caller-supplied, larger word array uses only its own words', () => {
  // A bitmap may be laid over a shared buffer that is longer than it needs; setAll and count
  // must still stop at sizeBits.
  const words = new Uint32Array(4);
  const bitmap = new Bitmap(40, words);
  bitmap.setAll();
  assert.equal(bitmap.count(), 40);
  assert.equal(words[2], 0);
  assert.equal(words[3], 0);
  assert.equal(bitmap.nextClear(0), -1);
  bitmap.clearAll();
  assert.equal(bitmap.count(), 0);
  assert.throws(() => new Bitmap(65, new Uint32Array(2)), RangeError);
});

test('Bitmap range operations reject ranges outside the bitmap', () => {
  const bitmap = new Bitmap(10);
  assert.throws(() => bitmap.setRange(0, 11));
  assert.throws(() => bitmap.clearRange(-1, 3));
  assert.throws(() => bitmap.countRange(5, 12));
  assert.throws(() => bitmap.orFrom(new Bitmap(11)));
  assert.equal(bitmap.nextSet(-5), -1);
  assert.equal(bitmap.nextClear(-5), 0);
});

test('popcount32 and ctz32 agree with a bit-by-bit reference', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (x) => {
      let n = 0;
      let low = -1;
      for (let b = 0; b < 32; b++) {
        if ((x >>> b) & 1) {
          n++;
          if (low === -1) low = b;
        }
      }
      assert.equal(popcount32(x), n);
      assert.equal(popcount32(x | 0), n);
      if (x !== 0) assert.equal(ctz32(x), low);
    }),
  );
});
