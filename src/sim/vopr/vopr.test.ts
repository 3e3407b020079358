// The VOPR (src/sim/vopr): 10,000 seeds of faults (cuts, stalls, bandwidth collapses, crashes,
// QMP misuse) with a safety then a liveness phase, DESIGN §4's checkers after each; a seed
// reproduces with the same trace hash; and a deliberately injected bug (the destination loses
// one page write) is caught by some seed, which reproduces byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addToSummary, emptySummary, formatFailure, runVoprSeed } from './vopr.ts';
import { drawPlan } from './vopr-faults.ts';

/** Seeds of the CI run (about 30 s on a laptop core; see docs/reliability.md). */
const CI_SEEDS = 10_000;

test(`vopr: ${CI_SEEDS} seeds, no violation, every outcome expected`, () => {
  const summary = emptySummary();
  const failures: string[] = [];
  for (let seed = 1; seed <= CI_SEEDS; seed++) {
    const r = runVoprSeed(seed);
    addToSummary(summary, r);
    if (!r.ok && failures.length < 3) failures.push(formatFailure(r).join('\n'));
  }
  assert.deepEqual(summary.failed, [], failures.join('\n\n'));
  // The sweep exercised what it is for: retries after precopy failures, postcopy recoveries,
  // crashes that lose the guest (expected outcomes, counted), and most runs completing.
  assert.ok(summary.attemptsRetried > 1000, `${summary.attemptsRetried} retries`);
  assert.ok(summary.recoveries > 200, `${summary.recoveries} recoveries`);
  assert.ok((summary.outcomes['guest-lost'] ?? 0) > 100, JSON.stringify(summary.outcomes));
  assert.ok((summary.outcomes.completed ?? 0) > CI_SEEDS * 0.85, JSON.stringify(summary.outcomes));
  // The split-brain rule ran: failures after EOF kept the source guest stopped, the operator ran cont.
  assert.ok(summary.operatorConts > 100, `${summary.operatorConts} operator conts`);
});

test('vopr: a seed reproduces byte for byte (same plan, same trace hash, same lines)', () => {
  for (const seed of [3, 99, 1425, 2838]) {
    const a = runVoprSeed(seed, { keepLines: true });
    const b = runVoprSeed(seed, { keepLines: true });
    assert.deepEqual(drawPlan(seed), a.plan);
    assert.equal(a.traceHash, b.traceHash, `seed ${seed}`);
    assert.deepEqual(a.lines, b.lines, `seed ${seed}`);
    assert.notEqual(a.traceHash, runVoprSeed(seed + 1).traceHash);
  }
});

test('vopr: a destination that loses one page write is caught, and the failing seed reproduces', () => {
  let caught = -1;
  for (let seed = 1; seed <= 200 && caught < 0; seed++) {
    const r = runVoprSeed(seed, { dropPageOnDestination: true });
    if (!r.ok) caught = seed;
  }
  assert.ok(caught > 0, 'no seed caught the lost page');
  const first = runVoprSeed(caught, { dropPageOnDestination: true });
  const again = runVoprSeed(caught, { dropPageOnDestination: true });
  assert.equal(first.traceHash, again.traceHash);
  const broken = first.verdicts.filter((v) => !v.ok).map((v) => v.name);
  assert.ok(broken.includes('memory-equality') || broken.includes('incrementer-oracle'), broken.join(', '));
  const report = formatFailure(first).join('\n');
  assert.match(report, new RegExp(`seed ${caught} FAILED \\(trace ${first.traceHash}\\)`));
  assert.ok(runVoprSeed(caught).ok, 'the same seed passes without the bug');
});
