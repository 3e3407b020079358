import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installZeroRangeTest, isZeroRange, isZeroRangeJs, zeroPagesAt } from './zero-range.ts';

const PAGE = 4096;

/** A buffer of `pages` zero pages with one non-zero byte at each of `marks` (byte offsets). */
function withMarks(pages: number, marks: readonly number[]): Uint8Array {
  const b = new Uint8Array(pages * PAGE);
  for (const m of marks) b[m] = 7;
  return b;
}

test('isZeroRangeJs: aligned and unaligned ranges, first and last byte', () => {
  const b = withMarks(2, [100, PAGE + PAGE - 1]);
  assert.equal(isZeroRangeJs(b, 0, 96), true);
  assert.equal(isZeroRangeJs(b, 0, 128), false);
  assert.equal(isZeroRangeJs(b, 101, PAGE + 3), true);
  assert.equal(isZeroRangeJs(b, PAGE, 2 * PAGE), false);
  assert.equal(isZeroRangeJs(b, PAGE, 2 * PAGE - 1), true);
});

test('zeroPagesAt: counts leading zero pages across span boundaries', () => {
  // 600 pages; the first non-zero page is 517 (its last byte), past two whole spans of 256.
  const b = withMarks(600, [518 * PAGE - 1, 520 * PAGE]);
  assert.equal(zeroPagesAt(b, 0, 600, PAGE), 517);
  assert.equal(zeroPagesAt(b, 518 * PAGE, 82, PAGE), 2);
  assert.equal(zeroPagesAt(b, 521 * PAGE, 79, PAGE), 79);
  assert.equal(zeroPagesAt(b, 517 * PAGE, 83, PAGE), 0);
  assert.equal(zeroPagesAt(b, 0, 600, PAGE, 1), 517);
});

test('installZeroRangeTest: the installed test is used and the previous one is returned', () => {
  const calls: Array<[number, number]> = [];
  const previous = installZeroRangeTest((bytes, start, end) => {
    calls.push([start, end]);
    return isZeroRangeJs(bytes, start, end);
  });
  try {
    assert.equal(isZeroRange(new Uint8Array(64), 0, 64), true);
    assert.deepEqual(calls, [[0, 64]]);
  } finally {
    assert.notEqual(installZeroRangeTest(previous), previous);
  }
});
