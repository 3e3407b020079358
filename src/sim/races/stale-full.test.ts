// The stale-page races of issue [10] as scenario faults of the full simulator (stale-faults.ts):
// the scenario files under scenarios/stale/ fail memory-equality as QEMU 7.2 behaves and pass
// under livemig's rules; an explorer sweep (two worker threads) shows each race's stale pages in
// qemu-7.2 mode and none in livemig mode. `npm run soak:races -- --stale-full --seeds N` runs more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { MEMORY_EQUALITY } from '../checkers/memory-equality.ts';
import { runScenario } from '../runner.ts';
import { loadScenario, parseOverride } from '../scenario/scenario.ts';
import { STALE_RACE_FAULTS } from '../scenario/schema.ts';
import { staleFaultSwitches } from '../stale-faults.ts';
import { mergeStaleTallies, staleRaceTableText, type StaleRaceTally } from './stale-races.ts';
import { runStaleRace } from './stale-full.ts';

const SEEDS = 60;
const WORKER = new URL('../../../scripts/race-worker.mjs', import.meta.url);
const FILES = ['late-hint', 'wide-clear', 'done-during-alloc', 'tcg-dirty'] as const;

function file(name: string, sets: readonly string[] = []) {
  const text = readFileSync(new URL(`../../../scenarios/stale/${name}.yaml`, import.meta.url), 'utf8');
  return loadScenario(text, sets.map((s) => parseOverride(s)!));
}

for (const name of FILES) {
  test(`scenarios/stale/${name}.yaml: memory-equality fails with stale pages as QEMU 7.2 behaves, passes under livemig's rules`, () => {
    const qemu = runScenario(file(name));
    assert.equal(qemu.status, 'completed');
    const failed = qemu.verdicts.filter((v) => !v.ok);
    assert.deepEqual(failed.map((v) => v.name), [MEMORY_EQUALITY], JSON.stringify(failed));
    assert.match(failed[0].detail, /^\d+ destination pages differ from the source at switchover \(\d+/);
    const livemig = runScenario(file(name, ['faults.behave-as=livemig']));
    assert.ok(livemig.ok, JSON.stringify(livemig.verdicts.filter((v) => !v.ok)));
  });
}

test('faults: a bad race or a missing behave-as is a ScenarioError naming the field', () => {
  assert.throws(() => loadScenario('guest: {memory: 64M}\nfaults: {behave-as: qemu-7.2, stale-races: [bogus]}\n', []), {
    name: 'ScenarioError',
    message: /faults\.stale-races\.0: Invalid option: expected one of "shrinker-reuse"\|"late-hint"\|"wide-clear"\|"done-during-alloc"\|"tcg-dirty"/,
  });
  assert.throws(() => loadScenario('guest: {memory: 64M}\nfaults: {stale-races: [tcg-dirty]}\n', []), {
    name: 'ScenarioError',
    message: /faults\.behave-as: Invalid option: expected one of "qemu-7\.2"\|"livemig"/,
  });
  assert.equal(loadScenario('guest: {memory: 64M}\n', []).faults, null);
});

test('faults: each race switches its component; livemig keeps the injection and turns the guards on', () => {
  assert.equal(staleFaultSwitches('qemu-7.2', []), null);
  assert.deepEqual(staleFaultSwitches('qemu-7.2', ['shrinker-reuse'])?.log, { tcgTlb: false, staleTlb: false, manualProtect: true, chunkPages: 1 << 18 });
  assert.equal(staleFaultSwitches('qemu-7.2', ['shrinker-reuse'])?.hintClear, 'masked');
  assert.equal(staleFaultSwitches('livemig', ['shrinker-reuse'])?.log, null);
  assert.equal(staleFaultSwitches('qemu-7.2', ['wide-clear'])?.hintClear, 'unmasked');
  assert.equal(staleFaultSwitches('livemig', ['wide-clear'])?.hintClear, 'none');
  assert.deepEqual(staleFaultSwitches('livemig', ['tcg-dirty'])?.log, { tcgTlb: true, staleTlb: false, manualProtect: false, chunkPages: 1 << 18 });
  for (const mode of ['qemu-7.2', 'livemig'] as const) {
    const done = staleFaultSwitches(mode, ['done-during-alloc'])!;
    assert.deepEqual(done.device, { anyStatus: true, doneMidRound: true });
    assert.equal(done.lateHints, true);
    assert.equal(done.staleIdGuard, mode === 'livemig');
  }
  // The same seed, the same injection: only the guards differ.
  const qemu = runStaleRace(10, 'late-hint', 'qemu-7.2');
  const livemig = runStaleRace(10, 'late-hint', 'livemig');
  assert.ok(qemu.stale > 0 && qemu.memoryEqualityFailed);
  assert.equal(livemig.stale, 0);
  assert.equal(livemig.memoryEqualityFailed, false);
});

test(`stale-page races in the full simulator: ${SEEDS} explorer seeds per race and mode; livemig has none`, async (t) => {
  const ranges = [{ firstSeed: 1, seedCount: SEEDS / 2 }, { firstSeed: 1 + SEEDS / 2, seedCount: SEEDS / 2 }];
  const parts = await Promise.all(ranges.map((r) => new Promise<StaleRaceTally>((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: { ...r, stale: 'full' } });
    worker.once('message', resolve);
    worker.once('error', reject);
  })));
  const tally = mergeStaleTallies(parts);
  for (const line of staleRaceTableText(tally).trimEnd().split('\n')) t.diagnostic(line);
  for (const race of STALE_RACE_FAULTS) {
    const livemig = tally.cells[`${race}/livemig`]!;
    assert.equal(livemig.seeds, SEEDS);
    assert.equal(livemig.stale, 0, `${race}: livemig mode, seeds ${livemig.examples}`);
    assert.ok(livemig.hintsApplied > SEEDS, `${race}: livemig applies hints (${livemig.hintsApplied})`);
  }
  // shrinker-reuse needs two rounds around one block (docs/hinting-stale-pages.md): these
  // worlds run one round, so it is not asserted here. tcg-dirty is rare (about 1% of seeds in
  // the 10,000-seed soak): its reproduction is pinned on known seeds in the next test.
  for (const race of ['late-hint', 'wide-clear', 'done-during-alloc'] as const) {
    assert.ok(tally.cells[`${race}/qemu-7.2`]!.seedsWithStale > 0, `${race}: qemu-7.2 mode reproduces stale pages`);
  }
  for (const race of ['late-hint', 'done-during-alloc'] as const) {
    const c = tally.cells[`${race}/qemu-7.2`]!;
    assert.equal(c.stale, c.staleInHinted, `${race}: stale pages only where a hint cleared them`);
  }
  const wide = tally.cells['wide-clear/qemu-7.2']!;
  assert.ok(wide.stale - wide.staleInHinted > 0, 'wide-clear: pages no hint cleared');
});

test('tcg-dirty: explorer seeds 206 and 270 lose pages no hint cleared as QEMU 7.2 behaves, none under livemig', () => {
  for (const seed of [206, 270]) {
    const qemu = runStaleRace(seed, 'tcg-dirty', 'qemu-7.2');
    assert.ok(qemu.memoryEqualityFailed && qemu.stale > 0, `seed ${seed}: ${JSON.stringify(qemu)}`);
    assert.ok(qemu.stale - qemu.staleInHinted > 0, `seed ${seed}: pages no hint cleared`);
    const livemig = runStaleRace(seed, 'tcg-dirty', 'livemig');
    assert.equal(livemig.stale, 0);
    assert.equal(livemig.memoryEqualityFailed, false);
  }
});
