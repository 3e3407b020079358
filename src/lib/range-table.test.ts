// Property tests for RangeTable: random add/remove sequences over small integers are replayed
// against a reference Set<number>. After every step the table must answer has, covers,
// intersects, total and overlap like the reference, and stay canonical (sorted, non-empty,
// disjoint, non-adjacent ranges), so equal sets give equal range lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RangeTable, type Range } from './range-table.ts';

/** The universe of the reference model: ranges live in [LOW, HIGH). */
const LOW = 0;
const HIGH = 48;

type Op = { kind: 'add' | 'remove'; start: number; end: number };

const opArb: fc.Arbitrary<Op> = fc
  .record({
    kind: fc.constantFrom<'add' | 'remove'>('add', 'remove'),
    start: fc.integer({ min: LOW, max: HIGH }),
    length: fc.integer({ min: -2, max: 12 }),
  })
  .map(({ kind, start, length }) => ({ kind, start, end: Math.min(HIGH, start + length) }));

/** The canonical range list of a set of integers. */
function rangesOf(model: Set<number>): Range[] {
  const out: Range[] = [];
  for (let x = LOW - 2; x < HIGH + 2; x++) {
    if (!model.has(x)) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.end === x) out[out.length - 1] = { start: last.start, end: x + 1 };
    else out.push({ start: x, end: x + 1 });
  }
  return out;
}

function checkAgainst(table: RangeTable, model: Set<number>): void {
  const ranges = table.toArray();
  assert.deepEqual(ranges, rangesOf(model), 'canonical form');
  for (let i = 0; i < ranges.length; i++) {
    assert.ok(ranges[i].start < ranges[i].end, 'non-empty');
    if (i > 0) assert.ok(ranges[i - 1].end < ranges[i].start, 'sorted, disjoint, non-adjacent');
  }
  assert.equal(table.rangeCount, ranges.length);
  assert.equal(table.total(), model.size);
  assert.equal(table.isEmpty(), model.size === 0);
  for (let x = LOW - 2; x < HIGH + 2; x++) assert.equal(table.has(x), model.has(x), `has(${x})`);
  for (let start = LOW - 1; start <= HIGH; start += 3) {
    for (let end = start - 1; end <= HIGH + 1; end += 2) {
      let all = true;
      let any = false;
      const inside: number[] = [];
      for (let x = start; x < end; x++) {
        if (model.has(x)) {
          any = true;
          inside.push(x);
        } else {
          all = false;
        }
      }
      assert.equal(table.covers(start, end), all, `covers(${start}, ${end})`);
      assert.equal(table.intersects(start, end), any, `intersects(${start}, ${end})`);
      assert.deepEqual([...table.overlap(start, end)], rangesOf(new Set(inside)), `overlap(${start}, ${end})`);
    }
  }
}

test('RangeTable matches a reference Set under random add/remove sequences', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 30 }), (ops) => {
      const table = new RangeTable();
      const model = new Set<number>();
      for (const op of ops) {
        if (op.kind === 'add') table.add(op.start, op.end);
        else table.remove(op.start, op.end);
        for (let x = op.start; x < op.end; x++) {
          if (op.kind === 'add') model.add(x);
          else model.delete(x);
        }
        checkAgainst(table, model);
      }
    }),
    { numRuns: 300 },
  );
});

test('RangeTable is canonical: the same set built in different orders gives the same ranges', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 20 }), fc.nat(), (ops, seed) => {
      const adds = ops.filter((o) => o.kind === 'add');
      const shuffled = adds.slice();
      // A deterministic shuffle driven by the generated seed.
      let s = seed;
      for (let i = shuffled.length - 1; i > 0; i--) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        const j = s % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      const a = RangeTable.of(adds);
      const b = RangeTable.of(shuffled);
      assert.deepEqual(a.toArray(), b.toArray());
      const c = a.clone();
      c.clear();
      assert.ok(c.isEmpty());
      assert.deepEqual(b.toArray(), a.toArray(), 'clone is independent of the original');
    }),
    { numRuns: 200 },
  );
});

test('RangeTable handles values beyond 32 bits (page and byte addresses of large guests)', () => {
  const t = new RangeTable();
  const base = 2 ** 40;
  t.add(base, base + 4096);
  t.add(base + 4096, base + 8192);
  t.remove(base + 100, base + 200);
  assert.deepEqual(t.toArray(), [
    { start: base, end: base + 100 },
    { start: base + 200, end: base + 8192 },
  ]);
  assert.equal(t.total(), 8092);
  assert.ok(t.covers(base + 200, base + 8192));
  assert.ok(!t.covers(base, base + 8192));
});
