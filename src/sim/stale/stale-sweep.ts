/**
 * Seeded sweeps of the stale-page world (stale-world.ts): per mode, how many seeds ended with
 * stale pages, how many stale pages in all, and where they were (kernel area, hinted blocks,
 * other), with the first failing seeds for replay. Pure and deterministic.
 */
import { STALE_MODES, runStaleWorld, type StaleFaults, type StaleMode, type StaleWorldOptions } from './stale-world.ts';

/** What a sweep of one fault set saw. */
export interface StaleCounts {
  seeds: number;
  seedsWithStale: number;
  stale: number;
  staleKernel: number;
  staleInHinted: number;
  staleOther: number;
  maxStale: number;
  syncs: number;
  hintsApplied: number;
  compared: number;
  /** First seeds with stale pages, ascending. */
  examples: number[];
}

export interface StaleTally extends StaleCounts {
  readonly mode: StaleMode;
  readonly options: StaleWorldOptions;
}

const EXAMPLES_MAX = 5;

export function emptyStaleCounts(): StaleCounts {
  return { seeds: 0, seedsWithStale: 0, stale: 0, staleKernel: 0, staleInHinted: 0, staleOther: 0, maxStale: 0, syncs: 0, hintsApplied: 0, compared: 0, examples: [] };
}

/** Runs seeds firstSeed.. under `faults`. */
export function sweepFaults(faults: StaleFaults, firstSeed: number, seedCount: number, options: StaleWorldOptions): StaleCounts {
  const t = emptyStaleCounts();
  for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
    const r = runStaleWorld(seed, faults, options);
    t.seeds++;
    t.syncs += r.syncs;
    t.hintsApplied += r.hintsApplied;
    t.compared += r.compared;
    if (r.stale === 0) continue;
    t.seedsWithStale++;
    t.stale += r.stale;
    t.staleKernel += r.staleKernel;
    t.staleInHinted += r.staleInHinted;
    t.staleOther += r.staleOther;
    t.maxStale = Math.max(t.maxStale, r.stale);
    if (t.examples.length < EXAMPLES_MAX) t.examples.push(seed);
  }
  return t;
}

/** Adds `c` (a disjoint seed range) into `into`. */
export function mergeStaleCounts(into: StaleCounts, c: StaleCounts): void {
  into.seeds += c.seeds;
  into.seedsWithStale += c.seedsWithStale;
  into.stale += c.stale;
  into.staleKernel += c.staleKernel;
  into.staleInHinted += c.staleInHinted;
  into.staleOther += c.staleOther;
  into.maxStale = Math.max(into.maxStale, c.maxStale);
  into.syncs += c.syncs;
  into.hintsApplied += c.hintsApplied;
  into.compared += c.compared;
  into.examples = [...into.examples, ...c.examples].sort((a, b) => a - b).slice(0, EXAMPLES_MAX);
}

export function sweepStale(mode: StaleMode, firstSeed: number, seedCount: number, options: StaleWorldOptions): StaleTally {
  return { mode, options, ...sweepFaults(STALE_MODES[mode], firstSeed, seedCount, options) };
}

/** One line per tally. */
export function staleLine(t: StaleTally): string {
  const o = `${t.options.hinting ? 'hint' : 'nohint'},ioa=${t.options.initOnAlloc ? 1 : 0}`;
  return `${t.mode.padEnd(13)} ${o.padEnd(15)} seeds=${t.seeds} withStale=${t.seedsWithStale} stale=${t.stale} ` +
    `(kernel ${t.staleKernel}, inHinted ${t.staleInHinted}, other ${t.staleOther}) max/run=${t.maxStale} ` +
    `syncs/run=${(t.syncs / t.seeds).toFixed(1)} hints/run=${(t.hintsApplied / t.seeds).toFixed(1)} examples=${t.examples.join(',')}`;
}
