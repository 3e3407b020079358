/**
 * Seeded sweeps of the stale-page world (stale-world.ts): per mode, how many seeds ended with
 * stale pages, how many stale pages in all, and where they were (kernel area, hinted blocks,
 * other), with the first failing seeds for replay. Pure and deterministic.
 */
import { STALE_MODES, runStaleWorld, type StaleMode, type StaleWorldOptions } from './stale-world.ts';

export interface StaleTally {
  readonly mode: StaleMode;
  readonly options: StaleWorldOptions;
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
  examples: number[];
}

export function sweepStale(mode: StaleMode, firstSeed: number, seedCount: number, options: StaleWorldOptions): StaleTally {
  const t: StaleTally = {
    mode, options, seeds: 0, seedsWithStale: 0, stale: 0, staleKernel: 0, staleInHinted: 0, staleOther: 0,
    maxStale: 0, syncs: 0, hintsApplied: 0, compared: 0, examples: [],
  };
  for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
    const r = runStaleWorld(seed, STALE_MODES[mode], options);
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
    if (t.examples.length < 5) t.examples.push(seed);
  }
  return t;
}

/** One line per tally. */
export function staleLine(t: StaleTally): string {
  const o = `${t.options.hinting ? 'hint' : 'nohint'},ioa=${t.options.initOnAlloc ? 1 : 0}`;
  return `${t.mode.padEnd(13)} ${o.padEnd(15)} seeds=${t.seeds} withStale=${t.seedsWithStale} stale=${t.stale} ` +
    `(kernel ${t.staleKernel}, inHinted ${t.staleInHinted}, other ${t.staleOther}) max/run=${t.maxStale} ` +
    `syncs/run=${(t.syncs / t.seeds).toFixed(1)} hints/run=${(t.hintsApplied / t.seeds).toFixed(1)} examples=${t.examples.join(',')}`;
}
