// The destination phase machine: every move it allows is a legal destination status
// transition, errors fail before RUN and pause after it, and impossible events assert.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../lib/assert.ts';
import { isLegalTransition } from '../status.ts';
import { DestError, MIG_ERR_DEST_STREAM } from './dest-errors.ts';
import { IDLE_PHASE, statusOfPhase, stepPhase, type DestPhase, type PhaseEvent } from './dest-phase.ts';

const error = new DestError(MIG_ERR_DEST_STREAM, 'boom');
const EVENTS: PhaseEvent[] = [
  { kind: 'stream-start' },
  { kind: 'advise' },
  { kind: 'listen' },
  { kind: 'run' },
  { kind: 'eof' },
  { kind: 'error', error },
  { kind: 'recover' },
  { kind: 'resume' },
];
const PHASES: DestPhase[] = [
  IDLE_PHASE,
  { kind: 'precopy', ramAdvised: false },
  { kind: 'precopy', ramAdvised: true },
  { kind: 'postcopy', running: false },
  { kind: 'postcopy', running: true },
  { kind: 'paused', error },
  { kind: 'recover' },
  { kind: 'completed' },
  { kind: 'failed', error },
];

test('dest phase: every allowed move is a legal destination status transition (or no status change)', () => {
  let allowed = 0;
  for (const phase of PHASES) {
    for (const event of EVENTS) {
      let next: DestPhase;
      try {
        next = stepPhase(phase, event);
      } catch (e) {
        assert.ok(e instanceof AssertionError, `${phase.kind} + ${event.kind}`);
        continue;
      }
      allowed++;
      const from = statusOfPhase(phase);
      const to = statusOfPhase(next);
      assert.ok(from === to || isLegalTransition(from, to, 'destination'), `${phase.kind} + ${event.kind}: ${from} -> ${to}`);
    }
  }
  assert.equal(allowed, 1 + 4 + 4 + 3 + 3 + 2 + 2 + 1 + 1);
});

test('dest phase: a precopy run, a postcopy run, and where errors lead', () => {
  const run = (events: PhaseEvent[]) => events.reduce<DestPhase>((p, e) => stepPhase(p, e), IDLE_PHASE);
  assert.deepEqual(run([{ kind: 'stream-start' }, { kind: 'eof' }]), { kind: 'completed' });
  assert.deepEqual(run([{ kind: 'stream-start' }, { kind: 'advise' }, { kind: 'listen' }, { kind: 'run' }, { kind: 'eof' }]), { kind: 'completed' });
  assert.equal(run([{ kind: 'stream-start' }, { kind: 'error', error }]).kind, 'failed');
  assert.equal(run([{ kind: 'stream-start' }, { kind: 'advise' }, { kind: 'listen' }, { kind: 'error', error }]).kind, 'failed');
  const paused = run([{ kind: 'stream-start' }, { kind: 'advise' }, { kind: 'listen' }, { kind: 'run' }, { kind: 'error', error }]);
  assert.deepEqual(paused, { kind: 'paused', error });
  assert.equal(statusOfPhase(paused), 'postcopy-paused');
  assert.equal(stepPhase({ kind: 'completed' }, { kind: 'error', error }).kind, 'completed');
  assert.throws(() => stepPhase(IDLE_PHASE, { kind: 'run' }), AssertionError);
  assert.throws(() => stepPhase({ kind: 'precopy', ramAdvised: false }, { kind: 'run' }), AssertionError);
});

test('dest phase: postcopy recovery goes paused → recover → postcopy (running), and an error in recover pauses again', () => {
  const paused: DestPhase = { kind: 'paused', error };
  const recover = stepPhase(paused, { kind: 'recover' });
  assert.deepEqual(recover, { kind: 'recover' });
  assert.equal(statusOfPhase(recover), 'postcopy-recover');
  assert.deepEqual(stepPhase(recover, { kind: 'resume' }), { kind: 'postcopy', running: true });
  const second = new DestError(MIG_ERR_DEST_STREAM, 'again');
  assert.deepEqual(stepPhase(recover, { kind: 'error', error: second }), { kind: 'paused', error: second });
  assert.ok(isLegalTransition('postcopy-recover', 'postcopy-paused', 'destination'));
  assert.throws(() => stepPhase({ kind: 'postcopy', running: true }, { kind: 'resume' }), AssertionError);
  assert.throws(() => stepPhase(recover, { kind: 'eof' }), AssertionError);
  assert.throws(() => stepPhase(paused, { kind: 'resume' }), AssertionError);
});
