// The simulator's convergence checks in QEMU's trace shape. Acceptance criteria: read from a
// lab scenario, every check's decision is decideIteration's for its pending bytes and threshold;
// the threshold stays 0 until the first 100 ms window closed; times only grow; the run completes
// at its last check, with the same pending bytes; a migration that never converges has no
// completion; each dirty sync is recorded once, as many as the run's dirty-sync-count, with QEMU's
// count (pages newly dirty this sync period, so cumulative within the first second), and the
// pages a sync adds are pending at the check after it; each iteration that ended on its time
// (QEMU's big wait) is recorded once, before the check it leads to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decideIteration } from '../../core/convergence.ts';
import { REAL_ENGINES } from '../engines.ts';
import { runScenario } from '../runner.ts';
import { loadScenario, parseOverride } from '../scenario/scenario.ts';
import { recordChecks, simulatedChecks } from './checks.ts';
import { withoutQemuIterations } from './lab-scenario.test-util.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const text = readFileSync(`${ROOT}scenarios/lab/warm-host/m2048-idle-1g-hint-off.yaml`, 'utf8');

test('a lab scenario\'s checks: decideIteration\'s decisions, threshold 0 before the first window, completion last', () => {
  const events = simulatedChecks(loadScenario(text)).filter((e) => e[1] !== 'sync');
  const pending = events.filter((e) => e[1] === 'pending');
  assert.ok(pending.length >= 3, `${pending.length} checks`);
  let last = -1;
  for (const e of pending) {
    const [t, , bytes, threshold] = e as [number, 'pending', number, number];
    assert.ok(t >= last, 'times only grow');
    last = t;
    if (t < 100) assert.equal(threshold, 0, `threshold ${threshold} at ${t} ms, before the first window closed`);
  }
  const completions = events.filter((e) => e[1] === 'low-pending');
  assert.equal(completions.length, 1);
  assert.equal(events.at(-1)![1], 'low-pending');
  const final = events.at(-2) as [number, 'pending', number, number];
  assert.equal(final[2], completions[0][2]);
  for (const e of pending.slice(0, -1)) {
    const [, , bytes, threshold] = e as [number, 'pending', number, number];
    assert.equal(decideIteration({ pendingPrecopyOnlyBytes: bytes, pendingPostcopiableBytes: 0, thresholdBytes: threshold, postcopyRequested: false, inPostcopy: false }), 'iterate');
  }
  assert.equal(decideIteration({ pendingPrecopyOnlyBytes: final[2], pendingPostcopiableBytes: 0, thresholdBytes: final[3], postcopyRequested: false, inPostcopy: false }), 'complete');
});

test('a migration that cannot converge in its time has checks and no completion', () => {
  // 1 MiB/s cannot move 2 GiB before the scenario's time limit.
  const events = simulatedChecks(loadScenario(text, [parseOverride('parameters.max-bandwidth=1M')!, parseOverride('time-limit=3s')!]));
  assert.ok(events.some((e) => e[1] === 'pending'));
  assert.equal(events.filter((e) => e[1] === 'low-pending').length, 0);
});

test('a lab scenario\'s syncs: one event each, QEMU\'s period count, and what a sync adds is pending at the next check', () => {
  const hintOn = readFileSync(`${ROOT}scenarios/lab/warm-host/m1024-idle-1g-hint-on.yaml`, 'utf8');
  const { engines, events } = recordChecks(REAL_ENGINES);
  const result = runScenario(loadScenario(hintOn), { engines });
  const syncs = events.filter((e) => e[1] === 'sync') as [number, 'sync', number][];
  assert.equal(syncs.length, result.source.ram?.['dirty-sync-count']);
  assert.deepEqual(syncs[0], [0, 'sync', 0], 'the setup sync finds nothing dirty');
  assert.ok(result.source['total-time']! < 1000, 'the whole run is one sync period');
  let added = 0;
  for (let i = 1; i < syncs.length; i++) {
    assert.ok(syncs[i][2] >= syncs[i - 1][2], `the count only grows within a period: ${syncs[i - 1][2]} then ${syncs[i][2]}`);
    if (syncs[i][2] > syncs[i - 1][2]) added++;
    const next = events.indexOf(syncs[i]) + 1;
    const check = events[next];
    if (check?.[1] !== 'pending') continue; // the completion's sync: no check follows
    assert.ok(check[2] >= (syncs[i][2] - syncs[i - 1][2]) * 4096, `${check[2]} B pending after a sync that added ${syncs[i][2] - syncs[i - 1][2]} pages`);
  }
  assert.ok(added >= 2, `the driver's zeroed pages come back at ${added} syncs`);
});

test('a lab scenario\'s big waits: an iteration that ends on its time is recorded once, 51 ms, right before the check that follows it', () => {
  const events = simulatedChecks(loadScenario(text));
  const waits = events.filter((e) => e[1] === 'big-wait') as [number, 'big-wait', number, number][];
  assert.ok(waits.length >= 2, `${waits.length} iterations ended on time`);
  for (const w of waits) {
    assert.ok(w[2] === 51 || w[2] === 52, `an iteration of ${w[2]} ms`);
    assert.ok(w[3] > 0, 'it saved pages');
    const next = events[events.indexOf(w) + 1];
    assert.ok(next !== undefined && (next[1] === 'pending' || next[1] === 'sync') && next[0] === w[0], `the check follows at ${w[0]} ms`);
  }
  // Without QEMU's iterations (one chunk each) nothing ends on time.
  assert.equal(simulatedChecks(loadScenario(withoutQemuIterations(text))).filter((e) => e[1] === 'big-wait').length, 0);
});
