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
 * log ratio goes past log 10.
 *
 * Pure: the caller's `evaluate` runs the simulator.
 */
import { LAB_CALIBRATION, type LabCalibration } from '../calibration.ts';
import { GUEST_UP_AT_INIT_HOST_S, GUEST_UP_AT_INIT_LAB_S, HOST_FIRST_TOUCH_WARM_NS } from '../calibration-host.ts';
import { loadScenario } from '../scenario/scenario.ts';
import { compareCase, DOWNTIME_FACTOR, FIDELITY_TOLERANCE, type FidelityRow } from './compare.ts';
import type { LabRow } from './lab-data.ts';
import { labScenarioFiles, type LabSource } from './lab-scenario.ts';

/** The constants a fit may move. */
export type FitKey = 'linkBytesPerSec' | 'scanNsPerPage' | 'rescanNsPerPage' | 'switchoverNs' | 'hintBlockNs' | 'zeroTouchedPageNs' | 'zeroFreshPageNs';

/** Weight of the part of a log ratio beyond the tolerance. */
const OUTSIDE_WEIGHT = 4;
/** Rounds of the last factors after the given rounds, while a round still keeps a step. */
const CONVERGE_ROUNDS_MAX = 8;
/** The first round's factors; each later round takes their square roots. */
export const FIT_FACTORS: readonly number[] = [0.6, 0.8, 1.25, 1.6];

/** The loss of a suite's rows (0: the simulator matches every median). */
export function fidelityLoss(rows: readonly FidelityRow[]): number {
  const tolerance = Math.log(1 + FIDELITY_TOLERANCE);
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
      const e = Math.abs(Math.log(Math.max(v.sim, 1e-3) / Math.max(v.lab, 1e-3)));
      loss += e * e + OUTSIDE_WEIGHT * Math.max(0, e - tolerance);
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
  let rows = options.evaluate(best);
  let bestLoss = fidelityLoss(rows);
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
        const loss = fidelityLoss(candidateRows);
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
}

/** The stream on the hint-off cases, the driver on the hint-on ones, then all together. */
export const HOST_FIT_STAGES: readonly FitStage[] = [
  { what: 'the stream, on the hint-off cases', keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs'], cases: (id) => id.includes('-hint-off') },
  { what: 'the driver and the rescan, on the hint-on cases without postcopy-ram', keys: ['rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'], cases: (id) => id.includes('-hint-on') && !id.includes('-pc') },
  { what: 'all of them together, on every case', keys: ['linkBytesPerSec', 'scanNsPerPage', 'switchoverNs', 'rescanNsPerPage', 'hintBlockNs', 'zeroTouchedPageNs', 'zeroFreshPageNs'], cases: () => true },
];

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
      onStep: (step) => report.onStep?.(step, cases),
    });
    report.onStageDone?.(result, cases);
    calibration = result.calibration;
  }
  return calibration;
}
