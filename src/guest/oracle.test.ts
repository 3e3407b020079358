// Tests for the post-migration oracles: the incrementer check accepts every state the
// incrementer can leave (property over random step times) and rejects a dropped page, a
// stray write, a second edge and a misplaced edge; comparePages lists mismatches and honours
// the pages allowed to differ.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkIncrementer, comparePages, OracleError } from './oracle.ts';
import type { PageReader } from './oracle.ts';
import { ArrayPageTarget } from './workloads/array-target.ts';
import { IncrementerWorkload } from './workloads/incrementer.ts';
import { PageSet } from './workloads/page-set.ts';
import { RangeTable } from '../lib/range-table.ts';

const PAGES = 300;

/** Runs an incrementer over all pages of a fresh target until nowNs (1 page per µs). */
function incremented(nowNs: number): { target: ArrayPageTarget; inc: IncrementerWorkload } {
  const target = new ArrayPageTarget(PAGES);
  const inc = new IncrementerWorkload({ pages: PageSet.range(0, PAGES), rateBytesPerS: 4096 * 1_000_000 });
  inc.step(0, target);
  inc.step(nowNs, target);
  return { target, inc };
}

function check(target: ArrayPageTarget, expectedEdgeIndex?: number) {
  return checkIncrementer((i) => target.readByte(i, 0), PAGES, { expectedEdgeIndex });
}

test('property: every state the incrementer leaves passes, with the edge at its cursor', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 400_000 }), { maxLength: 8 }), (gaps) => {
    const target = new ArrayPageTarget(PAGES);
    const inc = new IncrementerWorkload({ pages: PageSet.range(0, PAGES), rateBytesPerS: 4096 * 1_000_000 });
    let nowNs = 0;
    for (const gap of gaps) {
      nowNs += gap;
      inc.step(nowNs, target);
      const result = check(target, inc.cursor);
      assert.equal(result.ok, true, result.detail);
      assert.equal(result.edges, inc.cursor === 0 ? 0 : 1);
    }
  }), { numRuns: 40 });
});

test('a dropped page (one stale value) is caught', () => {
  const { target, inc } = incremented(1_000_000 + 150_000); // 1150 pages: 3 passes and 250 pages.
  assert.equal(inc.cursor, (1_000_000 + 150_000) / 1000 % PAGES);
  assert.equal(check(target, inc.cursor).ok, true);
  // Page 40 is in the v + 1 region; a destination that kept its old copy holds v.
  target.writeByte(40, 0, (target.readByte(40, 0) + 255) & 0xff);
  const result = check(target);
  assert.equal(result.ok, false);
  assert.equal(result.badSteps, 1);
  assert.match(result.detail, /page 41/);
});

test('a stale page after the edge (one pass behind) is caught', () => {
  const { target } = incremented(1_000_000 + 150_000);
  target.writeByte(270, 0, (target.readByte(270, 0) + 255) & 0xff);
  assert.equal(check(target).ok, false);
});

test('a stray write is caught, a second edge is caught', () => {
  const stray = incremented(1_150_000).target;
  stray.writeByte(280, 0, (stray.readByte(280, 0) + 1) & 0xff);
  const strayResult = check(stray);
  assert.equal(strayResult.ok, false);
  assert.equal(strayResult.badSteps, 1);

  const random = incremented(1_150_000).target;
  random.writeByte(10, 0, 0x5a);
  assert.equal(check(random).ok, false);

  // Pages 0..99 at v + 2, 100..199 at v + 1, 200.. at v: two edges, no bad step.
  const twoEdges = new ArrayPageTarget(PAGES);
  for (let p = 0; p < PAGES; p++) twoEdges.writeByte(p, 0, p < 100 ? 9 : p < 200 ? 8 : 7);
  const result = check(twoEdges);
  assert.equal(result.ok, false);
  assert.equal(result.edges, 2);
  assert.equal(result.badSteps, 0);
});

test('a lost write just before the cursor is caught only with the expected edge', () => {
  const { target, inc } = incremented(1_150_000);
  const last = inc.cursor - 1;
  target.writeByte(last, 0, (target.readByte(last, 0) + 255) & 0xff);
  assert.equal(check(target).ok, true, 'without the cursor this looks like an earlier instant');
  const result = check(target, inc.cursor);
  assert.equal(result.ok, false);
  assert.match(result.detail, /cursor at page 250/);
});

test('values wrap at 256', () => {
  const target = new ArrayPageTarget(PAGES);
  for (let p = 0; p < PAGES; p++) target.writeByte(p, 0, p < 10 ? 0 : 255);
  const result = check(target, 10);
  assert.equal(result.ok, true, result.detail);
  assert.equal(result.edgeIndex, 10);
});

test('comparePages lists mismatches and skips the pages allowed to differ', () => {
  const a = new ArrayPageTarget(64);
  const b = new ArrayPageTarget(64);
  a.writeByte(3, 4095, 1);
  a.writeByte(10, 0, 1);
  a.writeByte(50, 7, 1);
  const all = comparePages(a, b);
  assert.deepEqual(all.mismatches, [3, 10, 50]);
  assert.equal(all.pagesCompared, 64);
  const allowed = new RangeTable();
  allowed.add(8, 16);
  const some = comparePages(a, b, { allowedToDiffer: allowed, listMax: 1 });
  assert.equal(some.mismatchCount, 2);
  assert.deepEqual(some.mismatches, [3]);
  assert.equal(some.pagesSkipped, 8);
  assert.throws(() => comparePages(a, new ArrayPageTarget(3)), OracleError);
});

test('comparePages uses a given page equality instead of copying bytes', () => {
  const versioned = (versions: number[]): PageReader & { versions: number[] } => ({
    versions,
    pageCount: versions.length,
    copyPageOut: () => assert.fail('bytes must not be read when an equality is given'),
  });
  const a = versioned([1, 2, 3, 4]);
  const b = versioned([1, 2, 9, 4]);
  const result = comparePages(a, b, { allowedToDiffer: new Set([3]), pageEquals: (p) => a.versions[p] === b.versions[p] });
  assert.deepEqual(result.mismatches, [2]);
  assert.equal(result.pagesSkipped, 1);
});
