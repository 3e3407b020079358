// Fuzz of free page hints from a hostile guest, through the whole source path: the balloon
// device's free page queue (command ids, hint ranges), the page conversion (hintedPages) and
// the SourceEngine's applyHint on a migration bitmap. Each case is a random interleaving of
// precopy notifier reasons and free page elements whose command id is the current one, a
// stale one, a random value, missing or short, and whose ranges are out of RAM, misaligned,
// empty, huge or overlapping. Oracles:
// - a range reaches the sink only in START, tagged with the id the driver echoed to start
//   that round; an id other than the current one never starts a round;
// - every page handed to the engine lies wholly inside a hinted range;
// - the engine clears exactly the hinted pages inside RAM (the union, so overlaps count
//   once, as counters.hintedPages says) and nothing else; nothing throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_F_VERSION_1, featureBit } from '../devices/virtio/constants.ts';
import { ElementBuilder, le32s } from '../devices/test-elements.ts';
import { BalloonDevice } from '../devices/balloon/balloon-device.ts';
import { HintStatus, hintedPages, PrecopyNotifyReason } from '../devices/balloon/free-page-hint.ts';
import { Guest, engineFor } from '../core/source/source-harness.test-util.ts';
import { fuzzRuns } from '../testing/fuzz-runs.ts';

const RUNS = fuzzRuns();
const PAGE = 4096;
/** Guest RAM the balloon and the engine know. */
const RAM_PAGES = 64;
const RAM_BYTES = RAM_PAGES * PAGE;
/** Scratch memory past RAM for the command ids the elements carry. */
const SCRATCH_BYTES = 64 * 1024;

type IdChoice = 'current' | 'previous' | 'next' | 'none' | 'short' | number;
type Op =
  | { readonly kind: 'notify'; readonly reason: number; readonly running: boolean }
  | { readonly kind: 'element'; readonly id: IdChoice; readonly ranges: ReadonlyArray<readonly [number, number]> };

const gpaArb = fc.oneof(
  fc.nat(RAM_PAGES - 1).map((p) => p * PAGE), // aligned in RAM
  fc.nat(RAM_BYTES - 1), // anywhere in RAM, mostly misaligned
  fc.integer({ min: RAM_BYTES - 4 * PAGE, max: RAM_BYTES + 4 * PAGE }), // across the end
  fc.integer({ min: RAM_BYTES, max: 2 ** 40 }), // far out
);
const lengthArb = fc.oneof(
  fc.integer({ min: 1, max: 8 }).map((n) => n * PAGE),
  fc.nat(9 * PAGE),
  fc.constantFrom(0, 1, PAGE - 1, PAGE + 1, 2 ** 32 - 1),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('notify' as const),
      // AFTER_BITMAP_SYNC with the VM running starts a round; the others stop or end it.
      reason: fc.oneof({ weight: 3, arbitrary: fc.constant(PrecopyNotifyReason.AfterBitmapSync) }, { weight: 2, arbitrary: fc.constantFrom(...Object.values(PrecopyNotifyReason)) }),
      running: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('element' as const),
      id: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom<IdChoice>('current', 'none') },
        { weight: 2, arbitrary: fc.constantFrom<IdChoice>('previous', 'next', 'short') },
        { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) },
      ),
      ranges: fc.array(fc.tuple(gpaArb, lengthArb), { maxLength: 4 }),
    }),
  },
);

let hintsDelivered = 0;
let staleRefused = 0;

function runCase(ops: readonly Op[]): void {
  const guest = new Guest('compact', RAM_PAGES);
  const { engine } = engineFor(guest);
  engine.start(0);
  const bitmap = engine.migrationBitmap;
  bitmap.setAll(); // every page still to send: the hints are what clears them
  const expectedClear = new Set<number>();
  const segments: Array<[number, number]> = [];
  let echoedId: number | null = null;

  const device = new BalloonDevice({
    ramSizeBytes: RAM_BYTES,
    freePageHint: true,
    hintSink: {
      onHint: (gpa, lengthBytes, cmdId) => {
        assert.equal(device.hint.status, HintStatus.Start, 'a hint outside START');
        assert.equal(cmdId, echoedId, 'a hint tagged with an id the driver did not echo');
        assert.ok(segments.some(([g, l]) => g === gpa && l === lengthBytes), 'a range the element did not carry');
        const { startPage, pageCount } = hintedPages(gpa, lengthBytes);
        if (pageCount === 0) return;
        assert.ok(startPage * PAGE >= gpa && (startPage + pageCount) * PAGE <= gpa + lengthBytes, `pages ${startPage}+${pageCount} not inside ${gpa}+${lengthBytes}`);
        for (let p = startPage; p < Math.min(startPage + pageCount, RAM_PAGES); p++) expectedClear.add(p);
        engine.applyHint(1, startPage, pageCount);
        hintsDelivered++;
      },
    },
  });
  device.setNegotiatedFeatures(device.offeredFeatures | featureBit(VIRTIO_F_VERSION_1));
  device.setDriverStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  const memory = new BytesBacking(RAM_BYTES + SCRATCH_BYTES);
  const builder = new ElementBuilder(memory, RAM_BYTES);

  for (const op of ops) {
    if (op.kind === 'notify') {
      device.onPrecopyNotify(op.reason as PrecopyNotifyReason, { vmRunning: op.running, postcopyRam: false });
      continue;
    }
    const current = device.hint.cmdId;
    const id = op.id === 'current' ? current : op.id === 'previous' ? current - 1 : op.id === 'next' ? current + 1 : op.id;
    const readable = id === 'none' ? [] : id === 'short' ? [Uint8Array.of(1, 2)] : [le32s(id)];
    const before = device.hint.status;
    if (typeof id === 'number' && before === HintStatus.Requested && id === current) echoedId = id;
    segments.length = 0;
    for (const [gpa, lengthBytes] of op.ranges) segments.push([gpa, lengthBytes]);
    device.handleFreePage(memory, builder.element(readable, segments.map(([gpa, lengthBytes]) => ({ gpa, lengthBytes }))));
    if (typeof id === 'number' && before === HintStatus.Requested && id !== current) {
      assert.equal(device.hint.status, HintStatus.Requested, `stale id ${id} (current ${current}) moved the round`);
      staleRefused++;
    }
  }
  assert.equal(bitmap.pageCount, RAM_PAGES);
  for (let p = 0; p < RAM_PAGES; p++) assert.equal(bitmap.isDirty(p), !expectedClear.has(p), `page ${p}`);
  assert.equal(engine.counters().hintedPages, expectedClear.size, 'overlapping hints count each page once');
}

test(`fuzz: ${RUNS} hostile free page hint sequences clear exactly the hinted pages in RAM`, () => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 24 }), (ops) => runCase(ops)), { numRuns: RUNS });
  // The fuzz reaches the interesting paths.
  assert.ok(hintsDelivered > RUNS / 10, `only ${hintsDelivered} hints reached the engine`);
  assert.ok(staleRefused > RUNS / 100, `only ${staleRefused} stale ids were tried while REQUESTED`);
});

test('hintedPages keeps only the whole pages inside the range', () => {
  assert.deepEqual(hintedPages(0, 2 * PAGE), { startPage: 0, pageCount: 2 });
  assert.deepEqual(hintedPages(PAGE - 1, 2 * PAGE), { startPage: 1, pageCount: 1 });
  assert.deepEqual(hintedPages(1, PAGE), { startPage: 1, pageCount: 0 });
  assert.deepEqual(hintedPages(3 * PAGE, PAGE - 1), { startPage: 3, pageCount: 0 });
  assert.deepEqual(hintedPages(5 * PAGE, 0), { startPage: 5, pageCount: 0 });
});
