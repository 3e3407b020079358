// Page placement: precopy overwrites, postcopy places once (QEMU's EEXIST text), discards keep
// the received count right, local zero fills, and the compact `version` payload mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RangeTable } from '../../lib/range-table.ts';
import type { RamBlockRef } from '../../format/stream-types.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { materializeCompactPage } from '../../memory/page-content.ts';
import { RamBlockList } from '../../memory/ram-block.ts';
import { ReceivedMap } from '../../memory/received-map.ts';
import { DirtyLog } from '../../memory/dirty-log.ts';
import { WrittenPages } from '../../memory/written-pages.ts';
import { DestError, MIG_ERR_DEST_PAGE_PAYLOAD, MIG_ERR_DEST_PLACED_TWICE } from './dest-errors.ts';
import { PagePlacer } from './placement.ts';
import { PAGE, makeDestRam } from './dest.test-util.ts';
import { installZeroRangeTest, isZeroRangeJs } from '../../lib/zero-range.ts';

const A: RamBlockRef = { index: 0, name: 'a', usedLengthBytes: 8 * PAGE };
const B: RamBlockRef = { index: 1, name: 'b', usedLengthBytes: 4 * PAGE };

function setup() {
  const ram = makeDestRam([
    { name: 'a', offsetBytes: 0, sizeBytes: 8 * PAGE },
    { name: 'b', offsetBytes: 16 * PAGE, sizeBytes: 4 * PAGE },
  ]);
  const placer = new PagePlacer(ram);
  assert.equal(placer.setStreamBlocks([{ name: 'a', usedLengthBytes: 8 * PAGE }, { name: 'b', usedLengthBytes: 4 * PAGE }]), null);
  return { ram, placer };
}

test('placement: precopy overwrites and zeroes; block offsets map to guest pages', () => {
  const { ram, placer } = setup();
  assert.equal(placer.loadPage(B, 2 * PAGE, new Uint8Array(PAGE).fill(7), false), 18);
  assert.equal(placer.loadPage(B, 2 * PAGE, new Uint8Array(PAGE).fill(8), false), 18);
  assert.equal(ram.store.bytes[18 * PAGE], 8);
  assert.equal(placer.loadZero(B, 2 * PAGE, 0, false), 18);
  assert.equal(ram.store.isZeroPage(18), true);
  assert.equal(placer.loadZero(A, 0, 0x11, false), 0);
  assert.equal(ram.store.bytes[PAGE - 1], 0x11);
  assert.equal(ram.received.count(), 2);
  assert.deepEqual([placer.pagesReceived, placer.zeroPagesReceived, placer.nonzeroFills], [2, 2, 1]);
});

test('placement: PAGE payloads go through the host\'s copyPageIn when it has one; other writes do not', () => {
  const base = makeDestRam([{ name: 'a', offsetBytes: 0, sizeBytes: 8 * PAGE }]);
  const copied: number[] = [];
  const ram = { ...base, copyPageIn: (pageIndex: number, bytes: Uint8Array) => {
    copied.push(pageIndex);
    base.store.bytes.set(bytes, pageIndex * PAGE);
  } };
  const placer = new PagePlacer(ram);
  assert.equal(placer.setStreamBlocks([{ name: 'a', usedLengthBytes: 8 * PAGE }]), null);
  const stream = new Uint8Array(PAGE + 3).fill(5, 3); // an unaligned payload, as in a socket read
  placer.loadPage(A, 5 * PAGE, stream.subarray(3), false);
  placer.loadPage(A, 2 * PAGE, new Uint8Array(PAGE).fill(6), true);
  placer.loadZero(A, 0, 0x22, false); // a non-zero fill goes through the same page write
  assert.deepEqual(copied, [5, 2, 0]);
  assert.deepEqual([base.store.bytes[5 * PAGE], base.store.bytes[6 * PAGE - 1], base.store.bytes[2 * PAGE], base.store.bytes[PAGE - 1]], [5, 5, 6, 0x22]);
  assert.equal(base.received.count(), 3);
});

test('placement: postcopy places once; the second record fails with QEMU\'s EEXIST text and leaves the page', () => {
  const { ram, placer } = setup();
  placer.loadPage(A, 3 * PAGE, new Uint8Array(PAGE).fill(1), true);
  assert.throws(
    () => placer.loadPage(A, 3 * PAGE, new Uint8Array(PAGE).fill(2), true),
    (e: unknown) => e instanceof DestError && e.code === MIG_ERR_DEST_PLACED_TWICE && e.message === 'postcopy_place_page: File exists copy host: 0x3000 from: a+0x3000 (size: 4096)',
  );
  assert.equal(ram.store.bytes[3 * PAGE], 1);
  assert.throws(() => placer.loadZero(A, 3 * PAGE, 0, true), /postcopy_place_page_zero: File exists zero host: 0x3000/);
  assert.equal(placer.placedTwiceAttempts, 2);
  assert.equal(placer.postcopyPagesPlaced, 1);
});

test('placement: discards clear bits, zero pages and keep the received count; local zero fills', () => {
  const { ram, placer } = setup();
  for (let p = 0; p < 8; p++) placer.loadPage(A, p * PAGE, new Uint8Array(PAGE).fill(p + 1), false);
  placer.loadPage(B, 0, new Uint8Array(PAGE).fill(9), false);
  assert.equal(ram.received.count(), 9);
  placer.discardRange('a', 2 * PAGE, 3 * PAGE);
  assert.equal(ram.received.count(), 6);
  assert.deepEqual([2, 3, 4].map((p) => ram.received.isReceived(p) || !ram.store.isZeroPage(p)), [false, false, false]);
  assert.equal(ram.received.isReceived(5), true);
  placer.discardAll();
  assert.equal(ram.received.count(), 0);
  assert.equal(ram.store.isZeroPage(16) && ram.store.isZeroPage(0), true);
  assert.equal(placer.discardedPages, 9);
  ram.store.bytes.fill(3, 17 * PAGE, 18 * PAGE);
  assert.equal(placer.fillLocalZeroRanges(RangeTable.of([{ start: 17, end: 19 }, { start: 19, end: 40 }])), 3); // clamped to 20 pages
  assert.equal(ram.store.isZeroPage(17), true);
  assert.equal(placer.fillLocalZero(17), false);
  assert.equal(ram.received.count(), 3);
});

test('placement: MEM_SIZE must name local blocks of the same size', () => {
  const { placer } = setup();
  assert.match(placer.setStreamBlocks([{ name: 'c', usedLengthBytes: PAGE }])?.message ?? '', /Unknown ramblock "c"/);
  assert.match(placer.setStreamBlocks([{ name: 'a', usedLengthBytes: PAGE }])?.message ?? '', /Size mismatch: a: 0x1000 != 0x8000/);
});

test('placement: versions set a compact store\'s page and materialize on a bytes store', () => {
  const blocks = RamBlockList.single('a', 8 * PAGE);
  const compact = new CompactBacking(8);
  const c = new PagePlacer({ blocks, store: compact, received: new ReceivedMap(8) });
  c.setStreamBlocks([{ name: 'a', usedLengthBytes: 8 * PAGE }]);
  assert.equal(c.loadVersion(A, 5 * PAGE, 42, true), 5);
  assert.equal(compact.pageVersion(5), 42);
  assert.throws(() => c.loadVersion(A, 5 * PAGE, 43, true), /postcopy_place_page: File exists/);
  assert.throws(() => c.loadVersion(A, 6 * PAGE, 0xffffffff, false), (e: unknown) => e instanceof DestError && e.code === MIG_ERR_DEST_PAGE_PAYLOAD);

  const ram = makeDestRam([{ name: 'a', offsetBytes: 0, sizeBytes: 8 * PAGE }]);
  const b = new PagePlacer(ram);
  b.setStreamBlocks([{ name: 'a', usedLengthBytes: 8 * PAGE }]);
  b.loadVersion(A, 5 * PAGE, 42, false);
  const want = new Uint8Array(PAGE);
  materializeCompactPage(5, 42, want);
  assert.deepEqual(ram.store.bytes.subarray(5 * PAGE, 6 * PAGE), want);
  assert.equal(compact.pageEquals(ram.store, 5), true);
  assert.equal(b.pagesReceived, 1);
});

test('placement: bytes a compact store cannot represent are a typed payload error', () => {
  const compact = new CompactBacking(8, { exactPageLimit: 0 });
  const p = new PagePlacer({ blocks: RamBlockList.single('a', 8 * PAGE), store: compact, received: new ReceivedMap(8) });
  p.setStreamBlocks([{ name: 'a', usedLengthBytes: 8 * PAGE }]);
  assert.throws(() => p.loadPage(A, 0, new Uint8Array(PAGE).fill(0x77), false), (e: unknown) => e instanceof DestError && e.code === MIG_ERR_DEST_PAGE_PAYLOAD);
});

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

test('ZERO runs leave pages nobody else wrote unread, in precopy and in postcopy', () => {
  const pages = 300;
  const log = new DirtyLog(pages);
  const written = new WrittenPages(log);
  const ram = { ...makeDestRam([{ name: 'pc.ram', offsetBytes: 0, sizeBytes: pages * PAGE }]), unwritten: written };
  const placer = new PagePlacer(ram);
  assert.equal(placer.setStreamBlocks([{ name: 'pc.ram', usedLengthBytes: pages * PAGE }]), null);
  const ref = { index: 0, name: 'pc.ram', usedLengthBytes: pages * PAGE };
  const bytes = ram.store.bytes;
  placer.loadPage(ref, 10 * PAGE, new Uint8Array(PAGE).fill(9), false); // received: zeroed
  bytes[40 * PAGE + 1] = 4; // written by another writer (marked): zeroed
  log.markDirty(40);
  bytes[70 * PAGE + 2] = 5; // marked as never written: a ZERO run must not read it
  bytes[220 * PAGE + 3] = 6; // postcopy, marked written: zeroed
  written.markRange(220, 222);
  bytes[250 * PAGE + 4] = 7; // postcopy, never written: left unread
  const tested: number[] = [];
  const previous = installZeroRangeTest((b, start, end) => {
    for (let p = start / PAGE; p < end / PAGE; p++) tested.push(p);
    return isZeroRangeJs(b, start, end);
  });
  try {
    placer.loadZeroRun(ref, 0, 200, false);
    placer.loadZeroRun(ref, 200 * PAGE, 100, true);
  } finally {
    installZeroRangeTest(previous);
  }
  assert.deepEqual(tested, [10, 40], 'only the received page and the written page were read');
  assert.equal(bytes[10 * PAGE], 0);
  assert.equal(bytes[40 * PAGE + 1], 0);
  assert.equal(bytes[70 * PAGE + 2], 5, 'a page the host reports never written is not touched');
  assert.equal(bytes[220 * PAGE + 3], 0);
  assert.equal(bytes[250 * PAGE + 4], 7);
  for (let p = 0; p < pages; p++) assert.equal(ram.received.isReceived(p), true);
});
