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
 * machine (`trace-warm.jsonl`): the pages the alloc guest's first 51 ms iteration saved, against
 * the simulator's, as one more figure (tenth round: the suite's medians alone left the stream
 * where that iteration saved a quarter fewer pages than QEMU's did).
 *
 * Pure but for `fitHostCalibration` and `firstIterationLoss`, which run the simulator.
 */
import type { QemuTraceEvent } from '../../format/qemu-trace.ts';
import { LAB_CALIBRATION, type LabCalibration } from '../calibration.ts';
import { GUEST_UP_AT_INIT_HOST_S, GUEST_UP_AT_INIT_LAB_S, HOST_FIRST_TOUCH_WARM_NS } from '../calibration-host.ts';
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
  /** More loss under a calibration, beyond its rows' (QEMU's trace; default none). */
  readonly extraLoss?: (calibration: LabCalibration) => number;
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
  const lossOf = (k: LabCalibration, r: readonly FidelityRow[]): number => fidelityLoss(r) + (options.extraLoss?.(k) ?? 0);
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
  /** Whether QEMU's trace counts too (firstIterationLoss). */
  readonly trace: boolean;
}

/** The stream on the hint-off cases, the driver on the hint-on ones, then all together. */
export const HOST_FIT_STAGES: readonly FitStage[] = [
  { what: 'the stream, on the hint-off cases', keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs'], cases: (id) => id.includes('-hint-off'), trace: false },
  { what: 'the driver and the rescan, on the hint-on cases without postcopy-ram', keys: ['rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'], cases: (id) => id.includes('-hint-on') && !id.includes('-pc'), trace: false },
  {
    what: 'all of them together, on every case and QEMU\'s trace of the first iteration',
    keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs', 'rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'],
    cases: () => true,
    trace: true,
  },
];

/** QEMU's traced first iterations of one lab case: how long each ran and the pages it saved. */
export interface FirstIterationTrace {
  readonly caseId: string;
  readonly runs: readonly { readonly ms: number; readonly pages: number }[];
}

/** The case whose first iteration the fit compares: it starts with data, so the stream alone sets it. */
export const FIRST_ITERATION_CASE = 'm1024-alloc-1g-hint-on';

/**
 * The traced first iterations of FIRST_ITERATION_CASE in `traceRows` (trace-warm.jsonl): the
 * pages of each run's first `big-wait`.
 */
export function firstIterationTrace(traceRows: readonly LabRow[]): FirstIterationTrace {
  const runs = traceRows.filter((r) => caseId(keyOf(r)) === FIRST_ITERATION_CASE).map((r) => {
    const trace = (r as { readonly qemu_trace?: readonly QemuTraceEvent[] }).qemu_trace ?? [];
    const wait = trace.find((e) => e[1] === 'big-wait');
    if (wait === undefined || wait[1] !== 'big-wait') throw new Error(`trace run ${r.rep} of ${FIRST_ITERATION_CASE} has no big wait`);
    return { ms: wait[2], pages: wait[3] };
  });
  if (runs.length === 0) throw new Error(`no traced run of ${FIRST_ITERATION_CASE}`);
  return { caseId: FIRST_ITERATION_CASE, runs };
}

/** The pages the simulator's first iteration of the traced case saved under `calibration` (0: none ended on time). */
export function simulatedFirstIterationPages(sources: readonly LabSource[], derivation: readonly LabRow[], trace: FirstIterationTrace, calibration: LabCalibration): number {
  const file = labScenarioFiles(sources, derivation, calibration).find((f) => f.labCase.id === trace.caseId);
  if (file === undefined) throw new Error(`no lab scenario ${trace.caseId}`);
  const wait = simulatedChecks(loadScenario(file.yaml)).find((e) => e[1] === 'big-wait');
  return wait === undefined ? 0 : wait[3] as number;
}

/** The trace's loss under `calibration`: a figure against the traced runs' median. */
export function firstIterationLoss(sources: readonly LabSource[], derivation: readonly LabRow[], trace: FirstIterationTrace): (calibration: LabCalibration) => number {
  const sorted = trace.runs.map((r) => r.pages).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return (calibration) => figureLoss(median, simulatedFirstIterationPages(sources, derivation, trace, calibration));
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
  };
}

/**
 * `npm run lab -- --fit`: the host suites' calibration fitted on the warm suite (`sources`, the
 * guest's layout from `derivation`), stage by stage from hostFitStart(). `onStage` and `onStep`
 * report progress.
 */
export function fitHostCalibration(
  sources: readonly LabSource[],
  derivation: readonly LabRow[],
  trace: FirstIterationTrace,
  report: { readonly onStage?: (stage: FitStage, cases: number) => void; readonly onStep?: (step: FitStep, cases: number) => void; readonly onStageDone?: (result: FitResult, cases: number) => void } = {},
): LabCalibration {
  let calibration = hostFitStart();
  for (const stage of HOST_FIT_STAGES) {
    const cases = labScenarioFiles(sources, derivation).filter((f) => stage.cases(f.labCase.id)).length;
    report.onStage?.(stage, cases);
    const result = fitCalibration({
      start: calibration,
      keys: stage.keys,
      evaluate: (k) => labScenarioFiles(sources, derivation, k)
        .filter((f) => stage.cases(f.labCase.id))
        .map((f) => compareCase(f.labCase, loadScenario(f.yaml))),
      extraLoss: stage.trace ? firstIterationLoss(sources, derivation, trace) : undefined,
      onStep: (step) => report.onStep?.(step, cases),
    });
    report.onStageDone?.(result, cases);
    calibration = result.calibration;
  }
  return calibration;
}
