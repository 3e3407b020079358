// PagePlacer.loadZeroRun on a bytes store: only pages that hold data are written, every page
// of the run ends zero and received, and pages outside the run are untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PagePlacer } from './placement.ts';
import { makeDestRam, PAGE } from './dest.test-util.ts';
import { installZeroRangeTest, isZeroRangeJs } from '../../lib/zero-range.ts';

test('loadZeroRun zeroes exactly the pages that hold data, across zero-test spans', () => {
  const pages = 700;
  const ram = makeDestRam([{ name: 'pc.ram', offsetBytes: 0, sizeBytes: pages * PAGE }]);
  const bytes = ram.store.bytes;
  // Data in pages 3 (first byte), 300 (last byte), 301 (middle) and 650 (outside the run).
  for (const at of [3 * PAGE, 301 * PAGE - 1, 301 * PAGE + 2000, 650 * PAGE + 9]) bytes[at] = 0x5a;
  const placer = new PagePlacer(ram);
  assert.equal(placer.setStreamBlocks([{ name: 'pc.ram', usedLengthBytes: pages * PAGE }]), null);
  const ref = { index: 0, name: 'pc.ram', usedLengthBytes: pages * PAGE };
  assert.equal(placer.loadZeroRun(ref, 2 * PAGE, 600, false), 2);
  assert.equal(bytes.subarray(0, 650 * PAGE).some((b) => b !== 0), false);
  assert.equal(bytes[650 * PAGE + 9], 0x5a);
  assert.equal(placer.zeroPagesReceived, 600);
  for (let p = 0; p < pages; p++) assert.equal(ram.received.isReceived(p), p >= 2 && p < 602, `page ${p}`);
});

test('loadZeroRun skips, unread, the pages the host verified zero and the engine never wrote', () => {
  const pages = 700;
  const ram = { ...makeDestRam([{ name: 'pc.ram', offsetBytes: 0, sizeBytes: pages * PAGE }]), verifiedZeroBelowPage: () => 500 };
  const placer = new PagePlacer(ram);
  assert.equal(placer.setStreamBlocks([{ name: 'pc.ram', usedLengthBytes: pages * PAGE }]), null);
  const ref = { index: 0, name: 'pc.ram', usedLengthBytes: pages * PAGE };
  placer.loadPage(ref, 100 * PAGE, new Uint8Array(PAGE).fill(9), false); // received: must be zeroed
  ram.store.bytes[550 * PAGE + 7] = 3; // above the verified pages: found by the zero test
  const tested: Array<[number, number]> = [];
  const previous = installZeroRangeTest((bytes, start, end) => {
    tested.push([start / PAGE, end / PAGE]);
    return isZeroRangeJs(bytes, start, end);
  });
  try {
    placer.loadZeroRun(ref, 0, 600, false);
  } finally {
    installZeroRangeTest(previous);
  }
  assert.equal(ram.store.bytes.subarray(0, 700 * PAGE).some((b) => b !== 0), false);
  // Below page 500 only the received page 100 was read.
  assert.deepEqual(tested.filter(([start]) => start < 500), [[100, 101]]);
  for (let p = 0; p < 600; p++) assert.equal(ram.received.isReceived(p), true);
});
