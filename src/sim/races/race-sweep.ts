/**
 * The race explorer's sweep: runs seeds × policies (race-world.ts builds each world), runs all
 * seven checkers per run, and tallies per policy what went wrong, by invariant, with the first
 * seeds that show each failure so they can be replayed (`raceDocument` gives the scenario).
 *
 * Pure and deterministic: a tally depends only on the seeds and the commit. Tallies of disjoint
 * seed ranges merge (`mergeTallies`), so a shell can split a sweep across workers.
 *
 * @example
 * const tally = sweepRaces({ firstSeed: 1, seedCount: 100, policies: ['legacy', 'track'] });
 * tally.policies.track.violations; // {} when track held every invariant on every seed
 */
import { FREE_PAGE_HINT_POSTCOPY_POLICIES, type FreePageHintPostcopyPolicy } from '../../devices/balloon/postcopy-policy.ts';
import { runScenario } from '../runner.ts';
import type { SimRunResult } from '../world-report.ts';
import { raceScenario } from './race-world.ts';

/** Seeds kept per failure kind (the first ones, ascending). */
export const EXAMPLE_SEEDS_MAX = 5;

/** What one policy did over a sweep. */
export interface PolicyTally {
  /** Runs. */
  runs: number;
  /** Runs refused at the start (postcopy-ram refused by the destination). */
  refused: number;
  /** Runs that switched to postcopy. */
  switched: number;
  /** Runs in which the source skipped hinted pages. */
  hinted: number;
  /** Runs in which the destination guest faulted on a page hinted and free at the switchover. */
  faultedOnHinted: number;
  /** Runs in which a hint reached the source after it went postcopy-active (before its vm_stop). */
  hintsAfterSwitch: number;
  /** Runs that ended otherwise than the world expects (failed, stuck, time limit, device error). */
  unexpectedEnd: number;
  /** Runs with at least one invariant violated. */
  runsWithViolations: number;
  /** Violations by invariant name. */
  violations: Record<string, number>;
  /** First seeds per invariant name, and under 'unexpected-end'. */
  examples: Record<string, number[]>;
  /** Longest fault stall seen, ns, and its seed. */
  longestStallNs: number;
  longestStallSeed: number;
  /** Largest hinted memory still held after a run, bytes, and its seed. */
  mostHeldBytes: number;
  mostHeldSeed: number;
}

/** A sweep's result. */
export interface RaceTally {
  readonly firstSeed: number;
  readonly seedCount: number;
  readonly policies: Partial<Record<FreePageHintPostcopyPolicy, PolicyTally>>;
}

/** What to sweep. */
export interface SweepOptions {
  readonly firstSeed: number;
  readonly seedCount: number;
  /** Default: all five. */
  readonly policies?: readonly FreePageHintPostcopyPolicy[];
}

export function emptyPolicyTally(): PolicyTally {
  return {
    runs: 0,
    refused: 0,
    switched: 0,
    hinted: 0,
    faultedOnHinted: 0,
    hintsAfterSwitch: 0,
    unexpectedEnd: 0,
    runsWithViolations: 0,
    violations: {},
    examples: {},
    longestStallNs: 0,
    longestStallSeed: -1,
    mostHeldBytes: 0,
    mostHeldSeed: -1,
  };
}

function example(t: PolicyTally, kind: string, seed: number): void {
  const list = (t.examples[kind] ??= []);
  if (list.length < EXAMPLE_SEEDS_MAX) list.push(seed);
}

/** Adds one run's result to `t`. */
export function addRun(t: PolicyTally, seed: number, result: SimRunResult): void {
  t.runs++;
  if (result.endReason === 'refused') t.refused++;
  if (result.postcopy.switched) t.switched++;
  if (result.balloon.hintedPages > 0) t.hinted++;
  if (result.postcopy.faultsOnHinted > 0) t.faultedOnHinted++;
  if (result.balloon.hintsAfterSwitch > 0) t.hintsAfterSwitch++;
  if (!result.statusAsExpected || result.deviceError !== null) {
    t.unexpectedEnd++;
    example(t, 'unexpected-end', seed);
  }
  const failed = result.verdicts.filter((v) => !v.ok);
  if (failed.length > 0) t.runsWithViolations++;
  for (const v of failed) {
    t.violations[v.name] = (t.violations[v.name] ?? 0) + 1;
    example(t, v.name, seed);
  }
  if (result.postcopy.maxStallNs > t.longestStallNs) {
    t.longestStallNs = result.postcopy.maxStallNs;
    t.longestStallSeed = seed;
  }
  if (result.balloon.heldAfterMigrationBytes > t.mostHeldBytes) {
    t.mostHeldBytes = result.balloon.heldAfterMigrationBytes;
    t.mostHeldSeed = seed;
  }
}

/** Runs one seed under one policy. */
export function runRaceSeed(seed: number, policy: FreePageHintPostcopyPolicy): SimRunResult {
  return runScenario(raceScenario(seed, policy), { seed });
}

/** Runs the sweep (see the header). */
export function sweepRaces(options: SweepOptions): RaceTally {
  const policies = options.policies ?? FREE_PAGE_HINT_POSTCOPY_POLICIES;
  const tally: RaceTally = { firstSeed: options.firstSeed, seedCount: options.seedCount, policies: {} };
  for (const policy of policies) tally.policies[policy] = emptyPolicyTally();
  for (let i = 0; i < options.seedCount; i++) {
    const seed = options.firstSeed + i;
    for (const policy of policies) addRun(tally.policies[policy] as PolicyTally, seed, runRaceSeed(seed, policy));
  }
  return tally;
}

/** Merges tallies of disjoint seed ranges (examples keep the smallest seeds). */
export function mergeTallies(tallies: readonly RaceTally[]): RaceTally {
  const firstSeed = Math.min(...tallies.map((t) => t.firstSeed));
  const out: RaceTally = { firstSeed, seedCount: tallies.reduce((n, t) => n + t.seedCount, 0), policies: {} };
  for (const t of tallies) {
    for (const [name, p] of Object.entries(t.policies) as Array<[FreePageHintPostcopyPolicy, PolicyTally]>) {
      const m = (out.policies[name] ??= emptyPolicyTally());
      m.runs += p.runs;
      m.refused += p.refused;
      m.switched += p.switched;
      m.hinted += p.hinted;
      m.faultedOnHinted += p.faultedOnHinted;
      m.hintsAfterSwitch += p.hintsAfterSwitch;
      m.unexpectedEnd += p.unexpectedEnd;
      m.runsWithViolations += p.runsWithViolations;
      for (const [k, v] of Object.entries(p.violations)) m.violations[k] = (m.violations[k] ?? 0) + v;
      for (const [k, seeds] of Object.entries(p.examples)) m.examples[k] = [...(m.examples[k] ?? []), ...seeds].sort((a, b) => a - b).slice(0, EXAMPLE_SEEDS_MAX);
      if (p.longestStallNs > m.longestStallNs) [m.longestStallNs, m.longestStallSeed] = [p.longestStallNs, p.longestStallSeed];
      if (p.mostHeldBytes > m.mostHeldBytes) [m.mostHeldBytes, m.mostHeldSeed] = [p.mostHeldBytes, p.mostHeldSeed];
    }
  }
  return out;
}
