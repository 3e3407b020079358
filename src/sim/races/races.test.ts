// The race explorer in `npm test`: 1,000 seeded worlds per free-page-hint × postcopy policy
// (race-world.ts), all seven checkers on each, split over two worker threads
// (scripts/race-worker.mjs) so it takes about half a minute on two cores. `track` must hold
// every invariant on every seed; `legacy` must show the two bugs of the 2021 thread and
// nothing else; `ignore-after-switch` the same (hints taken before the switch still stall).
// `npm run soak:races -- --seeds N` runs more.
// The stale-page races (issue [10], stale-races.ts): 10,000 seeds per race and mode; each race
// reproduces stale pages in qemu-7.2 mode, livemig mode has none (`npm run soak:races -- --stale`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { HINT_RECOVERY } from '../checkers/hint-recovery.ts';
import { STALL_BOUND } from '../checkers/stall-bound.ts';
import { mergeTallies, sweepRaces, type PolicyTally, type RaceTally, type SweepOptions } from './race-sweep.ts';
import { raceTableText } from './race-report.ts';
import { raceDocument, raceKnobs, raceScenario } from './race-world.ts';
import { STALE_RACE_NAMES, mergeStaleTallies, sweepStaleRaces, staleRaceTableText, type StaleRaceTally, type StaleSweepOptions } from './stale-races.ts';

const SEEDS = 1000;
const WORKERS = 2;
const WORKER = new URL('../../../scripts/race-worker.mjs', import.meta.url);

const STALE_SEEDS = 10_000;

function sweepInWorker(options: SweepOptions): Promise<RaceTally>;
function sweepInWorker(options: StaleSweepOptions & { stale: true }): Promise<StaleRaceTally>;
function sweepInWorker(options: SweepOptions | (StaleSweepOptions & { stale: true })): Promise<RaceTally | StaleRaceTally> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: options });
    worker.once('message', (tally: RaceTally | StaleRaceTally) => resolve(tally));
    worker.once('error', reject);
  });
}

/** Seed ranges of the workers. */
function split(firstSeed: number, seedCount: number): Array<{ firstSeed: number; seedCount: number }> {
  return Array.from({ length: WORKERS }, (_, j) => {
    const from = Math.floor((seedCount * j) / WORKERS);
    const to = Math.floor((seedCount * (j + 1)) / WORKERS);
    return { firstSeed: firstSeed + from, seedCount: to - from };
  });
}

async function sweep(firstSeed: number, seedCount: number): Promise<RaceTally> {
  return mergeTallies(await Promise.all(split(firstSeed, seedCount).map((r) => sweepInWorker(r))));
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
  const staleWhole = sweepStaleRaces({ firstSeed: 680, seedCount: 20, races: ['shrinker-reuse', 'tcg-dirty'] });
  const staleParts = mergeStaleTallies([
    sweepStaleRaces({ firstSeed: 680, seedCount: 12, races: ['shrinker-reuse', 'tcg-dirty'] }),
    sweepStaleRaces({ firstSeed: 692, seedCount: 8, races: ['shrinker-reuse', 'tcg-dirty'] }),
  ]);
  assert.deepEqual(staleParts, staleWhole);
  assert.deepEqual(staleWhole.cells['shrinker-reuse/qemu-7.2']?.examples, [691]);
});

test(`stale-page races: ${STALE_SEEDS} seeds per race; each reproduces stale pages as QEMU 7.2 behaves, livemig has none`, async (t) => {
  const tally = mergeStaleTallies(await Promise.all(split(1, STALE_SEEDS).map((r) => sweepInWorker({ ...r, stale: true }))));
  for (const line of staleRaceTableText(tally).trimEnd().split('\n')) t.diagnostic(line);
  for (const race of STALE_RACE_NAMES) {
    const qemu = tally.cells[`${race}/qemu-7.2`];
    const livemig = tally.cells[`${race}/livemig`];
    assert.ok(qemu !== undefined && livemig !== undefined, race);
    assert.equal(qemu.seeds, STALE_SEEDS);
    assert.equal(livemig.seeds, STALE_SEEDS);
    assert.ok(qemu.seedsWithStale > 0, `${race}: qemu-7.2 mode reproduces stale pages`);
    assert.equal(livemig.stale, 0, `${race}: livemig mode, seeds ${livemig.examples}`);
    assert.ok(livemig.hintsApplied > STALE_SEEDS, `${race}: livemig applies hints (${livemig.hintsApplied})`);
  }
  // Where each race's stale pages are: only the wide clear and TCG's dirty-tracking bug lose
  // pages outside hinted blocks (the lab's signature).
  for (const race of ['shrinker-reuse', 'late-hint', 'done-during-alloc'] as const) {
    const c = tally.cells[`${race}/qemu-7.2`]!;
    assert.equal(c.stale, c.staleInHinted, `${race}: stale pages only inside hinted blocks`);
  }
  for (const race of ['wide-clear', 'tcg-dirty'] as const) assert.ok(tally.cells[`${race}/qemu-7.2`]!.staleKernel > 0, `${race}: kernel-area pages`);
  // Seed 691 (docs/hinting-stale-pages.md): shrinker reuse × the hint's CLEAR_DIRTY_LOG under KVM.
  assert.ok(tally.cells['shrinker-reuse/qemu-7.2']!.examples.includes(691));
});
