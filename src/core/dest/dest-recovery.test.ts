// Destination engine, postcopy pause and recovery (facts §3.11): QEMU's refusals of
// migrate-recover and migrate-pause, the paused state (faults wait, no requests), the recovery
// connection (no header; RECV_BITMAP answered with the block's received pages; POSTCOPY_RESUME →
// RESUME_ACK(1) and a request for every page still waited for, naming its block again), and a
// recovery connection that fails before POSTCOPY_RESUME.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeToBytes } from '../../format/stream-encoder.ts';
import { bitmapFromRecvBitmap } from '../../format/return-path.ts';
import { MIG_ERR_DEST_CHANNEL, MIG_ERR_DEST_COMMAND } from './dest-errors.ts';
import {
  effectsOf,
  makeEngine,
  markNames,
  patternBytes,
  postcopyPrefix,
  postcopyTail,
  ramPart,
  RAM_SECTION_ID,
  returnPathMessages,
  statusMoves,
  type SourceBlock,
} from './dest.test-util.ts';

const PAGE = 4096;
const MS = 1_000_000;

function twoBlocks(): SourceBlock[] {
  return [
    { name: 'a', data: patternBytes(16) },
    { name: 'b', data: patternBytes(8, 100) },
  ];
}

/** A destination in postcopy (running) that received a[0..2) in precopy and a[5], b[1] after. */
function running() {
  const blocks = twoBlocks();
  const made = makeEngine(blocks, { capabilities: { 'postcopy-ram': true }, vcpuCount: 3 });
  made.feeder.push(postcopyPrefix({ blocks, precopyPages: [[0, 0], [0, 1]], discards: [[0, 2, 14], [1, 0, 8]] }));
  made.feeder.push(ramPart([[blocks[0], 5], [blocks[1], 1]]));
  assert.equal(made.engine.status, 'postcopy-active');
  return { blocks, ...made };
}

const recvBitmapCmd = (name: string) => encodeToBytes((e) => e.command({ kind: 'recv-bitmap', blockName: name }));
const resumeCmd = () => encodeToBytes((e) => e.command({ kind: 'postcopy-resume' }));

test('migrate-recover, migrate-pause and a new connection are refused outside their states', () => {
  const { engine, feeder } = running();
  const early = engine.migrateRecover(feeder.nowNs);
  assert.equal(early.error?.code, MIG_ERR_DEST_COMMAND);
  assert.equal(early.error?.message, 'Migrate recover can only be run when postcopy is paused.');
  const replaced = engine.onChannelReplaced('main', feeder.nowNs);
  assert.equal(replaced.accepted, false);
  assert.deepEqual(markNames(replaced.effects), ['channel-replaced-refused']);
  const idle = makeEngine(twoBlocks()).engine;
  const pause = idle.migratePause(0);
  assert.equal(pause.error?.message, 'migrate-pause is currently only supported during postcopy-active state');
  assert.equal(idle.status, 'none');

  const paused = engine.migratePause(feeder.nowNs);
  assert.equal(paused.error, null);
  assert.equal(engine.status, 'postcopy-paused');
  assert.equal(engine.lastError?.code, MIG_ERR_DEST_CHANNEL);
  assert.ok(paused.effects.some((e) => e.kind === 'mark' && e.name === 'postcopy-paused' && e.detail === 'Detected IO failure for postcopy. Migration paused.'));
  assert.equal(engine.migratePause(feeder.nowNs).error?.message, 'migrate-pause is currently only supported during postcopy-active state');
  assert.equal(engine.onChannelReplaced('main', feeder.nowNs).accepted, false);
  assert.equal(engine.migrateRecover(feeder.nowNs).error, null);
  assert.equal(engine.migrateRecover(feeder.nowNs).error?.message, 'Migrate recovery is triggered already');
});

test('recovery: faults wait while paused; RECV_BITMAP is answered per block; RESUME → RESUME_ACK and the waited-for pages are requested again', () => {
  const { engine, feeder, ram, blocks } = running();
  // vCPU 0 faults before the cut: its request is lost with the connection.
  assert.equal(feeder.fault(0, 3).present, false);
  feeder.push(encodeToBytes((e) => e.sectionPart(RAM_SECTION_ID)).subarray(0, 3)); // a partial record
  const closed = feeder.close();
  assert.deepEqual(statusMoves(closed), ['postcopy-active→postcopy-paused']);
  // While paused: more faults wait, nothing is requested; bytes of the dead connection are dropped.
  const f1 = feeder.fault(1, 16 + 6);
  const f2 = feeder.fault(2, 3);
  assert.equal(f1.present || f2.present, false);
  assert.deepEqual(returnPathMessages([...f1.effects, ...f2.effects]), []);
  assert.deepEqual(markNames(feeder.push(ramPart([[blocks[0], 6]]))), ['bytes-after-end']);

  assert.equal(engine.migrateRecover(feeder.nowNs).error, null);
  const replaced = engine.onChannelReplaced('main', feeder.nowNs);
  assert.equal(replaced.accepted, true);
  assert.deepEqual(statusMoves(replaced.effects), ['postcopy-paused→postcopy-recover']);

  const answers = returnPathMessages(feeder.push(new Uint8Array([...recvBitmapCmd('a'), ...recvBitmapCmd('b')])));
  assert.deepEqual(answers.map((m) => m.kind), ['recv-bitmap', 'recv-bitmap']);
  const [a, b] = answers;
  assert.ok(a.kind === 'recv-bitmap' && b.kind === 'recv-bitmap');
  const aBits = bitmapFromRecvBitmap(a.bitmap, 16);
  const bBits = bitmapFromRecvBitmap(b.bitmap, 8);
  for (let p = 0; p < 16; p++) assert.equal(aBits.test(p), ram.received.isReceived(p), `a+${p}`);
  for (let p = 0; p < 8; p++) assert.equal(bBits.test(p), ram.received.isReceived(16 + p), `b+${p}`);
  assert.deepEqual([0, 1, 5].map((p) => aBits.test(p)), [true, true, true]);
  assert.equal(bBits.test(1), true);
  assert.equal(engine.status, 'postcopy-recover');

  const resumed = feeder.push(resumeCmd());
  assert.deepEqual(statusMoves(resumed), ['postcopy-recover→postcopy-active']);
  assert.deepEqual(returnPathMessages(resumed), [
    { kind: 'resume-ack', value: 1 },
    { kind: 'req-pages-id', startBytes: 3 * PAGE, lengthBytes: PAGE, blockName: 'a' },
    { kind: 'req-pages-id', startBytes: 6 * PAGE, lengthBytes: PAGE, blockName: 'b' },
  ]);
  // The pages arrive on the recovery connection and wake their vCPUs; the stream completes.
  const served = feeder.push(ramPart([[blocks[0], 3], [blocks[1], 6]]));
  assert.deepEqual(effectsOf(served, 'page-ready').map((e) => e.pageIndex), [3, 16 + 6]);
  assert.deepEqual(engine.stats().outstandingFaults, []);
  feeder.push(postcopyTail());
  assert.equal(engine.status, 'completed');
  assert.equal(engine.recoveries, 1);
  assert.equal(engine.stats().placedTwiceAttempts, 0);
});

test('recovery: the recovery connection failing before POSTCOPY_RESUME pauses again; RESUME outside recovery is only marked', () => {
  const { engine, feeder } = running();
  const illegal = feeder.push(resumeCmd());
  assert.deepEqual(markNames(illegal), ['illegal-resume']);
  assert.equal(engine.status, 'postcopy-active');
  feeder.close();
  engine.migrateRecover(feeder.nowNs);
  engine.onChannelReplaced('main', feeder.nowNs);
  feeder.push(recvBitmapCmd('a'));
  const again = feeder.close();
  assert.deepEqual(statusMoves(again), ['postcopy-recover→postcopy-paused']);
  assert.equal(engine.lastError?.message, 'stream ended before EOF (at byte 7)');
  // A new pause needs a new migrate-recover; an unknown block in RECV_BITMAP pauses as well.
  assert.equal(engine.onChannelReplaced('main', feeder.nowNs).accepted, false);
  assert.equal(engine.migrateRecover(feeder.nowNs).error, null);
  assert.equal(engine.onChannelReplaced('main', feeder.nowNs).accepted, true);
  feeder.push(recvBitmapCmd('rom'));
  assert.equal(engine.status, 'postcopy-paused');
  assert.equal(engine.lastError?.message, "loadvm_handle_recv_bitmap: block 'rom' not found");
  assert.equal(engine.recoveries, 2);
});
