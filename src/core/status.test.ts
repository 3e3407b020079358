// Tests of the MigrationStatus tables: the enum is QEMU 7.2's, every legal move is accepted, a
// sample of illegal ones is refused with a typed error, and the sequence checker (the status
// invariant of DESIGN §4.6) accepts real sequences and pinpoints an illegal step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DESTINATION_TRANSITIONS,
  MIGRATION_STATUSES,
  SOURCE_TRANSITIONS,
  checkStatusSequence,
  isLegalTransition,
  isMigrationStatus,
  isPostcopyStatus,
  isRunningStatus,
  transition,
  transitionsOf,
  type MigrationSide,
  type MigrationStatus,
} from './status.ts';

test('the enum is QEMU 7.2 MigrationStatus in order', () => {
  assert.deepEqual(
    [...MIGRATION_STATUSES],
    ['none', 'setup', 'cancelling', 'cancelled', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover',
      'completed', 'failed', 'colo', 'pre-switchover', 'device', 'wait-unplug'],
  );
  assert.ok(isMigrationStatus('postcopy-recover'));
  assert.ok(!isMigrationStatus('postcopy-recover-setup'));
});

test('every legal transition of both tables is accepted', () => {
  for (const side of ['source', 'destination'] as const) {
    for (const t of transitionsOf(side)) {
      const result = transition(t.from, t.to, side);
      assert.ok(result.ok, `${side} ${t.from} -> ${t.to}`);
      assert.equal(result.ok && result.status, t.to);
    }
  }
});

test('the tables hold the facts rows and no duplicates', () => {
  const key = (t: { from: string; to: string }) => `${t.from}>${t.to}`;
  for (const table of [SOURCE_TRANSITIONS, DESTINATION_TRANSITIONS]) {
    assert.equal(new Set(table.map(key)).size, table.length);
  }
  const source = new Set(SOURCE_TRANSITIONS.map(key));
  for (const row of ['none>setup', 'completed>setup', 'failed>setup', 'cancelled>setup', 'setup>active', 'setup>wait-unplug',
    'wait-unplug>active', 'setup>failed', 'active>completed', 'active>pre-switchover', 'pre-switchover>device',
    'device>completed', 'active>postcopy-active', 'pre-switchover>postcopy-active', 'postcopy-active>completed',
    'postcopy-active>postcopy-paused', 'postcopy-paused>postcopy-recover', 'postcopy-recover>postcopy-active',
    'postcopy-recover>postcopy-paused', 'active>cancelling', 'postcopy-paused>cancelling', 'cancelling>cancelled',
    'active>failed', 'device>failed', 'active>colo']) {
    assert.ok(source.has(row), row);
  }
  const destination = new Set(DESTINATION_TRANSITIONS.map(key));
  for (const row of ['none>active', 'active>completed', 'active>postcopy-active', 'postcopy-active>completed', 'active>failed',
    'postcopy-active>postcopy-paused', 'postcopy-paused>postcopy-recover', 'postcopy-recover>postcopy-active',
    // QEMU's postcopy_pause_incoming pauses from postcopy-recover too (a failed recovery connection).
    'postcopy-recover>postcopy-paused']) {
    assert.ok(destination.has(row), row);
  }
});

test('a sample of illegal transitions is refused with a typed error', () => {
  const illegal: Array<[MigrationStatus, MigrationStatus, MigrationSide]> = [
    ['none', 'active', 'source'],
    ['active', 'setup', 'source'],
    ['completed', 'active', 'source'],
    ['setup', 'completed', 'source'],
    ['postcopy-active', 'active', 'source'],
    ['postcopy-paused', 'completed', 'source'],
    ['cancelled', 'cancelling', 'source'],
    ['cancelling', 'active', 'source'],
    ['active', 'active', 'source'],
    ['none', 'setup', 'destination'],
    ['active', 'cancelling', 'destination'],
    ['postcopy-paused', 'completed', 'destination'],
    ['completed', 'active', 'destination'],
  ];
  for (const [from, to, side] of illegal) {
    const result = transition(from, to, side);
    assert.ok(!result.ok, `${side} ${from} -> ${to} must be illegal`);
    if (!result.ok) {
      assert.equal(result.error.code, 'MIG_ERR_ILLEGAL_TRANSITION');
      assert.equal(result.error.from, from);
      assert.equal(result.error.to, to);
      assert.equal(result.error.side, side);
    }
  }
});

test('transition agrees with isLegalTransition on every pair', () => {
  for (const side of ['source', 'destination'] as const) {
    for (const from of MIGRATION_STATUSES) {
      for (const to of MIGRATION_STATUSES) assert.equal(transition(from, to, side).ok, isLegalTransition(from, to, side));
    }
  }
});

test('running and postcopy predicates follow QEMU', () => {
  assert.deepEqual(
    MIGRATION_STATUSES.filter(isRunningStatus),
    ['setup', 'cancelling', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'pre-switchover', 'device', 'wait-unplug'],
  );
  assert.deepEqual(MIGRATION_STATUSES.filter(isPostcopyStatus), ['postcopy-active', 'postcopy-paused', 'postcopy-recover']);
});

test('the sequence checker accepts real QEMU sequences', () => {
  const precopy = ['none', 'setup', 'active', 'completed'];
  const postcopyWithRecovery = ['none', 'setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover',
    'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed', 'setup', 'active', 'cancelling', 'cancelled'];
  assert.ok(checkStatusSequence(precopy, 'source').ok);
  assert.ok(checkStatusSequence(postcopyWithRecovery, 'source').ok);
  assert.ok(checkStatusSequence(['none', 'active', 'postcopy-active', 'completed'], 'destination').ok);
  assert.ok(checkStatusSequence([], 'source').ok);
  assert.match(checkStatusSequence(precopy, 'source').detail, /3 source transitions/);
});

test('the sequence checker catches an illegal step and says where', () => {
  const verdict = checkStatusSequence(['none', 'setup', 'active', 'setup', 'completed'], 'source');
  assert.equal(verdict.ok, false);
  assert.equal(verdict.index, 3);
  assert.equal(verdict.detail, 'step 3: active -> setup is not a legal source transition');
  const destination = checkStatusSequence(['none', 'setup', 'active'], 'destination');
  assert.equal(destination.ok, false);
  assert.equal(destination.index, 1);
  const unknown = checkStatusSequence(['none', 'setup', 'bogus'], 'source');
  assert.deepEqual([unknown.ok, unknown.index], [false, 2]);
});

test('repeats are skipped by default and reported on request', () => {
  const sampled = ['none', 'setup', 'active', 'active', 'completed'];
  assert.ok(checkStatusSequence(sampled, 'source').ok);
  const strict = checkStatusSequence(sampled, 'source', { allowRepeats: false });
  assert.deepEqual([strict.ok, strict.index], [false, 3]);
});

test('random walks along the table pass; one illegal step is caught at its index', () => {
  for (const side of ['source', 'destination'] as const) {
    const table = transitionsOf(side);
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 40 }), fc.nat(1000), (choices, bad) => {
        const walk: MigrationStatus[] = ['none'];
        for (const c of choices) {
          const options = table.filter((t) => t.from === walk[walk.length - 1]);
          if (options.length === 0) break;
          walk.push(options[c % options.length].to);
        }
        assert.ok(checkStatusSequence(walk, side).ok);
        const last = walk[walk.length - 1];
        const illegalTargets = MIGRATION_STATUSES.filter((s) => s !== last && !isLegalTransition(last, s, side));
        const target = illegalTargets[bad % illegalTargets.length];
        const verdict = checkStatusSequence([...walk, target], side);
        assert.equal(verdict.ok, false);
        assert.equal(verdict.index, walk.length);
      }),
      { numRuns: 200 },
    );
  }
});
