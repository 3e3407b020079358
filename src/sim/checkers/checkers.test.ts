// Tests of the invariant checkers: each one passes on a clean hand-built state and catches its
// own violation, built directly: a dropped page, a page placed twice, a guest resumed with a
// missing page, a fault never served, a stall past the bound, held hint memory, an unplugged
// page read and sent, an illegal status transition, a queue over its bound, and a stale
// incrementer page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../../lib/bitmap.ts';
import { RangeTable } from '../../lib/range-table.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { checkMemoryEquality, type MemoryEqualityInput } from './memory-equality.ts';
import { checkPostcopyPlacement, type PostcopyPlacementInput } from './postcopy-placement.ts';
import { checkStallBound, stallBoundNs } from './stall-bound.ts';
import { checkHintRecovery, type HintRecoveryInput } from './hint-recovery.ts';
import { checkUnplugged, type UnpluggedInput } from './unplugged.ts';
import { checkStatusAndQueues, type StatusAndQueuesInput } from './status-and-queues.ts';
import { checkIncrementerOracle } from './incrementer.ts';

const PAGES = 64;
const NONE = { has: () => false };

/** Two equal bytes stores with a few written pages. */
function twin(): { source: BytesBacking; destination: BytesBacking } {
  const source = new BytesBacking(PAGES * 4096);
  const destination = new BytesBacking(PAGES * 4096);
  for (const p of [1, 7, 30, 63]) {
    source.writeU8(p * 4096 + 5, p);
    destination.writeU8(p * 4096 + 5, p);
  }
  return { source, destination };
}

function memoryInput(overrides: Partial<MemoryEqualityInput> = {}): MemoryEqualityInput {
  const { source, destination } = twin();
  return { notApplicableReason: null, source, destination, writtenAfterResume: null, firstWriteMismatch: null, allowedToDiffer: NONE, ...overrides };
}

test('memory equality: equal memories pass; a dropped page fails', () => {
  assert.equal(checkMemoryEquality(memoryInput()).ok, true);
  const input = memoryInput();
  input.destination.zeroPage(30); // the page never arrived
  const verdict = checkMemoryEquality(input);
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /1 destination pages differ .*\(30\)/);
});

test('memory equality: pages free in the guest may differ; audited first writes count', () => {
  const input = memoryInput({ allowedToDiffer: RangeTable.of([{ start: 30, end: 31 }]) });
  input.destination.zeroPage(30);
  assert.equal(checkMemoryEquality(input).ok, true);
  // Page 7 was written by the destination guest after resume: skipped at the end, but its
  // first-write audit found it different from the source.
  const written = new Bitmap(PAGES);
  written.set(7);
  const mismatch = new Bitmap(PAGES);
  const audited = memoryInput({ writtenAfterResume: written, firstWriteMismatch: mismatch });
  (audited.destination as BytesBacking).writeU8(7 * 4096, 99);
  assert.equal(checkMemoryEquality(audited).ok, true);
  mismatch.set(7);
  assert.equal(checkMemoryEquality(audited).ok, false);
  assert.match(checkMemoryEquality(memoryInput({ notApplicableReason: 'cancelled' })).detail, /not applicable/);
});

test('memory equality: compact stores compare by version', () => {
  const source = new CompactBacking(PAGES);
  const destination = new CompactBacking(PAGES);
  source.setVersion(3, 17);
  destination.setVersion(3, 17);
  const input = memoryInput({ source, destination });
  assert.equal(checkMemoryEquality(input).ok, true);
  source.bumpPage(3); // a write the destination never got
  assert.equal(checkMemoryEquality(input).ok, false);
});

function placementInput(overrides: Partial<PostcopyPlacementInput> = {}): PostcopyPlacementInput {
  return {
    postcopy: true,
    duplicatePlacements: [],
    duplicatePlacementCount: 0,
    faultCount: 1,
    unservedFaults: [],
    missingAtPrecopyResume: null,
    allowedToDiffer: NONE,
    ...overrides,
  };
}

test('postcopy placement: a page placed twice fails', () => {
  assert.equal(checkPostcopyPlacement(placementInput()).ok, true);
  const verdict = checkPostcopyPlacement(placementInput({ duplicatePlacements: [12], duplicatePlacementCount: 1 }));
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /1 pages placed twice \(12\)/);
});

test('postcopy placement: a fault never served fails', () => {
  const verdict = checkPostcopyPlacement(placementInput({ faultCount: 2, unservedFaults: [{ pageIndex: 9, faultNs: 5 }] }));
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /1 faults never served \(pages 9\)/);
});

test('postcopy placement: resuming a precopy guest with a missing page fails, unless it is free', () => {
  const missing = [{ start: 40, end: 42 }];
  const verdict = checkPostcopyPlacement(placementInput({ postcopy: false, faultCount: 0, missingAtPrecopyResume: missing }));
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /started with 2 pages missing \(40, 41\)/);
  const free = RangeTable.of([{ start: 40, end: 42 }]);
  assert.equal(checkPostcopyPlacement(placementInput({ postcopy: false, faultCount: 0, missingAtPrecopyResume: missing, allowedToDiffer: free })).ok, true);
});

test('stall bound: derived from the link; a long stall fails and legacy is named', () => {
  const bound = stallBoundNs({
    streamLatencyNs: 50_000,
    returnLatencyNs: 50_000,
    streamBytesPerSec: 1e9,
    streamQueueBytesMax: 61_440,
    pageRecordBytes: 4096,
    pumpBytesMax: 32_768,
    zeroRecordBytes: 9,
    scanNsPerPage: 10,
    tickNs: 1_000_000,
  });
  // 2 × (100 µs RTT + 65536 bytes at 1 byte/ns + 3641 zero pages × 10 ns) + 1 ms tick.
  assert.equal(bound, 2 * (100_000 + 65_536 + 36_410) + 1_000_000);
  assert.equal(checkStallBound({ boundNs: bound, longestStallNs: 300_000, longestStallPage: 3, faultCount: 1, policy: 'track' }).ok, true);
  const verdict = checkStallBound({ boundNs: bound, longestStallNs: 2_000_000_000, longestStallPage: 3, faultCount: 1, policy: 'legacy' });
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /page 3 stalled too long \(expected: the legacy policy/);
});

function hintInput(overrides: Partial<HintRecoveryInput> = {}): HintRecoveryInput {
  return {
    hintedPages: 2048,
    hintRangeCount: 2,
    doneDelivered: true,
    heldAfterMigrationBytes: 0,
    freeBytesBefore: 100 << 20,
    freeBytesAfter: 100 << 20,
    policy: 'track',
    postcopy: true,
    ...overrides,
  };
}

test('hint recovery: held memory and a missing DONE fail', () => {
  assert.equal(checkHintRecovery(hintInput()).ok, true);
  assert.equal(checkHintRecovery(hintInput({ hintedPages: 0, hintRangeCount: 0, doneDelivered: false })).ok, true);
  const held = checkHintRecovery(hintInput({ heldAfterMigrationBytes: 8 << 20, freeBytesAfter: 92 << 20 }));
  assert.equal(held.ok, false);
  assert.match(held.detail, /still holds 8.00 MiB/);
  const legacy = checkHintRecovery(hintInput({ doneDelivered: false, heldAfterMigrationBytes: 8 << 20, policy: 'legacy' }));
  assert.equal(legacy.ok, false);
  assert.match(legacy.detail, /DONE never reached .*expected: legacy/);
});

function unpluggedInput(overrides: Partial<UnpluggedInput> = {}): UnpluggedInput {
  const none = { count: 0, pages: [] };
  return { unpluggedPages: 512, sourceReads: none, received: none, guestAccesses: none, ...overrides };
}

test('unplugged memory: a page read and sent fails', () => {
  assert.equal(checkUnplugged(unpluggedInput()).ok, true);
  assert.match(checkUnplugged(unpluggedInput({ unpluggedPages: 0 })).detail, /not applicable/);
  const verdict = checkUnplugged(unpluggedInput({ sourceReads: { count: 1, pages: [70000] }, received: { count: 1, pages: [70000] } }));
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /1 source reads .*70000.*1 unplugged pages sent/);
  assert.equal(checkUnplugged(unpluggedInput({ guestAccesses: { count: 3, pages: [1, 2, 3] } })).ok, false);
});

function statusInput(overrides: Partial<StatusAndQueuesInput> = {}): StatusAndQueuesInput {
  return {
    source: [{ from: 'none', to: 'setup' }, { from: 'setup', to: 'active' }, { from: 'active', to: 'postcopy-active' }, { from: 'postcopy-active', to: 'completed' }],
    destination: [{ from: 'none', to: 'active' }, { from: 'active', to: 'postcopy-active' }, { from: 'postcopy-active', to: 'completed' }],
    queues: [{ name: 'stream', highWater: 3, bound: 64 }],
    ...overrides,
  };
}

test('status and queues: an illegal transition, a broken chain and an overfull queue fail', () => {
  const ok = checkStatusAndQueues(statusInput());
  assert.equal(ok.ok, true, ok.detail);
  const illegal = checkStatusAndQueues(statusInput({ source: [{ from: 'none', to: 'setup' }, { from: 'setup', to: 'completed' }] }));
  assert.equal(illegal.ok, false);
  assert.match(illegal.detail, /source: step 2: setup -> completed is not a legal source transition/);
  const destinationSetup = checkStatusAndQueues(statusInput({ destination: [{ from: 'none', to: 'setup' }] }));
  assert.equal(destinationSetup.ok, false);
  const chain = checkStatusAndQueues(statusInput({ source: [{ from: 'none', to: 'setup' }, { from: 'active', to: 'completed' }] }));
  assert.match(chain.detail, /starts at active/);
  const queue = checkStatusAndQueues(statusInput({ queues: [{ name: 'faults', highWater: 9, bound: 8 }] }));
  assert.equal(queue.ok, false);
  assert.match(queue.detail, /faults reached 9, bound 8/);
});

test('incrementer oracle: a stale page fails; the edge must be at the cursor', () => {
  const bytes = new Uint8Array(10).fill(5);
  bytes.fill(6, 0, 4); // pages 0..3 incremented, cursor at 4
  const input = (cursor: number) => ({
    incrementer: { pageCount: 10, pageAt: (i: number) => i, readByte0: (p: number) => bytes[p], cursor },
  });
  assert.equal(checkIncrementerOracle(input(4)).ok, true);
  assert.equal(checkIncrementerOracle(input(5)).ok, false); // the write to page 4 is missing
  bytes[2] = 5; // page 2 arrived stale
  const verdict = checkIncrementerOracle(input(4));
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /edge/);
  assert.match(checkIncrementerOracle({ incrementer: null }).detail, /not applicable/);
});
