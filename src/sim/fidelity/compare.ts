/**
 * Lab against simulator: run a lab case's scenario, read the same figures the lab reads from
 * QEMU's query-migrate, and judge each against the lab's median.
 *
 * The tolerances (the fidelity contract, docs/fidelity.md):
 * - the convergence verdict (completed or not) matches;
 * - total-time, transferred and dirty-sync-count within ±15% of the lab median;
 * - downtime of the same order: within 10× either way (QEMU's downtime of a few ms is mostly
 *   host scheduling noise; the lab's own runs vary 2-5× between repetitions).
 *
 * Pure: the caller loads scenarios and lab rows.
 */
import type { QemuTraceEvent } from '../../format/qemu-trace.ts';
import type { EngineFactory } from '../engine-ports.ts';
import { REAL_ENGINES } from '../engines.ts';
import { runScenario } from '../runner.ts';
import type { Scenario } from '../scenario/scenario.ts';
import { recordChecks } from './checks.ts';
import type { LabCase } from './lab-data.ts';

/** Relative tolerance of total-time, transferred and dirty-sync-count. */
export const FIDELITY_TOLERANCE = 0.15;
/** Factor downtime may be off by, either way. */
export const DOWNTIME_FACTOR = 10;

/** The figures compared, from one side. */
export interface FidelityFigures {
  readonly completed: boolean;
  readonly totalTimeMs: number;
  readonly downtimeMs: number;
  readonly transferredBytes: number;
  readonly dirtySyncCount: number;
  readonly normalPages: number;
  readonly duplicatePages: number;
  /**
   * Pages free page hinting took: the simulator counts the hinted pages; the lab shows how far
   * the guest's MemFree fell during the migration (kB → pages).
   */
  readonly hintedPages: number;
}

/** One figure judged. */
export interface FigureVerdict {
  readonly name: 'verdict' | 'total-time' | 'transferred' | 'dirty-sync-count' | 'downtime';
  readonly lab: number | boolean;
  readonly sim: number | boolean;
  readonly ok: boolean;
  /** e.g. "+4.1%" or "1.8x" */
  readonly deviation: string;
}

/** A case compared. */
export interface FidelityRow {
  readonly labCase: LabCase;
  readonly lab: FidelityFigures;
  readonly sim: FidelityFigures;
  readonly verdicts: readonly FigureVerdict[];
  readonly ok: boolean;
  /** Wall-clock cost is the caller's; virtual end time of the run, ns. */
  readonly simEndNs: number;
  /** The run's convergence checks and syncs, in the shape of QEMU's trace (with `{ checks: true }`). */
  readonly simChecks?: readonly QemuTraceEvent[];
}

/** The lab's figures of a case (medians). */
export function labFigures(c: LabCase): FidelityFigures {
  const m = c.medians;
  return {
    completed: c.completed * 2 > c.runs.length,
    totalTimeMs: m.totalTimeMs,
    downtimeMs: m.downtimeMs,
    transferredBytes: m.transferredBytes,
    dirtySyncCount: m.dirtySyncCount,
    normalPages: m.normalPages,
    duplicatePages: m.duplicatePages,
    hintedPages: Math.max(0, Math.round((m.memfreeBeforeKb - m.memfreeMinKb) / 4)),
  };
}

/** Runs the scenario and reads its figures. */
export function simulate(scenario: Scenario, engines?: EngineFactory): { figures: FidelityFigures; endNs: number } {
  const result = runScenario(scenario, engines === undefined ? {} : { engines });
  const info = result.source;
  const ram = info.ram;
  return {
    figures: {
      completed: result.status === 'completed',
      totalTimeMs: info['total-time'] ?? Number.NaN,
      downtimeMs: info.downtime ?? Number.NaN,
      transferredBytes: ram?.transferred ?? Number.NaN,
      dirtySyncCount: ram?.['dirty-sync-count'] ?? Number.NaN,
      normalPages: ram?.normal ?? Number.NaN,
      duplicatePages: ram?.duplicate ?? Number.NaN,
      hintedPages: result.balloon.hintedPages,
    },
    endNs: result.endNs,
  };
}

function relative(name: FigureVerdict['name'], lab: number, sim: number): FigureVerdict {
  const dev = (sim - lab) / lab;
  const ok = Number.isFinite(dev) && Math.abs(dev) <= FIDELITY_TOLERANCE + 1e-9;
  return { name, lab, sim, ok, deviation: `${dev >= 0 ? '+' : ''}${(dev * 100).toFixed(1)}%` };
}

function sameOrder(lab: number, sim: number): FigureVerdict {
  // Downtimes are whole ms; 0 ms counts as 1 ms so that "0 against 2" is of the same order.
  const a = Math.max(lab, 1);
  const b = Math.max(sim, 1);
  const factor = Math.max(a / b, b / a);
  const ok = Number.isFinite(factor) && factor <= DOWNTIME_FACTOR;
  return { name: 'downtime', lab, sim, ok, deviation: `${b >= a ? '' : '1/'}${factor.toFixed(1)}x` };
}

/** Judges the simulator's figures against the lab's. */
export function judge(lab: FidelityFigures, sim: FidelityFigures): FigureVerdict[] {
  const verdict: FigureVerdict = {
    name: 'verdict',
    lab: lab.completed,
    sim: sim.completed,
    ok: lab.completed === sim.completed,
    deviation: lab.completed === sim.completed ? 'same' : 'differs',
  };
  if (!lab.completed || !sim.completed) return [verdict];
  return [
    verdict,
    relative('total-time', lab.totalTimeMs, sim.totalTimeMs),
    relative('transferred', lab.transferredBytes, sim.transferredBytes),
    relative('dirty-sync-count', lab.dirtySyncCount, sim.dirtySyncCount),
    sameOrder(lab.downtimeMs, sim.downtimeMs),
  ];
}

/**
 * Simulates a lab case's scenario and judges it. With `checks`, the same run also records its
 * convergence checks (checks.ts; the run is the same either way).
 */
export function compareCase(labCase: LabCase, scenario: Scenario, options: { readonly checks?: boolean } = {}): FidelityRow {
  const lab = labFigures(labCase);
  const recorded = options.checks === true ? recordChecks(REAL_ENGINES) : null;
  const { figures: sim, endNs } = simulate(scenario, recorded?.engines);
  const verdicts = judge(lab, sim);
  const row = { labCase, lab, sim, verdicts, ok: verdicts.every((v) => v.ok), simEndNs: endNs };
  return recorded === null ? row : { ...row, simChecks: recorded.events };
}

/** The lab's runs of a figure (completed runs only). */
function runValues(labCase: LabCase, name: FigureVerdict['name']): number[] {
  const pick: Record<string, (r: LabCase['runs'][number]) => number | null | undefined> = {
    'total-time': (r) => r.total_time_ms,
    transferred: (r) => r.transferred,
    'dirty-sync-count': (r) => r.dirty_sync_count,
    downtime: (r) => r.downtime_ms,
  };
  const f = pick[name];
  if (f === undefined) return [];
  return labCase.runs.filter((r) => r.status === 'completed').map(f).filter((x): x is number => typeof x === 'number');
}

/**
 * The looser check for a documented deviation (known-deviations.ts): the simulator's figure is
 * within the spread of the lab's own runs, widened by the tolerance (±15% beyond the lowest and
 * the highest run; downtime within 10× of some run). Returns a reason when it is not.
 */
export function withinLabSpread(labCase: LabCase, verdict: FigureVerdict): string | null {
  const runs = runValues(labCase, verdict.name);
  if (runs.length === 0) return `no lab runs for ${verdict.name}`;
  const sim = verdict.sim as number;
  const lo = Math.min(...runs);
  const hi = Math.max(...runs);
  const [min, max] = verdict.name === 'downtime'
    ? [Math.max(lo, 1) / DOWNTIME_FACTOR, Math.max(hi, 1) * DOWNTIME_FACTOR]
    : [lo * (1 - FIDELITY_TOLERANCE), hi * (1 + FIDELITY_TOLERANCE)];
  const value = verdict.name === 'downtime' ? Math.max(sim, 1) : sim;
  return value >= min && value <= max ? null : `${verdict.name} ${sim} outside the lab runs' spread [${runs.join(', ')}] widened to [${min.toFixed(1)}, ${max.toFixed(1)}]`;
}
