// Cancel and channel errors (facts §4.7): the source guest runs again when the engine had
// stopped it (`run-guest`), the status moves only along legal transitions (status.ts checker),
// CLEANUP runs, and a postcopy channel error pauses instead of failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStatusSequence } from '../status.ts';
import type { StepResult } from '../engine-types.ts';
import { caps, Destination, drive, effectsOf, engineFor, Guest, marks, MS, PAGE, statusMoves } from './source-harness.test-util.ts';

/** The status sequence of a run, from the status effects: none, then every `to`. */
function sequence(results: readonly StepResult[]): string[] {
  return ['none', ...statusMoves(results).map((m) => m.split('>')[1])];
}

function guestOf(pages = 256): Guest {
  const guest = new Guest('bytes', pages);
  for (let p = 0; p < pages; p++) guest.write(p, p);
  return guest;
}

test('cancel while active: cancelling → cancelled, CLEANUP, no run-guest (the guest never stopped)', () => {
  const guest = guestOf();
  const { engine, hooks } = engineFor(guest);
  const results = [engine.start(0), engine.pump(MS, 10 * PAGE), engine.cancel(2 * MS)];
  assert.equal(engine.status, 'cancelled');
  assert.deepEqual(sequence(results), ['none', 'setup', 'active', 'cancelling', 'cancelled']);
  assert.ok(checkStatusSequence(sequence(results), 'source', { allowRepeats: false }).ok);
  assert.equal(effectsOf(results, 'run-guest').length, 0);
  assert.equal(hooks.notifications.at(-1), 'cleanup');
  assert.deepEqual(engine.readiness(3 * MS), { kind: 'idle' });
  assert.equal(engine.pump(3 * MS, 1 << 20).effects.length, 0);
  assert.deepEqual(engine.queryMigrate(3 * MS), { status: 'cancelled' });
});

test('cancel after EOF went out (waiting for SHUT) leaves the guest stopped: the destination may run it', () => {
  const guest = guestOf();
  const { engine } = engineFor(guest, { capabilities: caps('return-path') });
  const dest = new Destination(guest);
  const results: StepResult[] = [engine.start(0)];
  dest.take(results[0]);
  results.push(...drive(engine, dest, 0, { shut: false }).results);
  assert.equal(engine.phase, 'awaiting-shut');
  results.push(engine.cancel(10 ** 9));
  assert.equal(engine.status, 'cancelled');
  assert.equal(effectsOf(results, 'stop-guest').length, 1);
  assert.equal(effectsOf(results, 'run-guest').length, 0);
  assert.deepEqual(marks([results.at(-1)!]), ['guest-kept-stopped']);
  assert.ok(checkStatusSequence(sequence(results), 'source', { allowRepeats: false }).ok);
});

test('cancel between the stop and the completion runs the guest again', () => {
  const guest = new Guest('bytes', 16);
  const { engine } = engineFor(guest);
  const results = [engine.start(0), engine.pump(MS, 1 << 20), engine.pump(2 * MS, 1 << 20)];
  assert.equal(engine.phase, 'stopping');
  results.push(engine.cancel(3 * MS));
  const kinds = results.at(-1)!.effects.map((e) => e.kind);
  assert.deepEqual(kinds, ['status', 'run-guest', 'status']);
  assert.equal(engine.status, 'cancelled');
});

test('a channel error in precopy fails the migration; the source guest keeps running', () => {
  const guest = guestOf();
  const { engine, hooks } = engineFor(guest);
  const results = [engine.start(0), engine.pump(MS, 10 * PAGE), engine.channelError(2 * MS, 'Unable to write to socket: Broken pipe')];
  assert.equal(engine.status, 'failed');
  assert.equal(engine.error?.code, 'MIG_ERR_CHANNEL');
  assert.deepEqual(engine.queryMigrate(2 * MS), { status: 'failed', 'error-desc': 'Unable to write to socket: Broken pipe' });
  assert.equal(effectsOf(results, 'run-guest').length, 0);
  assert.equal(hooks.notifications.at(-1), 'cleanup');
  assert.ok(checkStatusSequence(sequence(results), 'source', { allowRepeats: false }).ok);
});

test('a channel error after EOF went out fails and leaves the guest stopped (no split brain)', () => {
  const guest = guestOf();
  const { engine } = engineFor(guest, { capabilities: caps('return-path') });
  const dest = new Destination(guest);
  const results: StepResult[] = [engine.start(0)];
  dest.take(results[0]);
  results.push(...drive(engine, dest, 0, { shut: false }).results);
  results.push(engine.channelError(10 ** 9));
  assert.equal(engine.status, 'failed');
  const last = results.at(-1)!.effects.map((e) => e.kind);
  assert.deepEqual(last, ['status', 'mark']);
  assert.deepEqual(marks([results.at(-1)!]), ['guest-kept-stopped']);
  assert.ok(checkStatusSequence(sequence(results), 'source', { allowRepeats: false }).ok);
});

test('a channel error in postcopy pauses: postcopy-paused, the guest stays stopped; cancel then ends it', () => {
  const guest = guestOf(1024);
  const { engine } = engineFor(guest, { capabilities: caps('postcopy-ram') });
  const results: StepResult[] = [engine.start(0), engine.pump(MS, 10 * PAGE)];
  engine.startPostcopy(2 * MS);
  results.push(engine.pump(3 * MS, 1 << 20), engine.pump(4 * MS, 1 << 20), engine.pump(5 * MS, 10 * PAGE));
  assert.equal(engine.phase, 'postcopy');
  results.push(engine.channelError(6 * MS));
  assert.equal(engine.status, 'postcopy-paused');
  assert.equal(effectsOf(results, 'run-guest').length, 0);
  assert.deepEqual(engine.readiness(7 * MS), { kind: 'idle' });
  assert.equal(engine.pump(7 * MS, 1 << 20).effects.length, 0);
  assert.equal(engine.queryMigrate(7 * MS).status, 'postcopy-paused');
  // A second error while paused changes nothing.
  assert.deepEqual(marks([engine.channelError(8 * MS)]), ['channel-error-ignored']);
  const cancel = engine.cancel(9 * MS);
  results.push(cancel);
  assert.equal(engine.status, 'cancelled');
  // The destination may run the guest: the source does not restart it (split brain).
  assert.deepEqual(marks([cancel]), ['guest-kept-stopped']);
  assert.equal(effectsOf(results, 'run-guest').length, 0);
  assert.deepEqual(sequence(results), ['none', 'setup', 'active', 'postcopy-active', 'postcopy-paused', 'cancelling', 'cancelled']);
  assert.ok(checkStatusSequence(sequence(results), 'source', { allowRepeats: false }).ok);
});

test('capabilities the engine does not implement are refused at construction', () => {
  const guest = new Guest('bytes', 16);
  assert.throws(() => engineFor(guest, { capabilities: caps('multifd') }), /does not implement capability multifd/);
  assert.throws(() => engineFor(guest, { capabilities: caps('xbzrle', 'compress') }), /xbzrle, compress/);
});

test('start twice is a typed state error; time may not go back', () => {
  const guest = new Guest('bytes', 16);
  const { engine } = engineFor(guest);
  engine.start(10);
  assert.throws(() => engine.start(11), (e: unknown) => (e as { code?: string }).code === 'MIG_ERR_SOURCE_STATE');
  assert.throws(() => engine.pump(5, 100), /goes back/);
});
