// The page-state map: bin geometry, the state each page gets (unplugged > missing > dirty >
// hinted > sent), bins that split a bitmap word, the base64 encoding, and the colour mix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../lib/bitmap.ts';
import { binRgb, classifyPages, decodeFractions, gridOf, pageMapGeometry, PAGE_STATE_COLORS, snapshotOf } from './page-map.ts';

function bits(pageCount: number, ...ranges: [number, number][]): Uint32Array {
  const b = new Bitmap(pageCount);
  for (const [s, e] of ranges) b.setRange(s, e);
  return b.words;
}

test('geometry: at most 4096 bins, the fewest pages per bin', () => {
  assert.deepEqual(pageMapGeometry(100), { binPages: 1, bins: 100 });
  assert.deepEqual(pageMapGeometry(4096), { binPages: 1, bins: 4096 });
  assert.deepEqual(pageMapGeometry(4097), { binPages: 2, bins: 2049 });
  assert.deepEqual(pageMapGeometry(2 ** 28), { binPages: 65536, bins: 4096 });
  assert.ok(gridOf(4096).columns === 64 && gridOf(4096).rows === 64);
});

test('each page gets the first state that applies', () => {
  const n = 64;
  const counts = classifyPages({
    pageCount: n,
    received: bits(n, [0, 40]),
    dirty: bits(n, [30, 50]),
    hinted: bits(n, [45, 60]),
    unplugged: bits(n, [62, 64]),
    missing: false,
  }).counts;
  const stateOf = (p: number): number => [0, 1, 2, 3, 4].find((s) => counts[p * 5 + s] === 1) ?? -1;
  assert.equal(stateOf(0), 0, 'received, clean: sent');
  assert.equal(stateOf(35), 1, 'received but dirty again: dirty');
  assert.equal(stateOf(47), 1, 'hinted then dirtied: dirty');
  assert.equal(stateOf(55), 2, 'hinted, not sent: hinted');
  assert.equal(stateOf(61), -1, 'nothing: untouched');
  assert.equal(stateOf(63), 3, 'unplugged');
});

test('with the guest on the destination, pages not received (nor hinted) are missing', () => {
  const n = 100;
  const snap = snapshotOf({ pageCount: n, received: bits(n, [0, 50]), dirty: bits(n, [60, 70]), hinted: bits(n, [90, 100]), unplugged: null, missing: true }, 5, 'test');
  assert.deepEqual(snap.totals, { sent: 50, dirty: 0, hinted: 10, unplugged: 0, missing: 40 });
  const explicit = snapshotOf({ pageCount: n, received: null, dirty: null, hinted: null, unplugged: null, missing: bits(n, [3, 5]) }, 5, 'test');
  assert.equal(explicit.totals.missing, 2);
});

test('bins smaller and larger than a word add up to the totals', () => {
  for (const n of [37, 4096 * 3 + 5, 200_003]) {
    const { bins, binPages, counts } = classifyPages({ pageCount: n, received: bits(n, [1, n - 7]), dirty: bits(n, [10, 20]), hinted: null, unplugged: null, missing: false });
    let sent = 0;
    for (let b = 0; b < bins; b++) {
      sent += counts[b * 5];
      assert.ok(counts[b * 5] + counts[b * 5 + 1] <= Math.min(binPages, n - b * binPages));
    }
    assert.equal(sent, n - 8 - 10, `n=${n}`);
  }
});

test('fractions round-trip through base64, and a single page stays visible', () => {
  const n = 4096 * 100;
  const snap = snapshotOf({ pageCount: n, received: bits(n, [0, 100], [n - 1, n]), dirty: null, hinted: null, unplugged: null, missing: false }, 0, 'x');
  const f = decodeFractions(snap);
  assert.equal(f.length, snap.bins * 5);
  assert.equal(f[0], 255);
  assert.equal(f[(snap.bins - 1) * 5], 3, 'one page of 100 is 2.55 → 3');
  assert.equal(f[5], 0);
});

test('colours mix by share; an empty bin is the untouched colour', () => {
  const f = new Uint8Array(10);
  f[0] = 255;
  assert.equal(`#${binRgb(f, 0).map((c) => c.toString(16).padStart(2, '0')).join('')}`, PAGE_STATE_COLORS.sent);
  assert.equal(`#${binRgb(f, 1).map((c) => c.toString(16).padStart(2, '0')).join('')}`, PAGE_STATE_COLORS.untouched);
});
