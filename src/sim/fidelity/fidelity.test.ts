// Fidelity: every guest-lab case (testdata/guest-lab/*.jsonl, a real Debian 6.1 guest under
// QEMU 7.2) run as its scenario (scenarios/lab/*.yaml) in the simulator and compared with the
// lab's medians. Acceptance criteria: the scenarios are the ones the lab data and the
// calibration produce; the convergence verdict matches; total-time, transferred and
// dirty-sync-count within ±15%; downtime within 10× (documented deviations are held to the lab
// runs' own spread instead, and must still deviate); the three effects of free page hinting
// and QEMU 7.2's postcopy-ram overrule show in the simulator as they do in the lab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_FIRST_TOUCH_COLD_NS, HOST_FIRST_TOUCH_WARM_NS, hostSuiteCalibration } from '../calibration-host.ts';
import { simulatedChecks } from './checks.ts';
import { DRIVER_PACE_128M, DRIVER_PACE_1G, FIRST_ITERATION, FIRST_ITERATION_IOA0, tracedFigure, tracedMedian } from './fit.ts';
import { bracketedSyncsMs, type QemuTraceEvent } from '../../format/qemu-trace.ts';
import { HUGE_PAGE_PAGES } from '../dest-faults.ts';
import { loadScenario, parseOverride } from '../scenario/scenario.ts';
import { compareCase, FIDELITY_TOLERANCE, simulate, withinLabSpread, type FidelityRow } from './compare.ts';
import { COLD_HOST_KNOWN_DEVIATIONS, KNOWN_DEVIATIONS, knownDeviation, WARM_HOST_KNOWN_DEVIATIONS, type KnownDeviation } from './known-deviations.ts';
import { caseId, keyOf, median, LAB_COLD_HOST_FACTS, LAB_COLD_HOST_FILES, LAB_COLD_HOST_SCENARIO_DIR, LAB_DATA_DIR, LAB_DATA_FILES, LAB_SCENARIO_DIR, LAB_WARM_HOST_FILES, LAB_WARM_HOST_SCENARIO_DIR, labCases, parseLabJsonl } from './lab-data.ts';
import { labScenarioFiles, type LabScenarioFile } from './lab-scenario.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const read = (list: readonly string[]) => list.map((f) => ({ source: `${LAB_DATA_DIR}/${f}`, rows: parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, f), 'utf8')) }));
const sources = read(LAB_DATA_FILES);
const files = labScenarioFiles(sources);
// The host suites: the same cases on another machine, warm and cold, under its calibration; the
// guest's layout from its warm runs.
const warmHostRows = read(LAB_WARM_HOST_FILES).flatMap((s) => s.rows);
const warmFiles = labScenarioFiles(read(LAB_WARM_HOST_FILES), warmHostRows, hostSuiteCalibration('warm'));
const coldFiles = labScenarioFiles(read(LAB_COLD_HOST_FILES), warmHostRows, hostSuiteCalibration('cold'));
// QEMU's own trace of warm runs (npm run lab -- --trace-migration --host-memory warm).
const traceRows = read(['trace-warm.jsonl'])[0].rows;

/** Each case of a suite simulated once, from its committed scenario file. */
function suite(list: readonly LabScenarioFile[], dir: string): (id: string) => FidelityRow {
  const rows = new Map<string, FidelityRow>();
  return (id) => {
    let row = rows.get(id);
    if (row === undefined) {
      const file = list.find((f) => f.labCase.id === id);
      assert.ok(file !== undefined, `no lab case ${id}`);
      const text = readFileSync(join(ROOT, dir, file.file), 'utf8');
      row = compareCase(file.labCase, loadScenario(text));
      rows.set(id, row);
    }
    return row;
  };
}
const rowOf = suite(files, LAB_SCENARIO_DIR);
const warmRowOf = suite(warmFiles, LAB_WARM_HOST_SCENARIO_DIR);
const coldRowOf = suite(coldFiles, LAB_COLD_HOST_SCENARIO_DIR);

/**
 * The simulator's figure of a lab case's scenario on a cold host: the lab machine's calibration
 * folds a warm first touch into its link rate, so the destination pays the probe's difference,
 * cold less warm, on top.
 */
function coldFigure(file: LabScenarioFile, figure: 'total-time'): number {
  const text = readFileSync(join(ROOT, LAB_SCENARIO_DIR, file.file), 'utf8');
  const scenario = loadScenario(text, [parseOverride(`host.destination-fault=${HOST_FIRST_TOUCH_COLD_NS - HOST_FIRST_TOUCH_WARM_NS}ns`)!]);
  const sim = simulate(scenario).figures;
  return figure === 'total-time' ? sim.totalTimeMs : Number.NaN;
}

/** Every figure of a case within tolerance, or, for a listed deviation, within its looser check. */
function assertCase(f: LabScenarioFile, row: FidelityRow, known: readonly KnownDeviation[]): void {
  for (const v of row.verdicts) {
    const entry = knownDeviation(f.labCase.id, v.name, known);
    if (entry === undefined) {
      assert.ok(v.ok, `${v.name}: lab ${v.lab}, simulator ${v.sim} (${v.deviation})`);
      continue;
    }
    assert.ok(!v.ok, `${v.name} is within tolerance now (${v.deviation}): remove it from known-deviations.ts`);
    if (entry.check === 'spread') {
      assert.equal(withinLabSpread(f.labCase, v), null, `known deviation (${entry.reason})`);
    } else if (entry.check === 'host-state') {
      // Between the warm host's prediction (the scenario) and the cold host's, each widened by the tolerance.
      const warm = v.sim as number;
      const cold = coldFigure(f, 'total-time');
      const lab = v.lab as number;
      assert.ok(lab >= warm * 0.85 && lab <= cold * 1.15, `${v.name}: lab ${lab} outside warm ${warm} .. cold ${cold} (±15%) (${entry.reason})`);
    } else {
      const dev = Math.abs((v.sim as number) - (v.lab as number)) / (v.lab as number);
      assert.ok(dev <= entry.check.tolerance, `${v.name} ${v.deviation} beyond the known deviation's ±${entry.check.tolerance * 100}% (${entry.reason})`);
    }
  }
}

test('the data region at the top of RAM is what the idle 128 MiB/s hint-off runs left for the downtime', () => {
  // The median of the main suite's three runs per size (18.0-18.1 MiB; 25.8-29.4 MiB), in whole pages.
  const main = sources.find((s) => s.source.endsWith('/main.jsonl'))!.rows;
  for (const mem of [1024, 2048]) {
    const runs = main.filter((r) => r.mem_mib === mem && r.wl === 'idle' && !r.hint && r.bw === '128m').map((r) => r.downtime_bytes as number).sort((a, b) => a - b);
    assert.equal(runs.length, 3);
    const top = Math.floor(runs[1] / 4096) * 4096;
    const yaml = files.find((f) => f.labCase.id === `m${mem}-idle-1g-hint-off`)!.yaml;
    assert.match(yaml, new RegExp(`reserved-top: ${top},`));
  }
});

test('scenarios/lab holds exactly the scenarios the lab data and the calibration give', () => {
  const committed = readdirSync(join(ROOT, LAB_SCENARIO_DIR)).filter((f) => f.endsWith('.yaml')).sort();
  assert.deepEqual(committed, files.map((f) => f.file).sort(), 'run `npm run lab -- --write-scenarios`');
  for (const f of files) {
    assert.equal(readFileSync(join(ROOT, LAB_SCENARIO_DIR, f.file), 'utf8'), f.yaml, `${f.file} is stale: run \`npm run lab -- --write-scenarios\``);
  }
  assert.equal(files.length, 32, 'main (16), postcopy (8) and init_on_alloc=0 (8) cases');
});

test('every lab case: verdict, total-time, transferred, dirty-sync-count within ±15%, downtime within 10×', async (t) => {
  for (const f of files) await t.test(f.labCase.id, () => assertCase(f, rowOf(f.labCase.id), KNOWN_DEVIATIONS));
  assert.ok(KNOWN_DEVIATIONS.every((d) => files.some((f) => f.labCase.id === d.caseId)), 'every known deviation names a lab case');
});

test('the main suite measured one migration twice and no single prediction is within ±15% of both medians', () => {
  // Without hinting, init_on_alloc=0 changes nothing the migration sees: the idle 1 GiB guest at
  // 1 GiB/s sent the same bytes both times. Its total times split between the host's warm and
  // cold memory (docs/fidelity.md, sixth round), so the medians are 210 and 283 ms. A value within
  // ±15% of both would have to lie in [283 / 1.15, 210 × 1.15] = [246, 241.5], which is empty.
  // Any deterministic simulator misses one of them by the rule; known-deviations.ts holds the
  // slower one to the span between the warm and the cold prediction instead.
  const a = rowOf('m1024-idle-1g-hint-off').lab;
  const b = rowOf('m1024-idle-1g-hint-off-ioa0').lab;
  assert.ok(Math.abs(a.transferredBytes / b.transferredBytes - 1) < 0.01, `the same bytes: ${a.transferredBytes} and ${b.transferredBytes}`);
  assert.equal(a.dirtySyncCount, b.dirtySyncCount);
  const [low, high] = [a.totalTimeMs, b.totalTimeMs].sort((x, y) => x - y);
  assert.ok(high / (1 + FIDELITY_TOLERANCE) > low * (1 + FIDELITY_TOLERANCE), `${low} and ${high} ms: a prediction can cover both`);
  assert.ok(knownDeviation('m1024-idle-1g-hint-off-ioa0', 'total-time') !== undefined);
});

for (const [memory, list, dir, touchNs] of [['warm', warmFiles, LAB_WARM_HOST_SCENARIO_DIR, HOST_FIRST_TOUCH_WARM_NS], ['cold', coldFiles, LAB_COLD_HOST_SCENARIO_DIR, HOST_FIRST_TOUCH_COLD_NS]] as const) {
  test(`scenarios/lab/${memory}-host holds exactly the scenarios the ${memory}-host suite and its calibration give`, () => {
    const committed = readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(committed, list.map((f) => f.file).sort(), 'run `npm run lab -- --write-scenarios`');
    for (const f of list) {
      assert.equal(readFileSync(join(ROOT, dir, f.file), 'utf8'), f.yaml, `${f.file} is stale: run \`npm run lab -- --write-scenarios\``);
      // Warm and cold differ only in the probe's first touch: the destination's, and the driver's on never-touched pages.
      assert.match(f.yaml, new RegExp(`destination-fault: ${touchNs}ns`));
      assert.match(f.yaml, new RegExp(`zero-fresh-page: ${hostSuiteCalibration(memory).zeroFreshPageNs}ns`));
    }
    assert.equal(list.length, 32, `the 32 lab cases measured again, ${memory}`);
  });
}

for (const [memory, list, rowOf_, known] of [['warm', warmFiles, warmRowOf, WARM_HOST_KNOWN_DEVIATIONS], ['cold', coldFiles, coldRowOf, COLD_HOST_KNOWN_DEVIATIONS]] as const) {
  test(`every ${memory}-host case: verdict, total-time, transferred, dirty-sync-count within ±15%, downtime within 10×`, async (t) => {
    for (const f of list) await t.test(f.labCase.id, () => assertCase(f, rowOf_(f.labCase.id), known));
    assert.ok(known.every((d) => list.some((f) => f.labCase.id === d.caseId)), 'every known deviation names a lab case');
  });
}

test('on one machine, the same migrations cold and warm differ by about the probe\'s first-touch cost per 2 MiB written', () => {
  // The A/B: the cold-host suite and, right after, the same cases with --host-memory warm.
  const facts = JSON.parse(readFileSync(join(ROOT, LAB_DATA_DIR, LAB_COLD_HOST_FACTS), 'utf8')) as { host_probe: { median_ms_per_2mib: { cold: number; warm: number } } };
  const probe = facts.host_probe.median_ms_per_2mib;
  // The host suites' calibration takes the probe as measured.
  assert.equal(Math.round(probe.cold * 1e6), HOST_FIRST_TOUCH_COLD_NS);
  assert.equal(Math.round(probe.warm * 1e6), HOST_FIRST_TOUCH_WARM_NS);
  const extraMs = probe.cold - probe.warm;
  assert.ok(extraMs > 3 && extraMs < 6, `the probe: ${probe.cold} ms cold, ${probe.warm} ms warm per 2 MiB`);
  const warm = labCases(read(LAB_WARM_HOST_FILES).flatMap((s) => s.rows));
  const cold = labCases(read(LAB_COLD_HOST_FILES).flatMap((s) => s.rows));
  const pair = (id: string) => [warm.find((c) => c.id === id)!, cold.find((c) => c.id === id)!] as const;
  for (const id of ['m1024-alloc-1g-hint-off', 'm2048-alloc-1g-hint-off']) {
    const [w, c] = pair(id);
    assert.ok(w.completed >= 3, `${id}: ${w.completed} warm runs`);
    const regions = c.medians.normalPages / HUGE_PAGE_PAGES;
    const perRegionMs = (c.medians.totalTimeMs - w.medians.totalTimeMs) / regions;
    // The receiver's faults overlap the sender's work a little: a bit under the bare touch.
    assert.ok(perRegionMs > 0.7 * extraMs && perRegionMs < 1.05 * extraMs, `${id}: ${c.medians.totalTimeMs} ms cold, ${w.medians.totalTimeMs} ms warm, ${perRegionMs.toFixed(2)} ms per region against the probe's ${extraMs.toFixed(2)}`);
  }
  const [w, c] = pair('m1024-alloc-128m-hint-off');
  assert.ok(Math.abs(c.medians.totalTimeMs / w.medians.totalTimeMs - 1) < 0.05, `128 MiB/s: ${c.medians.totalTimeMs} ms cold, ${w.medians.totalTimeMs} ms warm`);
});

test('on one machine a cold host makes a full-speed migration of data about 3 times as long, in the lab and in the simulator', () => {
  // The alloc guests without hinting at 1 GiB/s write every 2 MiB of the destination's RAM; the
  // host suites' scenarios differ only in the probe's first-touch cost.
  for (const mem of SIZES) {
    const id = `m${mem}-alloc-1g-hint-off`;
    const warm = warmRowOf(id);
    const cold = coldRowOf(id);
    const ratio = (side: 'lab' | 'sim') => cold[side].totalTimeMs / warm[side].totalTimeMs;
    for (const side of ['lab', 'sim'] as const) {
      assert.ok(ratio(side) > 2.5 && ratio(side) < 3.6, `${id} ${side}: cold ${cold[side].totalTimeMs} ms against ${warm[side].totalTimeMs} ms (${ratio(side).toFixed(2)}x)`);
      assert.ok(Math.abs(cold[side].transferredBytes / warm[side].transferredBytes - 1) < 0.03, `${id} ${side}: the same bytes`);
    }
    assert.ok(Math.abs(ratio('sim') / ratio('lab') - 1) < FIDELITY_TOLERANCE, `${id}: the simulator's ${ratio('sim').toFixed(2)}x against the lab's ${ratio('lab').toFixed(2)}x`);
    // Rate-limited at 128 MiB/s, the faults hide in the windows the migration thread sleeps.
    const slowWarm = warmRowOf(`m${mem}-alloc-128m-hint-off`);
    const slowCold = coldRowOf(`m${mem}-alloc-128m-hint-off`);
    for (const side of ['lab', 'sim'] as const) {
      assert.ok(Math.abs(slowCold[side].totalTimeMs / slowWarm[side].totalTimeMs - 1) < 0.05, `${mem} MiB 128 MiB/s ${side}: ${slowCold[side].totalTimeMs} against ${slowWarm[side].totalTimeMs} ms`);
    }
  }
});

test('the fitted stream agrees with QEMU\'s own trace: pages one 51 ms iteration saves', () => {
  // The alloc guest at 1 GiB/s starts with data (the workload filled RAM from the bottom): its
  // first iteration stops at MAX_WAIT (51 ms) before the rate limit's 107 MB, so its page count
  // measures the stream while the driver hints (the simulated host shares its cores with the
  // hinting vCPU, host-cpu.ts). Since the eleventh round the fit counts these traces as one more
  // figure (fit.ts FIT_TRACE_FIGURES); before, it never saw them (docs/fidelity.md).
  const traced = tracedFigure(traceRows, FIRST_ITERATION);
  assert.equal(traced.runs.length, 3);
  for (const r of traceRows.filter((row) => caseId(keyOf(row)) === FIRST_ITERATION.caseId)) {
    const wait = ((r as { readonly qemu_trace?: readonly QemuTraceEvent[] }).qemu_trace ?? []).find((e) => e[1] === 'big-wait');
    assert.ok(wait !== undefined && wait[1] === 'big-wait' && wait[2] >= 51 && wait[2] <= 52, `QEMU's first iteration stopped at MAX_WAIT (${wait?.[2]} ms)`);
  }
  const scenario = readFileSync(join(ROOT, LAB_WARM_HOST_SCENARIO_DIR, `${FIRST_ITERATION.caseId}.yaml`), 'utf8');
  const simulated = simulatedChecks(loadScenario(scenario)).find((e) => e[1] === 'big-wait');
  assert.ok(simulated !== undefined && simulated[1] === 'big-wait');
  assert.equal(simulated[2], 51, 'the simulated first iteration stopped at MAX_WAIT');
  for (const pages of traced.runs) {
    assert.ok(Math.abs(simulated[3] / pages - 1) < FIDELITY_TOLERANCE, `QEMU saved ${pages} pages in 51 ms, the simulator ${simulated[3]}`);
  }
});

test('the init_on_alloc=0 twin\'s first iteration agrees with QEMU\'s trace too: the driver takes the freed blocks top-down, away from the scan', () => {
  // The workload filled RAM bottom-up and freed it in the same order, so Linux's list hands the
  // driver the highest freed block first (buddy.ts). The test above holds the init_on_alloc=1 twin,
  // whose driver zeroes what it takes: had it taken the lowest first, the scan would meet those
  // zero pages within its first 51 ms and save far more than QEMU (thirteenth round). Here nothing
  // is zeroed and the stream runs faster (the vCPU is idle): 25,792-28,608 pages, held to the median.
  const traced = tracedFigure(traceRows, FIRST_ITERATION_IOA0);
  assert.equal(traced.runs.length, 3);
  const scenario = readFileSync(join(ROOT, LAB_WARM_HOST_SCENARIO_DIR, `${FIRST_ITERATION_IOA0.caseId}.yaml`), 'utf8');
  const simulated = FIRST_ITERATION_IOA0.read(simulatedChecks(loadScenario(scenario)));
  assert.ok(simulated !== null);
  assert.ok(Math.abs(simulated / tracedMedian(traced) - 1) < FIDELITY_TOLERANCE, `QEMU saved ${traced.runs.join(', ')} pages, the simulator ${simulated}`);
});

test('the dirty sync costs next to nothing in QEMU\'s trace, so the simulator\'s sync takes no time', () => {
  // A sync that follows a closed bandwidth window (guest running, iothread lock taken) or the
  // guest's stop is bracketed by the trace (format/qemu-trace.ts bracketedSyncsMs). In every traced
  // run, warm and cold, 1 and 2 GiB, such a sync took a fraction of a ms; charged at the running
  // median, all of a run's syncs come to under 2% of its total time (calibration.ts).
  const rows = read(['trace-warm.jsonl', 'trace-cold.jsonl']).flatMap((s) => s.rows);
  const running: number[] = [];
  const stopped: number[] = [];
  for (const r of rows) {
    const b = bracketedSyncsMs((r as { readonly qemu_trace?: readonly QemuTraceEvent[] }).qemu_trace ?? []);
    running.push(...b.running);
    stopped.push(...b.stopped);
  }
  assert.ok(running.length >= 10 && stopped.length >= 20, `${running.length} running and ${stopped.length} stopped syncs bracketed`);
  assert.ok(median(running) <= 0.3, `a running sync took ${median(running)} ms (median of ${running.length})`);
  assert.ok(median(stopped) <= 0.3, `a sync after the stop took ${median(stopped)} ms (median of ${stopped.length})`);
  for (const r of rows) {
    assert.ok(typeof r.dirty_sync_count === 'number' && typeof r.total_time_ms === 'number', `${caseId(keyOf(r))} rep ${r.rep}: completed`);
    const share = (r.dirty_sync_count * median(running)) / r.total_time_ms;
    assert.ok(share < 0.02, `${caseId(keyOf(r))} rep ${r.rep}: ${r.dirty_sync_count} syncs are ${(share * 100).toFixed(1)}% of ${r.total_time_ms} ms`);
  }
});

test('the fitted driver agrees with QEMU\'s own trace: pages it zeroes per ms, at 128 MiB/s and, unseen by the fit, at 1 GiB/s', () => {
  // An idle guest's dirty pages at the first sync after the setup are the hint blocks its driver
  // zeroed (init_on_alloc=1). At 128 MiB/s the host is the driver's; the fit counts that figure
  // (twelfth round). At 1 GiB/s the stream's two threads share the host's two cores with the
  // vCPU (host-cpu.ts); the fit never sees those runs, so they check the shared host.
  for (const figure of [DRIVER_PACE_128M, ...DRIVER_PACE_1G]) {
    const traced = tracedFigure(traceRows, figure);
    assert.equal(traced.runs.length, 3, figure.caseId);
    const scenario = readFileSync(join(ROOT, LAB_WARM_HOST_SCENARIO_DIR, `${figure.caseId}.yaml`), 'utf8');
    const simulated = figure.read(simulatedChecks(loadScenario(scenario)));
    assert.ok(simulated !== null, `${figure.caseId}: the simulator synced after the setup`);
    const median = tracedMedian(traced);
    assert.ok(Math.abs(simulated / median - 1) < FIDELITY_TOLERANCE,
      `${figure.caseId}: QEMU's driver zeroed ${traced.runs.map((v) => v.toFixed(0)).join(', ')} pages per ms, the simulator's ${simulated.toFixed(0)}`);
  }
});

/** lab and simulator rows of the alloc or idle case with these knobs (init_on_alloc=1). */
function pair(mem: number, wl: 'alloc' | 'idle', bw: '1g' | '128m', hint: boolean, pc = false): FidelityRow {
  return rowOf(`m${mem}-${wl}-${bw}-hint-${hint ? 'on' : 'off'}${pc ? '-pc' : ''}`);
}

const SIZES = [1024, 2048];

test('hinting cuts the bytes of a guest that freed most of its memory, at 128 MiB/s', () => {
  for (const mem of SIZES) {
    const on = pair(mem, 'alloc', '128m', true);
    const off = pair(mem, 'alloc', '128m', false);
    for (const side of ['lab', 'sim'] as const) {
      const ratio = on[side].transferredBytes / off[side].transferredBytes;
      assert.ok(ratio < 0.3, `${mem} MiB ${side}: hinting sent ${(ratio * 100).toFixed(0)}% of the hint-off bytes`);
      assert.ok(on[side].totalTimeMs < off[side].totalTimeMs / 3, `${mem} MiB ${side}: hinting should be several times faster`);
    }
  }
});

test('at 1 GiB/s the bulk pass outruns hinting: far more bytes than at 128 MiB/s, still far fewer than without', () => {
  for (const mem of SIZES) {
    const fast = pair(mem, 'alloc', '1g', true);
    const slow = pair(mem, 'alloc', '128m', true);
    const off = pair(mem, 'alloc', '1g', false);
    for (const side of ['lab', 'sim'] as const) {
      assert.ok(fast[side].transferredBytes > 1.5 * slow[side].transferredBytes, `${mem} MiB ${side}: ${fast[side].transferredBytes} vs ${slow[side].transferredBytes} at 128 MiB/s`);
      assert.ok(fast[side].normalPages > slow[side].normalPages + 25_000, `${mem} MiB ${side}: the scan sent freed data before the hints reached it`);
      assert.ok(fast[side].transferredBytes < 0.75 * off[side].transferredBytes, `${mem} MiB ${side}: hinting still saves`);
    }
  }
});

test('a freshly booted guest has nothing to gain: its free memory is zero pages, and hinting makes it slower', () => {
  for (const mem of SIZES) {
    for (const bw of ['1g', '128m'] as const) {
      const on = pair(mem, 'idle', bw, true);
      const off = pair(mem, 'idle', bw, false);
      for (const side of ['lab', 'sim'] as const) {
        assert.ok(on[side].transferredBytes > 0.9 * off[side].transferredBytes, `${mem} MiB ${bw} ${side}: no bytes to save`);
        assert.ok(on[side].totalTimeMs > off[side].totalTimeMs, `${mem} MiB ${bw} ${side}: ${on[side].totalTimeMs} ms with hinting, ${off[side].totalTimeMs} without`);
        assert.ok(on[side].dirtySyncCount > off[side].dirtySyncCount, `${mem} MiB ${bw} ${side}: the zeroed blocks cost extra passes`);
      }
    }
  }
});

test('overrule: with postcopy-ram on, QEMU 7.2 hints nothing, so free-page-hint=on migrates like off', () => {
  for (const mem of SIZES) {
    for (const bw of ['1g', '128m'] as const) {
      const on = pair(mem, 'alloc', bw, true, true);
      const off = pair(mem, 'alloc', bw, false, true);
      const plain = pair(mem, 'alloc', bw, true);
      assert.equal(on.sim.hintedPages, 0, `${mem} MiB ${bw}: the simulated guest hinted`);
      assert.ok(on.lab.hintedPages < 2_000, `${mem} MiB ${bw}: the lab guest's MemFree fell by ${on.lab.hintedPages} pages`);
      // The lab counts what MemFree lost, the simulator the dirty bits the hints cleared.
      const tenth = (mem * 256) / 10;
      assert.ok(plain.sim.hintedPages > tenth && plain.lab.hintedPages > tenth, `without postcopy-ram the same guest hints: ${plain.sim.hintedPages} pages simulated, ${plain.lab.hintedPages} in the lab`);
      for (const side of ['lab', 'sim'] as const) {
        const ratio = on[side].transferredBytes / off[side].transferredBytes;
        assert.ok(Math.abs(ratio - 1) < 0.03, `${mem} MiB ${bw} ${side}: ${(ratio * 100).toFixed(1)}% of the hint-off bytes`);
      }
    }
  }
});
