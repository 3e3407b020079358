// Destination engine, postcopy: the real QEMU 7.2 capture with an injected fault, placement
// exactly once, the ADVISE checks and notifier vetoes, pause after RUN, release at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RangeTable } from '../../lib/range-table.ts';
import { readVector } from '../../testing/testdata.ts';
import { decodeReturnPath, type RpMessage } from '../../format/return-path.ts';
import { MIG_ERR_DEST_ADVISE, MIG_ERR_DEST_NOTIFIER_VETO, MIG_ERR_DEST_PLACED_TWICE } from './dest-errors.ts';
import {
  MS,
  PAGE,
  effectsOf,
  makeEngine,
  markNames,
  patternBytes,
  postcopyPrefix,
  postcopyTail,
  ramPart,
  returnPathMessages,
  statusMoves,
  type SourceBlock,
} from './dest.test-util.ts';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The capture's main stream: where PING 4 ends (facts §3.4 listing: PING 4 at 533971, 9 bytes). */
const CAPTURE_AFTER_PING4 = 533971 + 9;

test('postcopy: the real QEMU 7.2 capture, with a fault on mem+0x3ff000 before it arrives, matches QEMU\'s return path', () => {
  const stream = readVector('qemu-7.2/postcopy-4M/conn0.src2dst.bin');
  const qemuRp = decodeReturnPath(readVector('qemu-7.2/postcopy-4M/conn0.dst2src.bin'));
  const { engine, ram, hooks, feeder } = makeEngine([{ name: 'mem', data: new Uint8Array(4 << 20) }], {
    capabilities: { 'postcopy-ram': true, 'postcopy-blocktime': true },
  });
  feeder.nowNs = 1000 * MS;
  feeder.pushSplit(stream.subarray(0, CAPTURE_AFTER_PING4), [17, 40, 100_000, 533_000, 533_800]);
  assert.equal(engine.status, 'postcopy-active');
  assert.deepEqual(engine.phase, { kind: 'postcopy', running: true });
  assert.equal(effectsOf(feeder.effects, 'run-guest').length, 1);
  assert.deepEqual(hooks.notified, ['probe', 'inbound-advise', 'inbound-listen']);

  const page = 0x3ff000 / PAGE;
  assert.equal(ram.received.isReceived(page), false);
  const fault = feeder.fault(0, page);
  assert.equal(fault.present, false);
  assert.deepEqual(returnPathMessages(fault.effects), [{ kind: 'req-pages-id', startBytes: 0x3ff000, lengthBytes: 0x1000, blockName: 'mem' }]);
  assert.deepEqual(engine.stats().outstandingFaults, [{ vcpuIndex: 0, pageIndex: page, sinceNs: feeder.nowNs }]);
  const faultNs = feeder.nowNs;

  const rest = stream.subarray(CAPTURE_AFTER_PING4);
  const cuts: number[] = [];
  for (let at = 65_536; at < rest.length; at += 65_536) cuts.push(at);
  feeder.pushSplit(rest, cuts);

  assert.equal(engine.status, 'completed', engine.lastError?.message);
  assert.deepEqual(statusMoves(feeder.effects), ['none→active', 'active→postcopy-active', 'postcopy-active→completed']);
  assert.deepEqual(hooks.notified, ['probe', 'inbound-advise', 'inbound-listen', 'inbound-end']);
  const ready = effectsOf(feeder.effects, 'page-ready');
  assert.deepEqual(ready, [{ kind: 'page-ready', pageIndex: page }]);
  assert.equal(sha256(ram.store.bytes), sha256(patternBytes(1024)));
  assert.equal(engine.isComplete(), true);

  // Semantically QEMU's return path: the same messages; PONG 3 and 4 may swap (two threads).
  const ours = returnPathMessages(feeder.effects);
  const pongs = (ms: RpMessage[]) => ms.filter((m) => m.kind === 'pong').map((m) => (m.kind === 'pong' ? m.value : 0)).sort();
  const others = (ms: RpMessage[]) => ms.filter((m) => m.kind !== 'pong');
  assert.deepEqual(pongs(ours), pongs(qemuRp));
  assert.deepEqual(others(ours), others(qemuRp));
  assert.deepEqual(ours.map((m) => m.kind), ['pong', 'pong', 'pong', 'pong', 'req-pages-id', 'shut']);

  const stats = engine.stats();
  assert.equal(stats.requestsSent, 1);
  assert.equal(stats.placedTwiceAttempts, 0);
  assert.deepEqual(stats.outstandingFaults, []);
  assert.equal(stats.pagesReceived, 1023);
  assert.equal(stats.zeroPagesReceived, 1);
  assert.ok(stats.maxStallNs > 0 && stats.maxStallNs === stats.maxStallNsPerVcpu[0]);
  const readyAtMs = Math.floor(faultNs / MS) + stats.maxStallNs / MS;
  const q = engine.queryMigrate(feeder.nowNs);
  assert.equal(q.status, 'completed');
  assert.equal(q['postcopy-blocktime'], readyAtMs - Math.floor(faultNs / MS));
  assert.deepEqual(q['postcopy-vcpu-blocktime'], [q['postcopy-blocktime']]);
});

test('postcopy: the real QEMU 7.2 capture read into one reused, overwritten buffer (PACKAGED data included) loads the same RAM', () => {
  const stream = readVector('qemu-7.2/postcopy-4M/conn0.src2dst.bin');
  const qemuRp = decodeReturnPath(readVector('qemu-7.2/postcopy-4M/conn0.dst2src.bin'));
  const { engine, ram, feeder } = makeEngine([{ name: 'mem', data: new Uint8Array(4 << 20) }], { capabilities: { 'postcopy-ram': true } });
  const cuts = [17, 40, 1000, 533_000, 533_800];
  for (let at = 600_000; at < stream.length; at += 65_536 + 4109) cuts.push(at);
  feeder.pushSplitReused(stream, cuts);
  assert.equal(engine.status, 'completed', engine.lastError?.message);
  assert.equal(sha256(ram.store.bytes), sha256(patternBytes(1024)));
  assert.deepEqual(returnPathMessages(feeder.effects).map((m) => m.kind), qemuRp.filter((m) => m.kind !== 'req-pages-id').map((m) => m.kind));
});

/** Two blocks: `a` of 16 pages (pattern), `b` of 8 pages (pattern from 100). */
function twoBlocks(): SourceBlock[] {
  return [
    { name: 'a', data: patternBytes(16) },
    { name: 'b', data: patternBytes(8, 100) },
  ];
}

/** A postcopy prefix that sent a[0..4) in precopy and discarded a[2..16) and all of b. */
function standardPrefix(blocks: SourceBlock[], runstate?: string): Uint8Array {
  return postcopyPrefix({
    blocks,
    precopyPages: [[0, 0], [0, 1], [0, 2], [0, 3]],
    discards: [[0, 2, 14], [1, 0, 8]],
    runstate,
  });
}

test('postcopy: a page sent twice after the switch is refused like EEXIST and pauses the migration', () => {
  const blocks = twoBlocks();
  const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  feeder.push(standardPrefix(blocks));
  assert.equal(engine.status, 'postcopy-active');
  feeder.push(ramPart([[blocks[0], 5], [blocks[0], 6]]));
  feeder.push(ramPart([[blocks[0], 5]]));
  assert.equal(engine.status, 'postcopy-paused');
  assert.equal(engine.lastError?.code, MIG_ERR_DEST_PLACED_TWICE);
  assert.equal(engine.lastError?.message, 'postcopy_place_page: File exists copy host: 0x5000 from: a+0x5000 (size: 4096)');
  assert.equal(engine.stats().placedTwiceAttempts, 1);
  assert.deepEqual(statusMoves(feeder.effects).slice(-1), ['postcopy-active→postcopy-paused']);
  // A page received in precopy and not discarded is also there already.
  const again = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  again.feeder.push(standardPrefix(blocks));
  again.feeder.push(ramPart([[blocks[0], 1]]));
  assert.equal(again.engine.status, 'postcopy-paused');
  assert.match(again.engine.lastError?.message ?? '', /^postcopy_place_page: File exists copy host: 0x1000 /);
  // A zero page placed twice uses QEMU's zero-page text.
  const zero = makeEngine([{ name: 'a', data: new Uint8Array(4 * PAGE) }], { capabilities: { 'postcopy-ram': true } });
  zero.feeder.push(postcopyPrefix({ blocks: [{ name: 'a', data: new Uint8Array(4 * PAGE) }], precopyPages: [], discards: [] }));
  zero.feeder.push(ramPart([[{ name: 'a', data: new Uint8Array(4 * PAGE) }, 2], [{ name: 'a', data: new Uint8Array(4 * PAGE) }, 2]]));
  assert.equal(zero.engine.lastError?.message, 'postcopy_place_page_zero: File exists zero host: 0x2000');
});

test('postcopy: after a pause, faults wait without requests and bytes are ignored', () => {
  const blocks = twoBlocks();
  const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true }, vcpuCount: 2 });
  feeder.push(standardPrefix(blocks));
  feeder.push(ramPart([[blocks[0], 1]]));
  assert.equal(engine.status, 'postcopy-paused');
  const f = feeder.fault(1, 9);
  assert.equal(f.present, false);
  assert.deepEqual(markNames(f.effects), ['fault-while-paused']);
  assert.deepEqual(returnPathMessages(f.effects), []);
  feeder.push(postcopyTail());
  assert.equal(engine.status, 'postcopy-paused');
  assert.deepEqual(engine.stats().outstandingFaults.map((o) => o.pageIndex), [9]);
});

test('postcopy: faults send REQ_PAGES_ID when the block changes, REQ_PAGES otherwise, one per fault', () => {
  const blocks = twoBlocks();
  const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true }, vcpuCount: 5 });
  feeder.push(standardPrefix(blocks));
  const before = feeder.effects.length;
  const fault = (vcpu: number, page: number) => {
    const r = feeder.fault(vcpu, page);
    assert.equal(r.present, false);
    assert.equal(effectsOf(r.effects, 'send').length, 1);
    return r;
  };
  fault(0, 5); // a+0x5000: names the block
  fault(1, 6); // same block: REQ_PAGES
  fault(2, 16 + 3); // b+0x3000: names b
  const dup = fault(3, 5); // back to a, and a duplicate of vCPU 0's page: requested again
  assert.ok(markNames(dup.effects).includes('duplicate-fault'));
  fault(4, 4); // same block as the last request
  const sent = returnPathMessages(feeder.effects.slice(before));
  assert.deepEqual(sent, [
    { kind: 'req-pages-id', startBytes: 0x5000, lengthBytes: PAGE, blockName: 'a' },
    { kind: 'req-pages', startBytes: 0x6000, lengthBytes: PAGE, blockName: 'a' },
    { kind: 'req-pages-id', startBytes: 0x3000, lengthBytes: PAGE, blockName: 'b' },
    { kind: 'req-pages-id', startBytes: 0x5000, lengthBytes: PAGE, blockName: 'a' },
    { kind: 'req-pages', startBytes: 0x4000, lengthBytes: PAGE, blockName: 'a' },
  ]);
  // The raw bytes of a REQ_PAGES: be16 4, be16 12, be64 start, be32 length (no block name).
  const raw = effectsOf(feeder.effects.slice(before), 'send').map((e) => Buffer.from(e.data).toString('hex'));
  assert.equal(raw[1], '0004000c00000000000060000000' + '1000');
  assert.equal(raw[0], '0003000e0000000000005000000010000161'); // length 13 + name
  assert.equal(engine.stats().requestsSent, 5);
  assert.equal(engine.stats().outstandingFaults.length, 5);
});

test('postcopy: one arriving page wakes every vCPU waiting for it; a present page is present at once', () => {
  const blocks = twoBlocks();
  const { engine, ram, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true }, vcpuCount: 3 });
  feeder.push(standardPrefix(blocks));
  assert.equal(feeder.fault(2, 1).present, true); // received in precopy, not discarded
  feeder.nowNs = 10 * MS;
  feeder.fault(0, 7);
  feeder.nowNs = 12 * MS;
  feeder.fault(1, 7);
  feeder.nowNs = 20 * MS;
  const effects = feeder.push(ramPart([[blocks[0], 6], [blocks[0], 7]]));
  assert.deepEqual(effectsOf(effects, 'page-ready'), [{ kind: 'page-ready', pageIndex: 7 }]);
  assert.equal(ram.received.isReceived(7), true);
  const stats = engine.stats();
  assert.deepEqual(stats.outstandingFaults, []);
  assert.deepEqual(stats.maxStallNsPerVcpu, [10 * MS, 8 * MS, 0]);
  assert.equal(stats.maxStallNs, 10 * MS);
  assert.equal(stats.faults, 3);
  assert.equal(stats.faultsWaited, 2);
});

test('postcopy: an unplugged page is zero-filled locally on a fault, never requested', () => {
  const blocks = twoBlocks();
  const { engine, ram, hooks, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  hooks.localZero = RangeTable.of([{ start: 16 + 4, end: 16 + 8 }]);
  feeder.push(standardPrefix(blocks));
  ram.store.bytes.fill(0x5a, (16 + 5) * PAGE, (16 + 6) * PAGE);
  const r = feeder.fault(0, 16 + 5);
  assert.equal(r.present, true);
  assert.deepEqual(markNames(r.effects), ['local-zero']);
  assert.deepEqual(returnPathMessages(r.effects), []);
  assert.equal(ram.received.isReceived(16 + 5), true);
  assert.equal(ram.store.isZeroPage(16 + 5), true);
  assert.equal(engine.stats().localZeroPages, 1);
  assert.equal(engine.stats().requestsSent, 0);
});

test('postcopy: blocktime with two vCPUs counts the all-blocked interval only in the total', () => {
  const blocks = twoBlocks();
  const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true, 'postcopy-blocktime': true }, vcpuCount: 2 });
  feeder.nowNs = 1000 * MS;
  feeder.push(standardPrefix(blocks)); // LISTEN at 1000 ms: the blocktime clock starts
  feeder.nowNs = 1010 * MS;
  feeder.fault(0, 8); // vCPU 0 blocked from 10 ms
  feeder.nowNs = 1020 * MS;
  feeder.fault(1, 9); // vCPU 1 from 20 ms: both blocked
  feeder.nowNs = 1050 * MS;
  feeder.push(ramPart([[blocks[0], 8]])); // vCPU 0: 40 ms; all-blocked 20..50 → total 30
  feeder.nowNs = 1070 * MS;
  feeder.push(ramPart([[blocks[0], 9]])); // vCPU 1: 50 ms; alone → total unchanged
  assert.deepEqual(engine.queryMigrate(feeder.nowNs), { status: 'postcopy-active' });
  feeder.push(postcopyTail());
  assert.deepEqual(engine.queryMigrate(feeder.nowNs), {
    status: 'completed',
    'postcopy-blocktime': 30,
    'postcopy-vcpu-blocktime': [40, 50],
  });
  assert.deepEqual(engine.stats().maxStallNsPerVcpu, [40 * MS, 50 * MS]);
});

test('postcopy: vCPUs still waiting at the end are released onto zero pages', () => {
  const blocks = twoBlocks();
  const { engine, ram, hooks, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  feeder.push(standardPrefix(blocks));
  feeder.fault(0, 12); // never sent (e.g. hinted under `legacy`)
  feeder.nowNs = 500 * MS;
  const end = feeder.push(postcopyTail());
  assert.equal(engine.status, 'completed');
  assert.deepEqual(effectsOf(end, 'page-ready'), [{ kind: 'page-ready', pageIndex: 12 }]);
  assert.ok(markNames(end).includes('fault-released-at-end'));
  assert.equal(ram.store.isZeroPage(12), true);
  assert.equal(engine.stats().faultsReleasedAtEnd, 1);
  assert.equal(engine.stats().maxStallNs, 500 * MS);
  assert.deepEqual(engine.stats().outstandingFaults, []);
  assert.equal(hooks.notified.at(-1), 'inbound-end');
  assert.deepEqual(returnPathMessages(end), [{ kind: 'shut', status: 0 }]);
  // After the end faults are not trapped any more.
  assert.deepEqual(markNames(feeder.fault(0, 13).effects), ['fault-untrapped']);
});

test('postcopy: ADVISE vetoed by the probe notifier fails with its text; inbound-advise is not run', () => {
  const blocks = twoBlocks();
  const text = "virtio-balloon: 'free-page-hint' does not support postcopy";
  const { engine, hooks, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  hooks.vetoes.set('probe', text);
  feeder.push(standardPrefix(blocks));
  assert.equal(engine.status, 'failed');
  assert.equal(engine.lastError?.code, MIG_ERR_DEST_NOTIFIER_VETO);
  assert.equal(engine.lastError?.message, text);
  assert.deepEqual(hooks.notified, ['probe']);
  assert.equal(effectsOf(feeder.effects, 'run-guest').length, 0);
  assert.deepEqual(statusMoves(feeder.effects), ['none→active', 'active→failed']);
});

test('postcopy: the ADVISE checks use QEMU\'s texts; a listen veto fails before the status changes', () => {
  const blocks = twoBlocks();
  const cases: Array<[Parameters<typeof postcopyPrefix>[0]['advise'], boolean, string]> = [
    ['empty', true, 'RAM postcopy is enabled but have 0 byte advise'],
    [{ pageSizeSummary: PAGE, targetPageSize: PAGE }, false, 'RAM postcopy is disabled but have 16 byte advise'],
    [{ pageSizeSummary: 0x201000, targetPageSize: PAGE }, true, 'Postcopy needs matching RAM page sizes (s=201000 d=1000)'],
    [{ pageSizeSummary: PAGE, targetPageSize: 0x10000 }, true, 'Postcopy needs matching target page sizes (s=65536 d=4096)'],
  ];
  for (const [advise, postcopyRam, text] of cases) {
    const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': postcopyRam } });
    feeder.push(postcopyPrefix({ blocks, precopyPages: [], discards: [], advise }));
    assert.equal(engine.lastError?.code, MIG_ERR_DEST_ADVISE, text);
    assert.equal(engine.lastError?.message, text);
    assert.equal(engine.status, 'failed');
  }
  const { engine, hooks, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  hooks.vetoes.set('inbound-listen', 'vhost-user: no shared memory postcopy');
  feeder.push(standardPrefix(blocks));
  assert.equal(engine.lastError?.message, 'vhost-user: no shared memory postcopy');
  assert.deepEqual(statusMoves(feeder.effects), ['none→active', 'active→failed']);
});

test('postcopy: ADVISE discards what arrived before it; RAM_DISCARD clears bits and zeroes pages', () => {
  const blocks = twoBlocks();
  const { engine, ram, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  feeder.push(standardPrefix(blocks));
  // a[0..2) stay; a[2..4) were received and then discarded; b never arrived.
  assert.equal(ram.received.count(), 2);
  assert.equal(ram.store.isZeroPage(2) && ram.store.isZeroPage(3), true);
  assert.equal(engine.stats().discardedPages, 2);
  assert.equal(engine.missingPages(), 24 - 2);
  feeder.push(ramPart([[blocks[0], 2], [blocks[0], 3]]));
  assert.equal(ram.store.pageEquals(ram.store, 2), true);
  assert.equal(new DataView(ram.store.bytes.buffer).getUint32(3 * PAGE, true), 3);
});

test('postcopy: a globalstate that is not running keeps the guest paused at RUN', () => {
  const blocks = twoBlocks();
  const { engine, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  feeder.push(standardPrefix(blocks, 'paused'));
  assert.equal(engine.status, 'postcopy-active');
  assert.equal(effectsOf(feeder.effects, 'run-guest').length, 0);
  assert.ok(markNames(feeder.effects).includes('guest-stays-paused'));
});

test('postcopy: an error between LISTEN and RUN fails instead of pausing', () => {
  const blocks = twoBlocks();
  const { engine, hooks, feeder } = makeEngine(blocks, { capabilities: { 'postcopy-ram': true } });
  hooks.deviceRefusals.set('globalstate', 'globalstate: refused');
  feeder.push(standardPrefix(blocks));
  assert.equal(engine.status, 'failed');
  assert.deepEqual(statusMoves(feeder.effects), ['none→active', 'active→postcopy-active', 'postcopy-active→failed']);
  assert.equal(effectsOf(feeder.effects, 'run-guest').length, 0);
});
