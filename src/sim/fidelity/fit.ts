/**
 * Fitting a calibration to a lab suite (`npm run lab -- --fit`): coordinate descent over some of
 * its constants. Each step multiplies one constant by one of a few factors, runs the suite's
 * cases in the simulator and keeps the change when the suite's loss falls; each round narrows
 * the factors (their square roots), and the last round repeats until it keeps nothing, so the
 * result is a minimum for its finest steps. Deterministic: the same suite and start give the
 * same constants.
 *
 * The loss sums, over every case and every figure the issue compares by ratio (total-time,
 * transferred, dirty-sync-count), the squared log ratio of simulator to lab, plus 4 × how far the
 * log ratio goes beyond the ±15% tolerance: a figure just outside counts more than its squared
 * error alone. The downtime, held to an order of magnitude, counts only beyond it: 4 × how far its
 * log ratio goes past log 10. The host suites' last stage also counts QEMU's own trace of the
 * machine (`trace-warm.jsonl`), each figure of FIT_TRACE_FIGURES against the simulator's: the
 * pages the alloc guest's first 51 ms iteration saved (eleventh round: the suite's medians alone
 * left the stream where that iteration saved a quarter fewer pages than QEMU's did), the same
 * with init_on_alloc=0, and the pace of the idle guest's driver at 128 MiB/s (twelfth round: the
 * medians alone left it a third faster than QEMU's trace shows).
 *
 * Pure but for `fitHostCalibration` and `simulatedTraceFigure`, which run the simulator.
 */
import type { QemuTraceEvent } from '../../format/qemu-trace.ts';
import { LAB_CALIBRATION, type LabCalibration } from '../calibration.ts';
import { GUEST_UP_AT_INIT_HOST_S, GUEST_UP_AT_INIT_LAB_S, HOST_ADVISED_DEVICE_LOAD_NS, HOST_FIRST_TOUCH_WARM_NS } from '../calibration-host.ts';
import { loadScenario } from '../scenario/scenario.ts';
import { simulatedChecks } from './checks.ts';
import { compareCase, DOWNTIME_FACTOR, FIDELITY_TOLERANCE, type FidelityRow } from './compare.ts';
import { caseId, keyOf, type LabRow } from './lab-data.ts';
import { labScenarioFiles, type LabSource } from './lab-scenario.ts';

/** The constants a fit may move. */
export type FitKey = 'linkBytesPerSec' | 'scanNsPerPage' | 'rescanNsPerPage' | 'switchoverNs' | 'hintBlockNs' | 'zeroTouchedPageNs' | 'zeroFreshPageNs';

/** Weight of the part of a log ratio beyond the tolerance. */
const OUTSIDE_WEIGHT = 4;
/** Rounds of the last factors after the given rounds, while a round still keeps a step. */
const CONVERGE_ROUNDS_MAX = 8;
/** The first round's factors; each later round takes their square roots. */
export const FIT_FACTORS: readonly number[] = [0.6, 0.8, 1.25, 1.6];

/** One ratio figure's loss: its squared log ratio, plus 4 × how far it goes beyond ±15%. */
export function figureLoss(lab: number, sim: number): number {
  const e = Math.abs(Math.log(Math.max(sim, 1e-3) / Math.max(lab, 1e-3)));
  return e * e + OUTSIDE_WEIGHT * Math.max(0, e - Math.log(1 + FIDELITY_TOLERANCE));
}

/** The loss of a suite's rows (0: the simulator matches every median). */
export function fidelityLoss(rows: readonly FidelityRow[]): number {
  const downtimeTolerance = Math.log(DOWNTIME_FACTOR);
  let loss = 0;
  for (const row of rows) {
    for (const v of row.verdicts) {
      if (typeof v.lab !== 'number' || typeof v.sim !== 'number') continue;
      if (v.name === 'downtime') {
        // Whole ms, 0 counted as 1 (compare.ts); only the part beyond 10× counts.
        const e = Math.abs(Math.log(Math.max(v.sim, 1) / Math.max(v.lab, 1)));
        loss += OUTSIDE_WEIGHT * Math.max(0, e - downtimeTolerance);
        continue;
      }
      loss += figureLoss(v.lab, v.sim);
    }
  }
  return loss;
}

/** One kept step. */
export interface FitStep {
  readonly round: number;
  readonly key: FitKey;
  readonly factor: number;
  readonly calibration: LabCalibration;
  readonly loss: number;
  /** Cases within tolerance on every figure. */
  readonly passed: number;
}

export interface FitOptions {
  readonly start: LabCalibration;
  readonly keys: readonly FitKey[];
  /** Runs the suite (or the part of it this fit is for) under a calibration. */
  readonly evaluate: (calibration: LabCalibration) => readonly FidelityRow[];
  /** More loss of a calibration's rows, beyond their figures' (QEMU's trace, traceLoss; default none). */
  readonly extraLoss?: (rows: readonly FidelityRow[], calibration: LabCalibration) => number;
  readonly rounds?: number;
  /** The first round's factors (default FIT_FACTORS). */
  readonly factors?: readonly number[];
  readonly onStep?: (step: FitStep) => void;
}

export interface FitResult {
  readonly calibration: LabCalibration;
  readonly loss: number;
  readonly passed: number;
  readonly evaluations: number;
}

/** Coordinate descent from `start` over `keys`; constants stay whole numbers. */
export function fitCalibration(options: FitOptions): FitResult {
  let best = options.start;
  const lossOf = (k: LabCalibration, r: readonly FidelityRow[]): number => fidelityLoss(r) + (options.extraLoss?.(r, k) ?? 0);
  let rows = options.evaluate(best);
  let bestLoss = lossOf(best, rows);
  let passed = rows.filter((r) => r.ok).length;
  let evaluations = 1;
  let factors = options.factors ?? FIT_FACTORS;
  const rounds = options.rounds ?? 3;
  // The last round's factors repeat until a round keeps nothing (at most CONVERGE_ROUNDS_MAX more).
  for (let round = 0, keptInRound = 0; round < rounds || (keptInRound > 0 && round < rounds + CONVERGE_ROUNDS_MAX); round++) {
    keptInRound = 0;
    for (const key of options.keys) {
      for (const factor of factors) {
        const value = Math.round(best[key] * factor);
        if (value === best[key] || value <= 0) continue;
        const candidate: LabCalibration = { ...best, [key]: value };
        const candidateRows = options.evaluate(candidate);
        evaluations++;
        const loss = lossOf(candidate, candidateRows);
        if (loss >= bestLoss) continue;
        best = candidate;
        bestLoss = loss;
        rows = candidateRows;
        passed = rows.filter((r) => r.ok).length;
        keptInRound++;
        options.onStep?.({ round, key, factor, calibration: best, loss, passed });
      }
    }
    if (round < rounds - 1) factors = factors.map(Math.sqrt);
  }
  return { calibration: best, loss: bestLoss, passed, evaluations };
}

/** A stage of the host suites' fit: which constants, on which cases. */
export interface FitStage {
  readonly what: string;
  readonly keys: readonly FitKey[];
  readonly cases: (id: string) => boolean;
  /** Whether QEMU's trace counts too (FIT_TRACE_FIGURES, traceLoss). */
  readonly trace: boolean;
}

/** The stream on the hint-off cases, the driver on the hint-on ones, then all together. */
export const HOST_FIT_STAGES: readonly FitStage[] = [
  { what: 'the stream, on the hint-off cases', keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs'], cases: (id) => id.includes('-hint-off'), trace: false },
  { what: 'the driver and the rescan, on the hint-on cases without postcopy-ram', keys: ['rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'], cases: (id) => id.includes('-hint-on') && !id.includes('-pc'), trace: false },
  {
    what: 'all of them together, on every case and QEMU\'s trace (the first iteration, the driver\'s pace)',
    keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs', 'rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'],
    cases: () => true,
    trace: true,
  },
];

/**
 * A figure of QEMU's own trace (trace-warm.jsonl) that the simulator's checks (checks.ts) give
 * too: one lab case, one number read from a run's events the same way on both sides.
 */
export interface TraceFigure {
  readonly caseId: string;
  readonly what: string;
  /** The figure of one run's events; null when they lack it. */
  readonly read: (events: readonly QemuTraceEvent[]) => number | null;
}

/** The pages of the first iteration that ended on its time (QEMU's first `big wait`). */
function firstBigWaitPages(events: readonly QemuTraceEvent[]): number | null {
  const wait = events.find((e) => e[1] === 'big-wait');
  return wait === undefined || wait[1] !== 'big-wait' ? null : wait[3];
}

/**
 * The pages dirty at the first sync after the setup's, per ms since `migrate`: in an idle guest
 * nearly all are the hint blocks its balloon driver allocated, zeroed (init_on_alloc=1) and
 * hinted, so this is the driver's pace.
 */
function firstSyncPagesPerMs(events: readonly QemuTraceEvent[]): number | null {
  const sync = events.filter((e) => e[1] === 'sync')[1];
  if (sync === undefined || sync[1] !== 'sync' || sync[0] === null || sync[0] <= 0) return null;
  return sync[2] / sync[0];
}

/**
 * The stream while the driver hints: the alloc guest at 1 GiB/s starts with data, so its first
 * iteration stops at 51 ms before the rate limit's budget, and its pages measure the stream.
 */
export const FIRST_ITERATION: TraceFigure = { caseId: 'm1024-alloc-1g-hint-on', what: 'pages its first 51 ms iteration saved', read: firstBigWaitPages };

/**
 * The same with init_on_alloc=0: the driver allocates its hint blocks without zeroing them, so
 * the vCPU leaves the host's cores to the stream, and the iteration measures the stream alone.
 */
export const FIRST_ITERATION_IOA0: TraceFigure = { ...FIRST_ITERATION, caseId: 'm1024-alloc-1g-hint-on-ioa0' };

/** The driver's pace with the host to itself: at 128 MiB/s the migration threads sleep most of each window. */
export const DRIVER_PACE_128M: TraceFigure = { caseId: 'm2048-idle-128m-hint-on', what: 'pages dirty per ms at the first sync after the setup', read: firstSyncPagesPerMs };

/**
 * The driver's pace while a 1 GiB/s stream shares the host's two cores with it: the same
 * figure, which the fit never sees, so it checks the shared host (host-cpu.ts).
 */
export const DRIVER_PACE_1G: readonly TraceFigure[] = ['m1024-idle-1g-hint-on', 'm2048-idle-1g-hint-on']
  .map((id) => ({ ...DRIVER_PACE_128M, caseId: id }));

/** The trace figures the host suites' last fitting stage counts. */
export const FIT_TRACE_FIGURES: readonly TraceFigure[] = [FIRST_ITERATION, FIRST_ITERATION_IOA0, DRIVER_PACE_128M];

/** A trace figure with QEMU's value in each traced run of its case. */
export interface TracedFigure {
  readonly figure: TraceFigure;
  readonly runs: readonly number[];
}

/** `figure` in each run of its case in `traceRows` (trace-warm.jsonl); each run must have it. */
export function tracedFigure(traceRows: readonly LabRow[], figure: TraceFigure): TracedFigure {
  const runs = traceRows.filter((r) => caseId(keyOf(r)) === figure.caseId).map((r) => {
    const value = figure.read((r as { readonly qemu_trace?: readonly QemuTraceEvent[] }).qemu_trace ?? []);
    if (value === null) throw new Error(`trace run ${r.rep} of ${figure.caseId} lacks ${figure.what}`);
    return value;
  });
  if (runs.length === 0) throw new Error(`no traced run of ${figure.caseId}`);
  return { figure, runs };
}

/** The median of QEMU's runs (the upper one of an even count). */
export function tracedMedian(traced: TracedFigure): number {
  const sorted = [...traced.runs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The simulator's value of `figure` under `calibration` (0 when its checks lack it): one run of its case. */
export function simulatedTraceFigure(sources: readonly LabSource[], derivation: readonly LabRow[], figure: TraceFigure, calibration: LabCalibration): number {
  const only = sources.map((s) => ({ ...s, rows: s.rows.filter((r) => caseId(keyOf(r)) === figure.caseId) }));
  const file = labScenarioFiles(only, derivation, calibration).find((f) => f.labCase.id === figure.caseId);
  if (file === undefined) throw new Error(`no lab scenario ${figure.caseId}`);
  return figure.read(simulatedChecks(loadScenario(file.yaml))) ?? 0;
}

/** The cases whose rows the trace figures read: simulate them with `{ checks: true }`. */
export function tracedCaseIds(traced: readonly TracedFigure[]): ReadonlySet<string> {
  return new Set(traced.map((t) => t.figure.caseId));
}

/**
 * The traces' loss of a suite's rows: each figure, read from its case's recorded checks (the
 * suite's own run of it, compareCase `{ checks: true }`), against its traced runs' median.
 */
export function traceLoss(traced: readonly TracedFigure[]): (rows: readonly FidelityRow[]) => number {
  return (rows) => traced.reduce((loss, t) => {
    const checks = rows.find((r) => r.labCase.id === t.figure.caseId)?.simChecks;
    if (checks === undefined) throw new Error(`trace figure ${t.figure.caseId}: its case was not simulated with its checks`);
    return loss + figureLoss(tracedMedian(t), t.figure.read(checks) ?? 0);
  }, 0);
}

/**
 * Where the host suites' fit starts: the lab machine's constants, with the host's warm first
 * touch, and the guest's own times divided by how much faster the host runs the guest (its
 * uptime at /init: 1.53 s against 2.80 s in the lab's suites).
 */
export function hostFitStart(): LabCalibration {
  const guestSpeed = GUEST_UP_AT_INIT_LAB_S / GUEST_UP_AT_INIT_HOST_S;
  return {
    ...LAB_CALIBRATION,
    name: 'fit',
    hintBlockNs: Math.round(LAB_CALIBRATION.hintBlockNs / guestSpeed),
    zeroTouchedPageNs: Math.round(LAB_CALIBRATION.zeroTouchedPageNs / guestSpeed),
    zeroFreshPageNs: Math.round(LAB_CALIBRATION.zeroFreshPageNs / guestSpeed),
    destinationFaultNs: HOST_FIRST_TOUCH_WARM_NS,
    advisedDeviceLoadNs: HOST_ADVISED_DEVICE_LOAD_NS,
  };
}

/** The finest factors of a fit of `rounds` rounds (default 3) from FIT_FACTORS: each round takes square roots. */
export function finestFactors(rounds = 3): readonly number[] {
  return FIT_FACTORS.map((f) => f ** (1 / 2 ** (rounds - 1)));
}

/**
 * `npm run lab -- --fit`: the host suites' calibration fitted on the warm suite (`sources`, the
 * guest's layout from `derivation`), stage by stage from hostFitStart(). Coordinate descent finds
 * a local minimum, and a change to the simulator can leave the staged start in a worse one than
 * the constants it had: with `alsoFrom` (the committed constants) the last stage also descends
 * from there, with its finest factors, and the lower of the two minima wins. Fitting again from
 * its own result then changes nothing. `onStage` and `onStep` report progress.
 */
export function fitHostCalibration(
  sources: readonly LabSource[],
  derivation: readonly LabRow[],
  traced: readonly TracedFigure[],
  report: { readonly onStage?: (stage: FitStage, cases: number) => void; readonly onStep?: (step: FitStep, cases: number) => void; readonly onStageDone?: (result: FitResult, cases: number) => void } = {},
  alsoFrom?: LabCalibration,
): LabCalibration {
  const tracedIds = tracedCaseIds(traced);
  const run = (stage: FitStage, start: LabCalibration, factors?: readonly number[]): FitResult => {
    const cases = labScenarioFiles(sources, derivation).filter((f) => stage.cases(f.labCase.id)).length;
    report.onStage?.(stage, cases);
    const result = fitCalibration({
      start,
      keys: stage.keys,
      evaluate: (k) => labScenarioFiles(sources, derivation, k)
        .filter((f) => stage.cases(f.labCase.id))
        .map((f) => compareCase(f.labCase, loadScenario(f.yaml), { checks: stage.trace && tracedIds.has(f.labCase.id) })),
      extraLoss: stage.trace ? traceLoss(traced) : undefined,
      onStep: (step) => report.onStep?.(step, cases),
      ...(factors === undefined ? {} : { factors, rounds: 1 }),
    });
    report.onStageDone?.(result, cases);
    return result;
  };
  let result: FitResult | null = null;
  for (const stage of HOST_FIT_STAGES) result = run(stage, result?.calibration ?? hostFitStart());
  if (result === null) throw new Error('no fitting stage');
  if (alsoFrom === undefined) return result.calibration;
  const last = HOST_FIT_STAGES[HOST_FIT_STAGES.length - 1];
  const again = run({ ...last, what: `${last.what}, again from the committed constants` }, { ...alsoFrom, name: 'fit' }, finestFactors());
  return again.loss < result.loss ? again.calibration : result.calibration;
}
