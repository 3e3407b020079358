/**
 * `npm run lab` (scripts/lab.ts): the guest lab from livemig's side (docs/fidelity.md).
 *
 *   npm run lab                            measure one case with a real guest under the local QEMU
 *                                          (default m1024-alloc-128m-hint-on, 1 run) and print it
 *                                          next to the simulator's prediction
 *   npm run lab -- --case ID... [--reps N] [--out FILE.jsonl] [--logs DIR] [--post S] [--host-memory as-is|warm] [--trace-migration]
 *                                          (warm: a throwaway QEMU touches and frees the guest's
 *                                          size just before the destination starts; host-probe.ts;
 *                                          --trace-migration: the source QEMU's convergence trace,
 *                                          printed and kept as qemu_trace, and the destination's
 *                                          load of the final pass, as qemu_dst_load; qemu-trace.ts)
 *   npm run lab -- --table [FILE.jsonl...] lab medians against the simulator, for the committed
 *                                          results or the given files (no QEMU needed)
 *   npm run lab -- --table --warm|--cold [FILE.jsonl...]
 *                                          the same for a host suite (testdata/guest-lab/warm-host.jsonl,
 *                                          cold-host.jsonl) under that machine's calibration, warm or
 *                                          cold (src/sim/calibration-host.ts)
 *   npm run lab -- --write-scenarios       regenerate scenarios/lab/*.yaml, scenarios/lab/warm-host/
 *                                          and scenarios/lab/cold-host/ from testdata/guest-lab
 *   npm run lab -- --checks ID [--warm|--cold]
 *                                          the simulator's convergence checks and syncs for a case (its
 *                                          committed scenario; main suite unless --warm/--cold),
 *                                          then QEMU's for each traced run of it
 *                                          (testdata/guest-lab/trace-warm.jsonl, trace-cold.jsonl)
 *   npm run lab -- --fit                   fit the host suites' calibration on the warm suite
 *                                          (src/sim/fidelity/fit.ts; a few minutes) and print it
 *                                          with both suites' tables
 *   npm run lab -- --host-probe [--reps N] what first touching QEMU guest RAM costs this host, cold
 *                                          (memory idle 10 s) and warm (just freed), per 2 MiB
 *                                          (src/harness/lab/host-probe.ts)
 *   npm run lab -- --hint-stale [--case ID]... [--reps N] [--accel tcg|kvm] [--unaligned-ram] [--out FILE.jsonl]
 *                                          ramdiff-style runs (destination paused, both RAMs
 *                                          compared page by page) that print stale pages and
 *                                          the source's zero-page layout (its runs of 32+ pages)
 *                                          (src/harness/lab/hint-stale.ts; default case
 *                                          m1024-alloc-1g-hint-on)
 *
 * A case id is the lab's: m<MiB>-<idle|alloc>-<bw>-hint-<on|off>[-pc][-ioa0] (pc: postcopy-ram
 * on, never started; ioa0: the guest boots with init_on_alloc=0).
 *
 * Measuring needs qemu-system-x86_64 (QEMU 7.2 was used), apt-get, apt-cache and dpkg-deb
 * (Debian's kernel and busybox-static packages, about 72 MB, downloaded once into a cache), and
 * network access for apt. Without them it says what is missing and exits 2. Each run takes
 * 20-40 s on 2 cores; the timings mean something only on an otherwise idle host.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuAvailability } from '../harness/qemu.ts';
import { buildLabArtifacts, LabUnavailableError, missingTool } from '../harness/lab/artifacts.ts';
import { LAB_BW, labRun } from '../harness/lab/lab-run.ts';
import { hintStaleLine, hintStaleRun } from '../harness/lab/hint-stale.ts';
import { probeFirstTouch } from '../harness/lab/host-probe.ts';
import { qemuTraceLines, type QemuDestinationLoad, type QemuTraceEvent } from '../format/qemu-trace.ts';
import { LAB_CALIBRATION, type LabCalibration } from '../sim/calibration.ts';
import { firstTouchPerPageNs, HOST_FIRST_TOUCH_COLD_NS, HOST_FIRST_TOUCH_WARM_NS, hostSuiteCalibration } from '../sim/calibration-host.ts';
import { compareCase } from '../sim/fidelity/compare.ts';
import { FIT_TRACE_FIGURES, fitHostCalibration, HOST_FIT_STAGES, simulatedTraceFigure, tracedFigure } from '../sim/fidelity/fit.ts';
import { simulatedChecks } from '../sim/fidelity/checks.ts';
import { caseId, keyOf, LAB_COLD_HOST_FILES, LAB_COLD_HOST_SCENARIO_DIR, LAB_DATA_DIR, LAB_DATA_FILES, LAB_SCENARIO_DIR, LAB_WARM_HOST_FILES, LAB_WARM_HOST_SCENARIO_DIR, parseLabJsonl, type LabRow } from '../sim/fidelity/lab-data.ts';
import { labScenarioFiles, type LabSource } from '../sim/fidelity/lab-scenario.ts';
import { fidelityTable } from '../sim/fidelity/table.ts';
import { loadScenario } from '../sim/scenario/scenario.ts';

export const DEFAULT_LAB_CASE = 'm1024-alloc-128m-hint-on';
export const DEFAULT_HINT_STALE_CASE = 'm1024-alloc-1g-hint-on';
const EXIT_UNAVAILABLE = 2;

interface LabArgs {
  readonly cases: string[];
  readonly reps: number;
  readonly out: string | null;
  readonly logs: string | null;
  readonly postS: number;
  readonly hintStale: boolean;
  readonly accel: 'tcg' | 'kvm';
  readonly unalignedRam: boolean;
  readonly hostMemory: 'as-is' | 'warm';
  /** `--host-probe`: probe the host's first-touch cost instead of measuring cases. */
  readonly hostProbe: boolean;
  /** Whether --reps was given (the probe's default is 3 rounds, a measurement's 1 run). */
  readonly repsGiven: boolean;
  /** `--trace-migration`: record and print the source QEMU's convergence trace. */
  readonly traceMigration: boolean;
}

/** A case id's knobs, or null when it is not one. */
export function parseCaseId(id: string): { memMib: number; wl: 'idle' | 'alloc'; bw: string; hint: boolean; pc: boolean; initOnAlloc: boolean } | null {
  const m = /^m(\d+)-(idle|alloc)-(\w+)-hint-(on|off)(-pc)?(-ioa0)?$/.exec(id);
  if (m === null || LAB_BW[m[3]] === undefined) return null;
  return { memMib: Number(m[1]), wl: m[2] as 'idle' | 'alloc', bw: m[3], hint: m[4] === 'on', pc: m[5] !== undefined, initOnAlloc: m[6] === undefined };
}

function readSources(root: string, files: readonly string[]): LabSource[] {
  return files.map((f) => ({ source: `${LAB_DATA_DIR}/${f}`, rows: parseLabJsonl(readFileSync(join(root, LAB_DATA_DIR, f), 'utf8')) }));
}

function committedSources(root: string): LabSource[] {
  return readSources(root, LAB_DATA_FILES);
}

/** The warm runs of the host suites' machine: the guest's layout for both host suites. */
function warmHostRows(root: string): LabRow[] {
  return readSources(root, LAB_WARM_HOST_FILES).flatMap((s) => s.rows);
}

function writeScenarioDir(root: string, dirName: string, files: readonly { file: string; yaml: string }[]): void {
  const dir = join(root, dirName);
  mkdirSync(dir, { recursive: true });
  const keep = new Set(files.map((f) => f.file));
  for (const name of readdirSync(dir)) if (name.endsWith('.yaml') && !keep.has(name)) unlinkSync(join(dir, name));
  for (const f of files) writeFileSync(join(dir, f.file), f.yaml);
  console.log(`wrote ${files.length} scenarios to ${dirName}/`);
}

function writeScenarios(root: string): number {
  const committed = committedSources(root);
  writeScenarioDir(root, LAB_SCENARIO_DIR, labScenarioFiles(committed));
  const warmRows = warmHostRows(root);
  writeScenarioDir(root, LAB_WARM_HOST_SCENARIO_DIR, labScenarioFiles(readSources(root, LAB_WARM_HOST_FILES), warmRows, hostSuiteCalibration('warm')));
  writeScenarioDir(root, LAB_COLD_HOST_SCENARIO_DIR, labScenarioFiles(readSources(root, LAB_COLD_HOST_FILES), warmRows, hostSuiteCalibration('cold')));
  return 0;
}

function printTable(sources: readonly LabSource[], derivation: readonly LabRow[], calibration: LabCalibration = LAB_CALIBRATION): void {
  const rows = labScenarioFiles(sources, derivation, calibration).map((f) => compareCase(f.labCase, loadScenario(f.yaml)));
  console.log(fidelityTable(rows));
}

/** The file of the traced runs (npm run lab -- --trace-migration --host-memory warm). */
const TRACED_RUNS: readonly string[] = ['trace-warm.jsonl', 'trace-cold.jsonl'];

function checks(root: string, argv: readonly string[]): number {
  const rest = argv.filter((a) => a !== '--checks' && a !== '--warm' && a !== '--cold');
  const id = rest[0];
  if (rest.length !== 1 || parseCaseId(id) === null) {
    console.error('npm run lab: --checks takes one lab case id (m1024-idle-1g-hint-off[-pc][-ioa0]), and optionally --warm or --cold');
    return EXIT_UNAVAILABLE;
  }
  const dir = argv.includes('--cold') ? LAB_COLD_HOST_SCENARIO_DIR : argv.includes('--warm') ? LAB_WARM_HOST_SCENARIO_DIR : LAB_SCENARIO_DIR;
  const path = join(root, dir, `${id}.yaml`);
  if (!existsSync(path)) {
    console.error(`npm run lab: no scenario ${dir}/${id}.yaml`);
    return EXIT_UNAVAILABLE;
  }
  console.log(`the simulator, ${dir}/${id}.yaml:`);
  console.log(qemuTraceLines(simulatedChecks(loadScenario(readFileSync(path, 'utf8')))).join('\n'));
  type Traced = { rep: number; host_memory: string; total_time_ms: number; downtime_ms: number; qemu_trace: QemuTraceEvent[] };
  const traced = readSources(root, TRACED_RUNS).flatMap((src) => src.rows.filter((r) => caseId(keyOf(r)) === id).map((r) => ({ source: src.source, run: r as unknown as Traced })));
  if (traced.length === 0) console.log(`\nno traced QEMU run of ${id} in ${TRACED_RUNS.map((f) => `${LAB_DATA_DIR}/${f}`).join(' or ')}`);
  for (const { source, run: r } of traced) {
    const host = r.host_memory === 'warm' ? 'warm host' : 'host as it was';
    console.log(`\nQEMU 7.2, ${source} rep ${r.rep} (${host}; total ${r.total_time_ms} ms, downtime ${r.downtime_ms} ms):`);
    console.log(qemuTraceLines(r.qemu_trace).join('\n'));
  }
  return 0;
}

function fit(root: string): number {
  const warmRows = warmHostRows(root);
  const traceRows = readSources(root, ['trace-warm.jsonl'])[0].rows;
  const traced = FIT_TRACE_FIGURES.map((f) => tracedFigure(traceRows, f));
  const calibration = fitHostCalibration(readSources(root, LAB_WARM_HOST_FILES), warmRows, traced, {
    onStage: (stage, cases) => console.log(`fitting ${stage.what} (${cases} cases of the warm-host suite): ${stage.keys.join(', ')}`),
    onStep: (step, cases) => console.log(`  round ${step.round}: ${step.key} × ${step.factor.toFixed(3)} = ${step.calibration[step.key]}, loss ${step.loss.toFixed(3)}, ${step.passed} of ${cases} within tolerance`),
    onStageDone: (result, cases) => console.log(`  ${result.evaluations} runs of the suite; loss ${result.loss.toFixed(3)}, ${result.passed} of ${cases} within tolerance`),
  }, hostSuiteCalibration('warm'));
  const warmTouch = firstTouchPerPageNs(HOST_FIRST_TOUCH_WARM_NS);
  const fresh = calibration.zeroFreshPageNs - warmTouch;
  console.log(`\nfitted: link ${calibration.linkBytesPerSec} B/s, scan ${calibration.scanNsPerPage} ns, switchover ${calibration.switchoverNs} ns, ` +
    `rescan ${calibration.rescanNsPerPage} ns, hint block ${calibration.hintBlockNs} ns, zero touched ${calibration.zeroTouchedPageNs} ns, ` +
    `zero fresh ${calibration.zeroFreshPageNs} ns (guest ${fresh} + warm first touch ${warmTouch})`);
  const committed = hostSuiteCalibration('warm');
  const keys = HOST_FIT_STAGES.flatMap((st) => st.keys).filter((k, i, all) => all.indexOf(k) === i);
  const differ = keys.filter((k) => committed[k] !== calibration[k]);
  console.log(differ.length === 0
    ? 'these are the committed constants (src/sim/calibration-host.ts)'
    : `the committed constants differ in ${differ.map((k) => `${k} (committed ${committed[k]}, fitted ${calibration[k]})`).join(', ')}`);
  for (const { figure, runs } of traced) {
    const fitted = simulatedTraceFigure(readSources(root, LAB_WARM_HOST_FILES), warmRows, figure, calibration);
    console.log(`${figure.caseId}, ${figure.what}: QEMU's trace ${runs.map((v) => Math.round(v)).join(', ')}, fitted ${Math.round(fitted)}`);
  }
  console.log('committed (src/sim/calibration-host.ts), warm-host suite:');
  printTable(readSources(root, LAB_WARM_HOST_FILES), warmRows, hostSuiteCalibration('warm'));
  console.log('\ncommitted, cold-host suite (a prediction: the warm fit with the cold first touch):');
  printTable(readSources(root, LAB_COLD_HOST_FILES), warmRows, hostSuiteCalibration('cold'));
  return 0;
}

async function hostProbe(args: LabArgs): Promise<number> {
  const qemu = qemuAvailability();
  if (!qemu.ok) {
    console.error(`npm run lab: QEMU is needed for --host-probe (${qemu.reason}).`);
    return EXIT_UNAVAILABLE;
  }
  const rounds = args.repsGiven ? args.reps : 3;
  console.log(`first touch of 1 GiB of QEMU guest RAM (memory-backend-ram, prealloc), ${rounds} rounds, 10 s idle before each cold one`);
  const probe = await probeFirstTouch(1024, rounds);
  for (const [i, r] of probe.rounds.entries()) {
    console.log(`round ${i}: cold ${r.coldMsPer2Mib.toFixed(3)} ms per 2 MiB, warm ${r.warmMsPer2Mib.toFixed(3)} ms per 2 MiB`);
  }
  const extra = probe.coldMsPer2Mib - probe.warmMsPer2Mib;
  console.log(`median: cold ${probe.coldMsPer2Mib.toFixed(3)}, warm ${probe.warmMsPer2Mib.toFixed(3)} ms per 2 MiB; a cold destination pays ${extra.toFixed(3)} ms more ` +
    `(host.destination-fault; the host suites use ${(HOST_FIRST_TOUCH_COLD_NS / 1e6).toFixed(3)} cold and ${(HOST_FIRST_TOUCH_WARM_NS / 1e6).toFixed(3)} warm)`);
  return 0;
}

function parseArgs(argv: readonly string[]): LabArgs {
  const cases: string[] = [];
  let reps = 1;
  let out: string | null = null;
  let logs: string | null = null;
  let postS = 6;
  let hintStale = false;
  let accel: 'tcg' | 'kvm' = 'tcg';
  let unalignedRam = false;
  let hostMemory: 'as-is' | 'warm' = 'as-is';
  let hostProbe = false;
  let repsGiven = false;
  let traceMigration = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--case') cases.push(value());
    else if (a === '--reps') {
      reps = Number(value());
      repsGiven = true;
    }
    else if (a === '--host-probe') hostProbe = true;
    else if (a === '--out') out = value();
    else if (a === '--logs') logs = value();
    else if (a === '--post') postS = Number(value());
    else if (a === '--hint-stale') hintStale = true;
    else if (a === '--trace-migration') traceMigration = true;
    else if (a === '--unaligned-ram') unalignedRam = true;
    else if (a === '--host-memory') {
      const v = value();
      if (v !== 'as-is' && v !== 'warm') throw new Error(`--host-memory ${v}: as-is or warm`);
      hostMemory = v;
    }
    else if (a === '--accel') {
      const v = value();
      if (v !== 'tcg' && v !== 'kvm') throw new Error(`--accel ${v}: tcg or kvm`);
      accel = v;
    }    else throw new Error(`unknown option ${a} (see src/cli/lab-command.ts)`);
  }
  for (const c of cases) if (parseCaseId(c) === null) throw new Error(`--case ${c}: not a lab case id (m1024-alloc-128m-hint-on[-pc][-ioa0])`);
  if (!(Number.isInteger(reps) && reps >= 1)) throw new Error('--reps: a positive integer');
  if ((accel !== 'tcg' || unalignedRam) && !hintStale) throw new Error('--accel and --unaligned-ram are options of --hint-stale');
  if (hostProbe && (cases.length > 0 || hintStale || out !== null || hostMemory !== 'as-is' || traceMigration)) throw new Error('--host-probe takes only --reps');
  if (hintStale && traceMigration) throw new Error('--trace-migration is not an option of --hint-stale');
  const fallback = hintStale ? DEFAULT_HINT_STALE_CASE : DEFAULT_LAB_CASE;
  return { cases: cases.length > 0 ? cases : [fallback], reps, out, logs, postS, hintStale, accel, unalignedRam, hostMemory, hostProbe, repsGiven, traceMigration };
}

async function measure(root: string, args: LabArgs): Promise<number> {
  const qemu = qemuAvailability();
  if (!qemu.ok) {
    console.error(`npm run lab: QEMU is needed to measure (${qemu.reason}). Install qemu-system-x86 (Debian), or set QEMU=/path.`);
    return EXIT_UNAVAILABLE;
  }
  const tool = missingTool();
  if (tool !== null) {
    console.error(`npm run lab: ${tool} is needed to fetch the Debian kernel and busybox-static packages (apt-get download, dpkg-deb).`);
    return EXIT_UNAVAILABLE;
  }
  let artifacts;
  try {
    artifacts = buildLabArtifacts(readFileSync(new URL('../harness/lab/guest-init.sh', import.meta.url)));
  } catch (error) {
    if (!(error instanceof LabUnavailableError)) throw error;
    console.error(`npm run lab: cannot build the guest (it needs the Debian archive over the network, through apt): ${error.message}`);
    return EXIT_UNAVAILABLE;
  }
  console.log(`${qemu.version.split('\n')[0]}; kernel ${artifacts.kernelVersion} (${artifacts.kernelPackage}), initramfs ${artifacts.initrd}`);
  if (args.hintStale) return measureHintStale(args, artifacts);
  const out = args.out ?? join(tmpdir(), `livemig-lab-${process.pid}.jsonl`);
  const rows: LabRow[] = [];
  for (let rep = 0; rep < args.reps; rep++) {
    for (const id of args.cases) {
      const k = parseCaseId(id)!;
      const row = await labRun({
        vmlinuz: artifacts.vmlinuz, initrd: artifacts.initrd, kernelVersion: artifacts.kernelVersion,
        memMib: k.memMib, wl: k.wl, hint: k.hint, bw: k.bw, pc: k.pc, rep, appendExtra: k.initOnAlloc ? '' : 'init_on_alloc=0',
        postS: args.postS, logDir: args.logs ?? undefined, hostMemory: args.hostMemory, traceMigration: args.traceMigration,
      });
      appendFileSync(out, `${JSON.stringify(row)}\n`);
      rows.push(row as unknown as LabRow);
      console.log(`${id} rep ${rep}: ${row.status}, total ${String(row.total_time_ms)} ms, downtime ${String(row.downtime_ms)} ms, ` +
        `transferred ${((Number(row.transferred) || 0) / 1048576).toFixed(1)} MiB, syncs ${String(row.dirty_sync_count)}${row.error ? `, error ${String(row.error)}` : ''}`);
      if (args.traceMigration) {
        const trace = row.qemu_trace as QemuTraceEvent[] | null | undefined;
        console.log(trace ? qemuTraceLines(trace).join('\n') : '  (no QEMU trace: the log was not written; is this QEMU built with the log trace backend?)');
        const load = row.qemu_dst_load as QemuDestinationLoad | null | undefined;
        if (load) {
          const slow = load.slowSections.map(([name, ms]) => `${name} ${ms} ms`).join(', ');
          console.log(`  destination: last RAM section loaded at ${load.ramLoadedMs} ms, devices at ${load.devicesLoadedMs} ms${slow === '' ? '' : ` (${slow})`}`);
        }
      }
    }
  }
  console.log(`results: ${out}\n`);
  const committed = committedSources(root);
  console.log('against the simulator with the lab machine\'s calibration (scenarios/lab):');
  printTable([{ source: out, rows }], [...rows, ...committed.flatMap((s) => s.rows)]);
  // A host that hands free memory back to its hypervisor gives a run as-is cold memory.
  const memory = args.hostMemory === 'warm' ? 'warm' : 'cold';
  console.log(`\nagainst the simulator with the host suites' calibration, ${memory} (scenarios/lab/${memory}-host; docs/fidelity.md, seventh round):`);
  printTable([{ source: out, rows }], [...rows, ...warmHostRows(root)], hostSuiteCalibration(memory));
  return rows.every((r) => r.status === 'completed') ? 0 : 1;
}

async function measureHintStale(args: LabArgs, artifacts: { readonly vmlinuz: string; readonly initrd: string }): Promise<number> {
  const dumpDir = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  let failed = 0;
  const totals = new Map<string, { runs: number; withStale: number; stale: number }>();
  for (let rep = 0; rep < args.reps; rep++) {
    for (const id of args.cases) {
      const k = parseCaseId(id)!;
      const r = await hintStaleRun({
        vmlinuz: artifacts.vmlinuz, initrd: artifacts.initrd, memMib: k.memMib, wl: k.wl, hint: k.hint, bw: k.bw,
        initOnAlloc: k.initOnAlloc, accel: args.accel, unalignedRam: args.unalignedRam, dumpDir, postS: args.postS,
      });
      if (args.out !== null) appendFileSync(args.out, `${JSON.stringify(r)}\n`);
      console.log(`${id} rep ${rep}: ${hintStaleLine(r)}`);
      if (r.pages === undefined) {
        failed++;
        continue;
      }
      const t = totals.get(id) ?? { runs: 0, withStale: 0, stale: 0 };
      t.runs++;
      t.stale += r.pages.both_nonzero;
      if (r.pages.both_nonzero > 0) t.withStale++;
      totals.set(id, t);
    }
  }
  for (const [id, t] of totals) console.log(`${id} accel=${args.accel}${args.unalignedRam ? ' unaligned-ram' : ''}: ${t.runs} runs compared, ${t.withStale} with stale pages, ${t.stale} stale pages (both_nonzero)`);
  return failed === 0 ? 0 : 1;
}

/** Runs `npm run lab` with `argv`; returns the exit code. */
export async function runLabCommand(argv: readonly string[], options: { readonly root: string }): Promise<number> {
  if (argv.includes('--write-scenarios')) return writeScenarios(options.root);
  if (argv.includes('--fit')) return fit(options.root);
  if (argv.includes('--checks')) return checks(options.root, argv);
  if (argv.includes('--table')) {
    const memory = argv.includes('--cold') ? 'cold' : argv.includes('--warm') ? 'warm' : null;
    const paths = argv.filter((a) => a !== '--table' && a !== '--cold' && a !== '--warm');
    const given = paths.map((p) => ({ source: p, rows: parseLabJsonl(readFileSync(p, 'utf8')) }));
    if (memory === null) {
      // The guest's layout: the given runs first, then the committed suites.
      const committed = committedSources(options.root);
      const sources = given.length > 0 ? given : committed;
      printTable(sources, [...given.flatMap((s) => s.rows), ...committed.flatMap((s) => s.rows)]);
      return 0;
    }
    const sources = given.length > 0 ? given : readSources(options.root, memory === 'warm' ? LAB_WARM_HOST_FILES : LAB_COLD_HOST_FILES);
    printTable(sources, [...given.flatMap((s) => s.rows), ...warmHostRows(options.root)], hostSuiteCalibration(memory));
    return 0;
  }
  let args: LabArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    console.error(`npm run lab: ${(error as Error).message}`);
    return EXIT_UNAVAILABLE;
  }
  return args.hostProbe ? hostProbe(args) : measure(options.root, args);
}
