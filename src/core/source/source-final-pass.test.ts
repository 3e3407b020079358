// Option completionSpansPumps: the precopy completion's last pass spread over budgeted pumps
// (phase final-pass). Oracles: the main stream's bytes equal those of a one-pump completion of
// the same guest, the destination's RAM equals the source's (sha256), each final-pass pump stays
// within its budget plus one record, and failures in the middle give the guest back.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import type { StepResult } from '../engine-types.ts';
import { Destination, digestStore, drive, effectsOf, engineFor, Guest, MS, PAGE, statusMoves } from './source-harness.test-util.ts';

const PAGES = 8192;
const BUDGET_BYTES = 1 << 20;
/** A PAGE|CONTINUE record: the record word and the page. */
const RECORD_BYTES = 8 + PAGE;

/** A 32 MiB guest: every fourth page zero, the others a pattern. */
function patternGuest(): Guest {
  const guest = new Guest('bytes', PAGES);
  for (let p = 0; p < PAGES; p++) if (p % 4 !== 0) guest.write(p, p);
  return guest;
}

/** The main stream's bytes, in order, from a list of step results. */
function mainStream(results: readonly StepResult[]): Buffer {
  const parts = results.flatMap((r) => r.effects.flatMap((e) => (e.kind === 'send' && e.channel === 'main' ? [e.data] : [])));
  return Buffer.concat(parts);
}

function mainBytes(result: StepResult): number {
  return mainStream([result]).length;
}

/** One migration of a fresh pattern guest; every step result, and the digests of both sides. */
function migrate(completionSpansPumps: boolean): { results: StepResult[]; sourceDigest: string; destDigest: string; finalPassPumps: number[] } {
  const guest = patternGuest();
  const { engine } = engineFor(guest, { completionSpansPumps, awaitWritten: true });
  const dest = new Destination(guest);
  const started = engine.start(0);
  dest.take(started);
  const phases: string[] = [];
  const { results } = drive(engine, dest, 0, { budgetBytes: BUDGET_BYTES, beforePump: () => phases.push(engine.phase) });
  assert.equal(engine.phase, 'awaiting-written');
  // The pumps that ran in the final-pass phase (the pump after stop-guest opens it).
  const finalPassPumps = phases.flatMap((phase, i) => (phase === 'final-pass' ? [i] : []));
  return {
    results: [started, ...results],
    sourceDigest: digestStore(guest.store, createHash('sha256')),
    destDigest: digestStore(dest.store, createHash('sha256')),
    finalPassPumps,
  };
}

test('completionSpansPumps: the same stream bytes as a one-pump completion, RAM equal at the destination', () => {
  const spread = migrate(true);
  const whole = migrate(false);
  assert.equal(spread.destDigest, spread.sourceDigest);
  assert.ok(mainStream(spread.results).equals(mainStream(whole.results)), 'the two streams differ');
  assert.deepEqual(whole.finalPassPumps, []);
  // The completion left several MiB dirty at the stop, so the last pass took several pumps.
  assert.ok(spread.finalPassPumps.length >= 2, `final pass in ${spread.finalPassPumps.length} pump(s)`);
  assert.equal(effectsOf(spread.results, 'stop-guest').length, 1);
  assert.deepEqual(statusMoves(spread.results), ['none>setup', 'setup>active']);
});

test('completionSpansPumps: every pump of the last pass stays within its budget plus one record', () => {
  const { results, finalPassPumps } = migrate(true);
  // results[0] is start; pump i is results[i + 1]. The stop pump's successor opens END and syncs.
  const opening = finalPassPumps[0] - 1;
  for (const i of [opening, ...finalPassPumps.slice(0, -1)]) {
    const bytes = mainBytes(results[i + 1]);
    assert.ok(bytes <= BUDGET_BYTES + RECORD_BYTES + 64, `pump ${i}: ${bytes} bytes for a budget of ${BUDGET_BYTES}`);
    assert.ok(bytes >= BUDGET_BYTES - RECORD_BYTES, `pump ${i}: only ${bytes} bytes while pages were left`);
  }
});

test('completionSpansPumps: a channel error in the last pass fails the migration and runs the guest again', () => {
  const guest = patternGuest();
  const { engine } = engineFor(guest, { completionSpansPumps: true });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  let now = 0;
  for (let i = 0; i < 1000 && engine.phase !== 'final-pass'; i++) dest.take(engine.pump((now += 10 * MS), BUDGET_BYTES));
  assert.equal(engine.phase, 'final-pass');
  // Ticks in the last pass close no bandwidth window (QEMU's counters stand still there).
  const mbpsBefore = engine.queryMigrate(now).ram?.mbps;
  engine.tick(now + 500 * MS);
  assert.equal(engine.queryMigrate(now + 500 * MS).ram?.mbps, mbpsBefore);
  const r = engine.channelError(now + 501 * MS, 'broken pipe');
  assert.deepEqual(statusMoves([r]), ['active>failed']);
  assert.equal(effectsOf([r], 'run-guest').length, 1);
  assert.equal(engine.queryMigrate(now + 501 * MS)['error-desc'], 'broken pipe');
});
