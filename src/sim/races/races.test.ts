// The race explorer in `npm test`: 1,000 seeded worlds per free-page-hint × postcopy policy
// (race-world.ts), all seven checkers on each, split over two worker threads
// (scripts/race-worker.mjs) so it takes about half a minute on two cores. `track` must hold
// every invariant on every seed; `legacy` must show the two bugs of the 2021 thread and
// nothing else; `ignore-after-switch` the same (hints taken before the switch still stall).
// `npm run soak:races -- --seeds N` runs more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { HINT_RECOVERY } from '../checkers/hint-recovery.ts';
import { STALL_BOUND } from '../checkers/stall-bound.ts';
import { mergeTallies, sweepRaces, type PolicyTally, type RaceTally, type SweepOptions } from './race-sweep.ts';
import { raceTableText } from './race-report.ts';
import { raceDocument, raceKnobs, raceScenario } from './race-world.ts';

const SEEDS = 1000;
const WORKERS = 2;
const WORKER = new URL('../../../scripts/race-worker.mjs', import.meta.url);

function sweepInWorker(options: SweepOptions): Promise<RaceTally> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: options });
    worker.once('message', (tally: RaceTally) => resolve(tally));
    worker.once('error', reject);
  });
}

async function sweep(firstSeed: number, seedCount: number): Promise<RaceTally> {
  const parts: Promise<RaceTally>[] = [];
  for (let j = 0; j < WORKERS; j++) {
    const from = Math.floor((seedCount * j) / WORKERS);
    const to = Math.floor((seedCount * (j + 1)) / WORKERS);
    parts.push(sweepInWorker({ firstSeed: firstSeed + from, seedCount: to - from }));
  }
  return mergeTallies(await Promise.all(parts));
}

function policy(tally: RaceTally, name: keyof RaceTally['policies']): PolicyTally {
  const t = tally.policies[name];
  assert.ok(t !== undefined, `no tally for ${name}`);
  assert.equal(t.runs, SEEDS, `${name}: runs`);
  assert.equal(t.unexpectedEnd, 0, `${name}: runs that ended unexpectedly, seeds ${t.examples['unexpected-end']}`);
  return t;
}

test(`race explorer: ${SEEDS} seeds per policy; track holds every invariant, legacy breaks exactly hint-recovery and stall-bound`, async (t) => {
  const tally = await sweep(1, SEEDS);
  for (const line of raceTableText(tally).trimEnd().split('\n')) t.diagnostic(line);

  const refuse = policy(tally, 'refuse');
  assert.equal(refuse.refused, SEEDS);
  assert.deepEqual(refuse.violations, {});

  const overrule = policy(tally, 'overrule');
  assert.equal(overrule.hinted, 0, 'overrule: no hinting while postcopy-ram is on');
  assert.deepEqual(overrule.violations, {});
  assert.ok(overrule.switched > SEEDS / 4, `overrule switched ${overrule.switched} times`);

  const track = policy(tally, 'track');
  assert.deepEqual(track.violations, {}, `track: seeds ${JSON.stringify(track.examples)}`);
  assert.ok(track.switched > SEEDS / 10 && track.hinted > SEEDS / 4, 'track is exercised with hints and postcopy');
  assert.ok(track.faultedOnHinted > 10, `track: ${track.faultedOnHinted} runs faulted on hinted pages (each answered with ZERO)`);
  assert.ok(track.hintsAfterSwitch > 0, 'some seeds hint in the window between postcopy-active and vm_stop');

  for (const name of ['legacy', 'ignore-after-switch'] as const) {
    const t2 = policy(tally, name);
    assert.deepEqual(Object.keys(t2.violations).sort(), [HINT_RECOVERY, STALL_BOUND], `${name}: ${JSON.stringify(t2.violations)}`);
    // A switch after hints keeps hinted memory (no DONE); a stall needs a touched hinted page.
    assert.ok(t2.violations[HINT_RECOVERY] > SEEDS / 10 && t2.violations[HINT_RECOVERY] <= t2.switched, `${name}: hint-recovery in ${t2.violations[HINT_RECOVERY]} runs`);
    assert.ok(t2.violations[STALL_BOUND] > 10, `${name}: stall-bound in ${t2.violations[STALL_BOUND]} runs`);
    assert.ok(t2.longestStallNs > 50_000_000, `${name}: longest stall ${t2.longestStallNs} ns`);
  }
  // A run without a hint after the switch is the same run under both policies; only those with
  // one (the window between postcopy-active and vm_stop) may differ.
  const legacy = tally.policies.legacy!;
  const ignore = tally.policies['ignore-after-switch']!;
  assert.equal(ignore.hintsAfterSwitch, legacy.hintsAfterSwitch);
  assert.equal(ignore.violations[HINT_RECOVERY], legacy.violations[HINT_RECOVERY], 'no DONE either way');
  assert.ok(Math.abs(ignore.violations[STALL_BOUND] - legacy.violations[STALL_BOUND]) <= legacy.hintsAfterSwitch);
});

test('race worlds: the same world for every policy, reproducible, and tallies merge', () => {
  assert.deepEqual(raceKnobs(42), raceKnobs(42));
  assert.notDeepEqual(raceKnobs(42), raceKnobs(43));
  const legacy = raceDocument(raceKnobs(7), 'legacy', 7);
  const track = raceDocument(raceKnobs(7), 'track', 7);
  assert.deepEqual({ ...legacy, devices: null }, { ...track, devices: null });
  assert.equal(raceScenario(7, 'track').balloon?.postcopyPolicy, 'track');
  const whole = sweepRaces({ firstSeed: 1, seedCount: 4, policies: ['legacy', 'track'] });
  const parts = mergeTallies([
    sweepRaces({ firstSeed: 1, seedCount: 2, policies: ['legacy', 'track'] }),
    sweepRaces({ firstSeed: 3, seedCount: 2, policies: ['legacy', 'track'] }),
  ]);
  assert.deepEqual(parts, whole);
});
