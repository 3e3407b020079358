/**
 * The stale-page races (issue [10]) in the full simulator: each race's seed is the race
 * explorer's world (race-world.ts, `track` policy, init_on_alloc=1) with the scenario field
 * `faults: { behave-as: <mode>, stale-races: [<race>] }` (src/sim/stale-faults.ts), run by
 * `runScenario` like `livemig sim`. A stale page is a page the memory-equality checker fails:
 * in use at the switchover (or written since it was last freed) and different on the
 * destination. Where it lies: the guest kernel's reserved memory ("kernel area"), a page a hint
 * cleared ("in hinted blocks"), or elsewhere ("other": workload pages never hinted).
 *
 * Tallies have the small world's shape (stale-races.ts), so they merge and print the same way.
 * Pure and deterministic.
 */
import type { PageStore } from '../../memory/page-store.ts';
import { MEMORY_EQUALITY } from '../checkers/memory-equality.ts';
import { runScenario } from '../runner.ts';
import { resolveScenario, type FaultBehaviour, type Scenario, type StaleRaceFault } from '../scenario/scenario.ts';
import { scenarioDocumentSchema, STALE_RACE_FAULTS } from '../scenario/schema.ts';
import type { World } from '../world.ts';
import { emptyStaleCounts, type StaleCounts } from '../stale/stale-sweep.ts';
import { raceDocument, raceKnobs } from './race-world.ts';
import { STALE_RACE_MODES, type StaleRaceTally } from './stale-races.ts';

const EXAMPLES_MAX = 5;

/** The scenario document of `seed` with `race` switched on under `mode`. */
export function staleRaceDocument(seed: number, race: StaleRaceFault, mode: FaultBehaviour): Record<string, unknown> {
  const doc = raceDocument(raceKnobs(seed), 'track', seed);
  const guest = doc.guest as Record<string, unknown>;
  return {
    ...doc,
    name: `stale-${race}-${mode}-${seed}`,
    description: `race explorer world ${seed} with stale-page race ${race}, behaving as ${mode} (src/sim/races/stale-full.ts)`,
    guest: { ...guest, 'init-on-alloc': true },
    faults: { 'behave-as': mode, 'stale-races': [race] },
  };
}

export function staleRaceScenario(seed: number, race: StaleRaceFault, mode: FaultBehaviour): Scenario {
  return resolveScenario(scenarioDocumentSchema.parse(staleRaceDocument(seed, race, mode)));
}

/** What one run lost. */
export interface StaleRun {
  readonly stale: number;
  readonly staleKernel: number;
  readonly staleInHinted: number;
  readonly hintRanges: number;
  readonly syncs: number;
  /** Whether the memory-equality verdict failed (it must exactly when stale > 0). */
  readonly memoryEqualityFailed: boolean;
}

/** Runs one seed of `race` under `mode` and classifies its stale pages. */
export function runStaleRace(seed: number, race: StaleRaceFault, mode: FaultBehaviour): StaleRun {
  let world: World | null = null;
  const result = runScenario(staleRaceScenario(seed, race, mode), { seed, inspect: (w) => (world = w) });
  const failed = result.verdicts.some((v) => v.name === MEMORY_EQUALITY && !v.ok);
  const w = world as World | null;
  const counts = w === null || !failed ? { stale: 0, staleKernel: 0, staleInHinted: 0 } : classify(w);
  return { ...counts, hintRanges: w?.machine.audit.hintRangeCount ?? 0, syncs: w?.progress.syncCount ?? 0, memoryEqualityFailed: failed };
}

/** The pages memory-equality fails, by where they lie (the checker's own rule, page by page). */
function classify(world: World): { stale: number; staleKernel: number; staleInHinted: number } {
  const { machine } = world;
  const { audit, guest } = machine;
  const source: PageStore = machine.sourceBacking;
  const destination: PageStore = machine.destinationBacking;
  const topStart = guest.bootRamPages - Math.floor(world.scenario.guest.reservedTopBytes / 4096);
  let stale = 0;
  let staleKernel = 0;
  let staleInHinted = 0;
  for (let p = 0; p < machine.pageCount; p++) {
    const written = audit.writtenAfterResume !== null && audit.writtenAfterResume.test(p);
    const differs = written ? audit.firstWriteMismatch?.test(p) === true : !destination.pageEquals(source, p);
    if (!differs || audit.allowedToDiffer.has(p)) continue;
    stale++;
    if (p < guest.kernelPages || p >= topStart) staleKernel++;
    else if (audit.wasHinted(p)) staleInHinted++;
  }
  return { stale, staleKernel, staleInHinted };
}

export interface FullSweepOptions {
  readonly firstSeed: number;
  readonly seedCount: number;
  readonly races?: readonly StaleRaceFault[];
  readonly modes?: readonly FaultBehaviour[];
}

/** Sweeps races × modes over the seeds in the full world. */
export function sweepStaleRacesFull(o: FullSweepOptions): StaleRaceTally {
  const tally: StaleRaceTally = { firstSeed: o.firstSeed, seedCount: o.seedCount, initOnAlloc: true, world: 'full', cells: {} };
  for (const race of o.races ?? STALE_RACE_FAULTS) {
    for (const mode of o.modes ?? STALE_RACE_MODES) {
      const c: StaleCounts = emptyStaleCounts();
      for (let seed = o.firstSeed; seed < o.firstSeed + o.seedCount; seed++) addRun(c, seed, runStaleRace(seed, race, mode));
      tally.cells[`${race}/${mode}`] = c;
    }
  }
  return tally;
}

function addRun(c: StaleCounts, seed: number, r: StaleRun): void {
  c.seeds++;
  c.syncs += r.syncs;
  c.hintsApplied += r.hintRanges;
  if (r.stale === 0) return;
  c.seedsWithStale++;
  c.stale += r.stale;
  c.staleKernel += r.staleKernel;
  c.staleInHinted += r.staleInHinted;
  c.staleOther += r.stale - r.staleKernel - r.staleInHinted;
  c.maxStale = Math.max(c.maxStale, r.stale);
  if (c.examples.length < EXAMPLES_MAX) c.examples.push(seed);
}
