// The calibration fitter. Acceptance criteria: the loss is 0 when the simulator matches every
// median, counts a figure beyond the tolerance more than its squared error, and ignores the
// downtime; coordinate descent finds the link rate behind "lab" medians the simulator itself
// produced, from the lab machine's rate, and never keeps a step that raises the loss; the host
// suites' committed constants are a minimum of the fit (`npm run lab -- --fit`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_CALIBRATION, type LabCalibration } from '../calibration.ts';
import { loadScenario } from '../scenario/scenario.ts';
import { compareCase, simulate, type FidelityRow } from './compare.ts';
import { hostSuiteCalibration } from '../calibration-host.ts';
import { DRIVER_PACE_128M, fidelityLoss, figureLoss, FIRST_ITERATION, FIT_TRACE_FIGURES, finestFactors, fitCalibration, HOST_FIT_STAGES, simulatedTraceFigure, traceLoss, tracedCaseIds, tracedFigure, tracedMedian } from './fit.ts';
import { LAB_DATA_DIR, LAB_WARM_HOST_FILES, parseLabJsonl, type LabCase } from './lab-data.ts';
import { labScenarioFiles } from './lab-scenario.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const rows = LAB_WARM_HOST_FILES.flatMap((f) => parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, f), 'utf8')));
const IDS = ['m1024-alloc-1g-hint-off', 'm1024-idle-1g-hint-off'];
const source = [{ source: 'warm-host', rows: rows.filter((r) => IDS.some((id) => id.startsWith(`m${r.mem_mib}-${r.wl}-${r.bw}-hint-${r.hint ? 'on' : 'off'}`)) && !r.pc) }];

function files(k: LabCalibration) {
  return labScenarioFiles(source, rows, k).filter((f) => IDS.includes(f.labCase.id));
}

/** Lab cases whose medians are the simulator's figures under `truth`. */
function madeBy(truth: LabCalibration): LabCase[] {
  return files(truth).map((f) => {
    const sim = simulate(loadScenario(f.yaml)).figures;
    const medians = { ...f.labCase.medians, totalTimeMs: sim.totalTimeMs, transferredBytes: sim.transferredBytes, dirtySyncCount: sim.dirtySyncCount, downtimeMs: sim.downtimeMs };
    return { ...f.labCase, medians };
  });
}

function evaluate(cases: readonly LabCase[]) {
  return (k: LabCalibration): FidelityRow[] => files(k).map((f) => compareCase(cases.find((c) => c.id === f.labCase.id)!, loadScenario(f.yaml)));
}

test('the loss: 0 for a perfect match, more beyond the tolerance than inside it, downtime only beyond 10×', () => {
  const truth = { ...LAB_CALIBRATION, linkBytesPerSec: 700_000_000 };
  const cases = madeBy(truth);
  assert.equal(cases.length, 2);
  assert.equal(fidelityLoss(evaluate(cases)(truth)), 0);
  const near = fidelityLoss(evaluate(cases)({ ...truth, linkBytesPerSec: 770_000_000 }));
  const far = fidelityLoss(evaluate(cases)({ ...truth, linkBytesPerSec: 1_050_000_000 }));
  assert.ok(near > 0 && far > 4 * near, `near ${near}, far ${far}`);
  const row = evaluate(cases)(truth)[0];
  const downtimeTimes = (k: number) => ({ ...row, verdicts: row.verdicts.map((v) => (v.name === 'downtime' ? { ...v, lab: Math.max(v.lab as number, 1), sim: Math.max(v.lab as number, 1) * k } : v)) });
  assert.equal(fidelityLoss([downtimeTimes(9)]), 0);
  assert.ok(Math.abs(fidelityLoss([downtimeTimes(50)]) - 4 * Math.log(5)) < 1e-9);
});

test('coordinate descent finds the link rate behind a suite the simulator made', () => {
  const truth = { ...LAB_CALIBRATION, linkBytesPerSec: 700_000_000 };
  const cases = madeBy(truth);
  const losses: number[] = [];
  const result = fitCalibration({ start: LAB_CALIBRATION, keys: ['linkBytesPerSec'], evaluate: evaluate(cases), onStep: (s) => losses.push(s.loss) });
  const error = result.calibration.linkBytesPerSec / truth.linkBytesPerSec - 1;
  assert.ok(Math.abs(error) < 0.03, `fitted ${result.calibration.linkBytesPerSec} B/s against ${truth.linkBytesPerSec}`);
  assert.equal(result.passed, 2);
  assert.ok(losses.length > 0 && losses.every((l, i) => i === 0 || l < losses[i - 1]), `each kept step lowers the loss: ${losses.join(', ')}`);
  assert.equal(result.calibration.scanNsPerPage, LAB_CALIBRATION.scanNsPerPage, 'keys not named stay');
});

test('the fit counts QEMU\'s trace: an extra loss moves the constants its rows alone would leave', () => {
  const truth = { ...LAB_CALIBRATION, linkBytesPerSec: 700_000_000 };
  const cases = madeBy(truth);
  // The rows are perfect at 700 MB/s; a trace that says 900 MB/s, weighted like one figure, pulls.
  const traced = fitCalibration({ start: truth, keys: ['linkBytesPerSec'], evaluate: evaluate(cases), extraLoss: (_rows, k) => 20 * Math.log(k.linkBytesPerSec / 900_000_000) ** 2 });
  assert.ok(traced.calibration.linkBytesPerSec > truth.linkBytesPerSec, `fitted ${traced.calibration.linkBytesPerSec} B/s`);
  const plain = fitCalibration({ start: truth, keys: ['linkBytesPerSec'], evaluate: evaluate(cases) });
  assert.equal(plain.calibration.linkBytesPerSec, truth.linkBytesPerSec);
  // The committed trace: three warm runs of the alloc guest at 1 GiB/s, each with its first big
  // wait, and three of the idle 2 GiB guest at 128 MiB/s, each with its first sync after the setup.
  const traceRows = parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, 'trace-warm.jsonl'), 'utf8'));
  assert.deepEqual([...tracedFigure(traceRows, FIRST_ITERATION).runs].sort((a, b) => a - b), [18176, 18816, 18944]);
  assert.deepEqual([...tracedFigure(traceRows, DRIVER_PACE_128M).runs].map(Math.round).sort((a, b) => a - b), [589, 591, 599]);
});

test('the trace loss reads the suite\'s own runs: the same as simulating each traced case apart, and an error without them', () => {
  const committed = hostSuiteCalibration('warm');
  const warm = [{ source: 'warm-host', rows }];
  const traceRows = parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, 'trace-warm.jsonl'), 'utf8'));
  const traced = FIT_TRACE_FIGURES.map((f) => tracedFigure(traceRows, f));
  const ids = tracedCaseIds(traced);
  const tracedFiles = labScenarioFiles(warm, rows, committed).filter((f) => ids.has(f.labCase.id));
  assert.equal(tracedFiles.length, ids.size);
  const shared = traceLoss(traced)(tracedFiles.map((f) => compareCase(f.labCase, loadScenario(f.yaml), { checks: true })));
  const apart = traced.reduce((loss, t) => loss + figureLoss(tracedMedian(t), simulatedTraceFigure(warm, rows, t.figure, committed)), 0);
  assert.ok(shared > 0);
  assert.equal(shared, apart);
  assert.throws(() => traceLoss(traced)(tracedFiles.map((f) => compareCase(f.labCase, loadScenario(f.yaml)))), /was not simulated with its checks/);
});

test('the host suites\' committed calibration is a minimum of the fit: no step of its last round lowers the loss', () => {
  // The whole fit (npm run lab -- --fit) takes minutes; its last round's steps from the committed
  // constants take one round. A simulator change that moves the minimum fails here until the fit
  // is run again and its output committed.
  const committed = hostSuiteCalibration('warm');
  const lastRound = finestFactors();
  const all = HOST_FIT_STAGES.at(-1)!;
  assert.ok(all.trace, 'the last stage counts QEMU\'s trace');
  const warm = [{ source: 'warm-host', rows }];
  const traceRows = parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, 'trace-warm.jsonl'), 'utf8'));
  const traced = FIT_TRACE_FIGURES.map((f) => tracedFigure(traceRows, f));
  const withChecks = tracedCaseIds(traced);
  const kept: string[] = [];
  const result = fitCalibration({
    start: committed,
    keys: all.keys,
    rounds: 1,
    factors: lastRound,
    evaluate: (k) => labScenarioFiles(warm, rows, k).map((f) => compareCase(f.labCase, loadScenario(f.yaml), { checks: withChecks.has(f.labCase.id) })),
    extraLoss: traceLoss(traced),
    onStep: (step) => kept.push(`${step.key} × ${step.factor.toFixed(3)}: loss ${step.loss.toFixed(3)}`),
  });
  assert.deepEqual(kept, [], 'run `npm run lab -- --fit` and commit its constants in calibration-host.ts');
  assert.equal(result.passed, 28, 'the warm suite within tolerance under the committed constants');
});
