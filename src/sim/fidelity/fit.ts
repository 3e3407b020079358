/**
 * Fitting a calibration to a lab suite (`npm run lab -- --fit`): coordinate descent over some of
 * its constants. Each step multiplies one constant by one of a few factors, runs the suite's
 * cases in the simulator and keeps the change when the suite's loss falls; each round narrows
 * the factors (their square roots). Deterministic: the same suite and start give the same
 * constants.
 *
 * The loss sums, over every case and every figure the issue compares by ratio (total-time,
 * transferred, dirty-sync-count; not the downtime, which is held to an order of magnitude), the
 * squared log ratio of simulator to lab, plus 4 × how far the log ratio goes beyond the ±15%
 * tolerance: a figure just outside counts more than its squared error alone.
 *
 * Pure: the caller's `evaluate` runs the simulator.
 */
import type { LabCalibration } from '../calibration.ts';
import { FIDELITY_TOLERANCE, type FidelityRow } from './compare.ts';

/** The constants a fit may move. */
export type FitKey = 'linkBytesPerSec' | 'scanNsPerPage' | 'rescanNsPerPage' | 'switchoverNs' | 'hintBlockNs' | 'zeroTouchedPageNs' | 'zeroFreshPageNs';

/** Weight of the part of a log ratio beyond the tolerance. */
const OUTSIDE_WEIGHT = 4;
/** The first round's factors. */
const FACTORS = [0.6, 0.8, 1.25, 1.6];

/** The loss of a suite's rows (0: the simulator matches every median). */
export function fidelityLoss(rows: readonly FidelityRow[]): number {
  const tolerance = Math.log(1 + FIDELITY_TOLERANCE);
  let loss = 0;
  for (const row of rows) {
    for (const v of row.verdicts) {
      if (v.name === 'downtime' || typeof v.lab !== 'number' || typeof v.sim !== 'number') continue;
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
  let factors = FACTORS;
  for (let round = 0; round < (options.rounds ?? 3); round++) {
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
        options.onStep?.({ round, key, factor, calibration: best, loss, passed });
      }
    }
    factors = factors.map(Math.sqrt);
  }
  return { calibration: best, loss: bestLoss, passed, evaluations };
}
