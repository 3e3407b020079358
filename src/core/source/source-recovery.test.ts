// Postcopy pause and recovery on the source (facts §3.11): QEMU's refusals, the handshake on
// the new connection (RECV_BITMAP per block, no header; the bitmap becomes the complement of
// the received pages minus skipped ones; POSTCOPY_RESUME; RESUME_ACK → postcopy-active), a
// failed handshake pausing again, and a pause during the END section that completes anew.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RangeTable } from '../../lib/range-table.ts';
import { Bitmap } from '../../lib/bitmap.ts';
import { recvBitmapFromBitmap } from '../../format/return-path.ts';
import { StreamDecoder } from '../../format/stream-decoder.ts';
import { Fx, RecordingSink } from '../../format/stream-fixtures.test-util.ts';
import type { StepResult } from '../engine-types.ts';
import { caps, Destination, effectsOf, engineFor, Guest, marks, MS, PAGE, rp, statusMoves } from './source-harness.test-util.ts';
import type { SourceEngine } from './source-engine.ts';

const SPECS = [
  { name: 'pc.ram', offsetBytes: 0, sizeBytes: 40 * PAGE },
  { name: 'ram1', offsetBytes: 40 * PAGE, sizeBytes: 24 * PAGE },
];

/** A source in postcopy-active after the switch and a few chunks; `cut` of them not delivered. */
function postcopySource(extra: Parameters<typeof engineFor>[1] = {}) {
  const guest = new Guest('bytes', 64, SPECS);
  for (let p = 0; p < 64; p++) guest.write(p, p);
  const { engine, hooks } = engineFor(guest, { capabilities: caps('events', 'postcopy-ram'), debugChecks: true, ...extra });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  assert.equal(engine.startPostcopy(0).error, null);
  let now = 0;
  while (engine.phase !== 'postcopy') dest.take(engine.pump((now += MS), 4 * PAGE));
  dest.take(engine.pump((now += MS), 4 * PAGE));
  return { guest, engine, hooks, dest, now };
}

/** The commands of a recovery connection's bytes (decoded from the top level, no header). */
function recoveryCommands(results: readonly StepResult[]): string[] {
  const sink = new RecordingSink();
  const decoder = new StreamDecoder(sink);
  decoder.resumeOnNewChannel();
  for (const e of effectsOf(results, 'send')) if (e.kind === 'send') decoder.push(e.data);
  return sink.records.map((r) => (r.kind === 'command' ? `${r.command.kind}${r.command.kind === 'recv-bitmap' ? `:${r.command.blockName}` : ''}` : r.kind));
}

function bitmapOf(pageCount: number, received: (page: number) => boolean): Uint8Array {
  const bits = new Bitmap(pageCount);
  for (let p = 0; p < pageCount; p++) if (received(p)) bits.set(p);
  return recvBitmapFromBitmap(bits);
}

function pause(engine: SourceEngine, now: number): StepResult {
  const r = engine.channelError(now, 'connection reset');
  assert.equal(engine.status, 'postcopy-paused');
  return r;
}

test('migrate-pause and resume are refused with QEMU\'s texts outside their states', () => {
  const guest = new Guest('bytes', 16);
  const { engine } = engineFor(guest, { capabilities: caps('postcopy-ram') });
  engine.start(0);
  const pauseInPrecopy = engine.migratePause(1);
  assert.equal(pauseInPrecopy.error?.code, 'MIG_ERR_PAUSE_NOT_POSTCOPY');
  assert.equal(pauseInPrecopy.error?.message, 'migrate-pause is currently only supported during postcopy-active state');
  const resumeActive = engine.resume(2);
  assert.equal(resumeActive.error?.code, 'MIG_ERR_RESUME_NOT_PAUSED');
  assert.equal(resumeActive.error?.message, 'Cannot resume if there is no paused migration');
  assert.equal(engine.status, 'active');

  const released = postcopySource({ capabilities: caps('postcopy-ram', 'release-ram') });
  pause(released.engine, released.now);
  const refused = released.engine.resume(released.now);
  assert.equal(refused.error?.message, 'Postcopy recovery cannot work when release-ram capability is set');
  assert.equal(released.engine.status, 'postcopy-paused');
  assert.deepEqual(refused.effects, []);
});

test('resume: RECV_BITMAP per block on the new connection; the bitmap becomes NOT received minus skipped pages; RESUME_ACK continues', () => {
  const { engine, hooks, now } = postcopySource();
  const paused = engine.migratePause(now);
  assert.equal(paused.error, null);
  assert.deepEqual(statusMoves([paused]), ['postcopy-active>postcopy-paused']);
  assert.ok(paused.effects.some((e) => e.kind === 'mark' && e.name === 'postcopy-paused' && e.detail === 'Detected IO failure for postcopy. Migration paused.'));
  assert.deepEqual(engine.readiness(now), { kind: 'idle' });
  // Return-path bytes of the dead connection are ignored.
  assert.deepEqual(marks([engine.onReturnPath(now, rp({ kind: 'pong', value: 9 }))]), ['rp-ignored']);

  const resumed = engine.resume(now + MS);
  assert.equal(resumed.error, null);
  assert.deepEqual(statusMoves([resumed]), ['postcopy-paused>postcopy-recover']);
  assert.deepEqual(recoveryCommands([resumed]), ['recv-bitmap:pc.ram', 'recv-bitmap:ram1']);
  assert.deepEqual(engine.readiness(now + MS), { kind: 'idle' });

  // pc.ram: pages 0..29 received except 7; ram1: 0..3 received; skip ram1's pages 10..13 (global 50..53).
  hooks.skip = RangeTable.of([{ start: 50, end: 54 }]);
  const first = engine.onReturnPath(now + 2 * MS, rp({ kind: 'recv-bitmap', blockName: 'pc.ram', bitmap: bitmapOf(40, (p) => p < 30 && p !== 7) }));
  assert.deepEqual(effectsOf([first], 'send'), []);
  const bitmap = engine.migrationBitmap;
  const dirtyIn = (from: number, to: number): number[] => {
    const out: number[] = [];
    for (let p = from; p < to; p++) if (bitmap.isDirty(p)) out.push(p);
    return out;
  };
  assert.deepEqual(dirtyIn(0, 40), [7, ...Array.from({ length: 10 }, (_, i) => 30 + i)]);
  const second = engine.onReturnPath(now + 3 * MS, rp({ kind: 'recv-bitmap', blockName: 'ram1', bitmap: bitmapOf(24, (p) => p < 4) }));
  assert.deepEqual(recoveryCommands([second]), ['postcopy-resume']);
  assert.deepEqual(dirtyIn(40, 64), [44, 45, 46, 47, 48, 49, 54, ...Array.from({ length: 9 }, (_, i) => 55 + i)]);
  assert.equal(bitmap.dirtyCount, 11 + 16);
  assert.equal(engine.status, 'postcopy-recover');

  const ack = engine.onReturnPath(now + 4 * MS, rp({ kind: 'resume-ack', value: 1 }));
  assert.deepEqual(statusMoves([ack]), ['postcopy-recover>postcopy-active']);
  assert.equal(engine.recoveries, 1);
  // The scan restarts at the first block, and the first record names its block.
  const pump = engine.pump(now + 5 * MS, 2 * PAGE);
  const data = effectsOf([pump], 'send')[0];
  assert.ok(data !== undefined && data.kind === 'send');
  assert.equal(new DataView(data.data.buffer, data.data.byteOffset).getUint32(5 + 4), (7 * PAGE) | 0x08);
});

test('a bad recovery handshake pauses again, and a new resume starts over', () => {
  const cases: Array<[string, (e: SourceEngine, now: number) => StepResult]> = [
    ['size', (e, now) => e.onReturnPath(now, rp({ kind: 'recv-bitmap', blockName: 'pc.ram', bitmap: new Uint8Array(16) }))],
    ['block', (e, now) => e.onReturnPath(now, rp({ kind: 'recv-bitmap', blockName: 'rom', bitmap: new Uint8Array(8) }))],
    ['early-ack', (e, now) => e.onReturnPath(now, rp({ kind: 'resume-ack', value: 1 }))],
    ['channel', (e, now) => e.channelError(now, 'again')],
  ];
  for (const [label, fail] of cases) {
    const { engine, now } = postcopySource();
    pause(engine, now);
    engine.resume(now);
    const r = fail(engine, now + MS);
    assert.equal(engine.status, 'postcopy-paused', label);
    assert.deepEqual(statusMoves([r]), ['postcopy-recover>postcopy-paused'], label);
    const again = engine.resume(now + 2 * MS);
    assert.equal(again.error, null, label);
    assert.deepEqual(recoveryCommands([again]), ['recv-bitmap:pc.ram', 'recv-bitmap:ram1'], label);
  }
  const { engine, now } = postcopySource();
  pause(engine, now);
  engine.resume(now);
  engine.onReturnPath(now, rp(
    { kind: 'recv-bitmap', blockName: 'pc.ram', bitmap: bitmapOf(40, () => true) },
    { kind: 'recv-bitmap', blockName: 'ram1', bitmap: bitmapOf(24, () => true) },
  ));
  const wrong = engine.onReturnPath(now, rp({ kind: 'resume-ack', value: 2 }));
  assert.ok(marks([wrong]).includes('recover-failed'));
  assert.equal(engine.status, 'postcopy-paused');
});

test('a pause during the END section: after recovery a new END section sends exactly the missing pages, then EOF', () => {
  const { engine, dest, now: start, guest } = postcopySource();
  let now = start;
  // Let the first bandwidth window close so that the completion begins with pages left.
  for (let i = 0; i < 200 && engine.phase === 'postcopy'; i++) dest.take(engine.pump((now += 10 * MS), PAGE));
  assert.equal(engine.phase, 'completing');
  dest.take(engine.pump((now += MS), 2 * PAGE));
  assert.ok(engine.migrationBitmap.dirtyCount > 0);
  // The last chunk is lost with the connection: the destination has what `dest` decoded before it.
  engine.pump((now += MS), 2 * PAGE);
  pause(engine, now);
  const have = new Set(dest.arrivals.filter((a) => a.postcopy).map((a) => a.page));
  const sent = engine.resume(now);
  assert.equal(sent.error, null);
  engine.onReturnPath(now, rp(
    { kind: 'recv-bitmap', blockName: 'pc.ram', bitmap: bitmapOf(40, (p) => have.has(p)) },
    { kind: 'recv-bitmap', blockName: 'ram1', bitmap: bitmapOf(24, (p) => have.has(40 + p)) },
    { kind: 'resume-ack', value: 1 },
  ));
  assert.equal(engine.status, 'postcopy-active');
  assert.equal(engine.migrationBitmap.dirtyCount, 64 - have.size);
  // The recovered stream continues at the top level, with the blocks the original setup named.
  const records = new RecordingSink();
  const decoder = new StreamDecoder(records);
  decoder.push(new Fx().header().config('none').start(2, 'ram', 0, 4).memSize([['pc.ram', 40 * PAGE], ['ram1', 24 * PAGE]]).eos().footer(2).build());
  decoder.resumeOnNewChannel();
  for (let i = 0; i < 1000 && engine.readiness(now).kind === 'pump'; i++) {
    for (const e of effectsOf([engine.pump((now += MS), 4 * PAGE)], 'send')) if (e.kind === 'send') decoder.push(e.data);
  }
  assert.equal(decoder.sawEof, true);
  assert.equal(engine.phase, 'awaiting-shut');
  const kinds = records.records.map((r) => (r.kind === 'section-begin' ? `begin:${r.header.type}` : r.kind));
  assert.deepEqual(kinds.filter((k) => k.startsWith('begin:')).slice(-1), ['begin:end']);
  assert.equal(kinds.filter((k) => k === 'begin:end').length, 1);
  const arrived = records.log
    .filter((e): e is { page?: string; zero?: string; offsetBytes: number } => typeof e === 'object' && e !== null && ('page' in e || 'zero' in e))
    .map((e) => (e.page ?? e.zero) === 'ram1' ? 40 + e.offsetBytes / PAGE : e.offsetBytes / PAGE)
    .sort((a, b) => a - b);
  const missing = Array.from({ length: 64 }, (_, p) => p).filter((p) => !have.has(p));
  assert.deepEqual(arrived, missing);
  assert.ok(guest.store.pageCount === 64);
});
