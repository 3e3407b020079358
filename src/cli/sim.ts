/**
 * `livemig sim FILE [--seed N] [--set key=value]... [--json] [--trace OUT] [--checks]`: runs a
 * scenario (docs/scenarios.md) in the deterministic simulator and reports a per-iteration
 * progress table and each invariant's verdict (DESIGN §4), or with --json one object with
 * query-migrate's names. --checks adds each precopy convergence check, dirty sync and iteration that
 * ended on its time (sim/fidelity/checks.ts).
 * On a terminal (and without --json) a progress bar (progress.ts) shows the simulated migration
 * as it runs, on the simulated clock.
 *
 * Exit codes: 0 when every invariant held and the migration ended as the scenario expects,
 * 1 when an invariant failed or the migration did not end as expected, 2 on a usage error
 * (missing file, bad option, invalid scenario).
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { ScenarioError } from '../sim/scenario/scenario.ts';
import { REAL_ENGINES } from '../sim/engines.ts';
import type { EngineFactory, SourcePort } from '../sim/engine-ports.ts';
import { runScenario } from '../sim/runner.ts';
import { watchSource } from '../sim/watched-engines.ts';
import type { SimRunResult } from '../sim/world-report.ts';
import { jsonReport, progressTable, summaryText } from '../sim/report.ts';
import { TraceWriter } from '../sim/trace.ts';
import { runObserved } from '../web/observer.ts';
import { simReportRecorder, writeSimReport } from './report-command.ts';
import { qemuTraceLines } from '../format/qemu-trace.ts';
import { recordChecks } from '../sim/fidelity/checks.ts';
import { EXIT_FAILURE, EXIT_OK, UsageError, toJson } from './io.ts';
import { collect, parseSeed, readScenarioArgs } from './scenario-args.ts';
import type { CliIo } from './io.ts';
import { ProgressBar, progressSampleOf } from './progress.ts';

export interface SimOptions {
  readonly seed?: string;
  readonly set?: string[];
  readonly json?: boolean;
  readonly trace?: string;
  readonly report?: string;
  /** Also print the precopy convergence checks and dirty syncs, as QEMU's trace shows them (read while the run goes, which they do not change). */
  readonly checks?: boolean;
  /** Whether to draw a progress bar (default: stdout is a terminal and no --json). */
  readonly tty?: boolean;
}

/** Runs `livemig sim`; returns the exit code. */
export function runSim(file: string, options: SimOptions, io: CliIo): number {
  const seed = parseSeed(options.seed);
  const { scenario } = readScenarioArgs(file, options.set);
  // --report watches the run (web/observer.ts: reads only, the trace is the same).
  const recorder = options.report === undefined ? null : simReportRecorder(options.trace !== undefined);
  const trace = recorder?.observer.trace ?? new TraceWriter({ keepLines: options.trace !== undefined });
  const tty = options.tty ?? (process.stdout.isTTY === true && options.json !== true);
  const bar = new ProgressBar(io, { tty, wallNowMs: () => performance.now() });
  const base = bar.active ? progressEngines(bar) : REAL_ENGINES;
  const recorded = options.checks === true ? recordChecks(base) : null;
  const engines = recorded?.engines ?? base;
  let result: SimRunResult;
  try {
    result = recorder === null ? runScenario(scenario, { seed, trace, engines }) : runObserved(scenario, seed, recorder.observer, engines);
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
  const total = result.source.ram?.total ?? 0;
  bar.finish(progressSampleOf(result.source, total, (result.source['total-time'] ?? 0) / 1000));
  if (options.trace !== undefined) writeFileSync(options.trace, trace.text());
  if (recorder !== null && options.report !== undefined) writeSimReport(options.report, recorder, file, options.json === true ? { out: (t) => io.err(t), err: (t) => io.err(t) } : io);
  const checks = recorded?.events ?? null;
  if (options.json === true) io.out(`${toJson(checks === null ? jsonReport(result) : { ...jsonReport(result), checks })}\n`);
  else {
    io.out(progressTable(result) + summaryText(result));
    if (checks !== null) io.out(`convergence checks and dirty syncs (precopy; the lines npm run lab -- --trace-migration prints for QEMU):\n${qemuTraceLines(checks).join('\n')}\n`);
  }
  return result.ok ? EXIT_OK : EXIT_FAILURE;
}

/** The real engines, with the bar updated after each source step (on the simulated clock). */
function progressEngines(bar: ProgressBar): EngineFactory {
  let port: SourcePort | null = null;
  let totalBytes = 0;
  return watchSource(REAL_ENGINES, {
    built: (p, machine) => {
      port = p;
      totalBytes = machine.pageCount * TARGET_PAGE_SIZE;
    },
    stepped: (nowNs) => {
      const p = port;
      if (p === null || p.status === 'none') return;
      bar.update(() => {
        const info = p.queryMigrate(nowNs);
        return progressSampleOf(info, totalBytes, (info['total-time'] ?? 0) / 1000);
      });
    },
  });
}

/** Adds the `sim` command to the program (main.ts calls this once). */
export function registerSimCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('sim')
    .description('run a scenario in the deterministic simulator and check the invariants (docs/scenarios.md)')
    .argument('<file>', 'scenario file (YAML)')
    .option('--seed <n>', "the run's seed (default: the scenario's)")
    .option('--set <key=value>', 'override a scenario field by its dotted path (repeatable)', collect, [])
    .option('--json', 'print one JSON object (query-migrate names) instead of the table')
    .option('--trace <file>', 'write the JSON-lines trace to FILE')
    .option('--report <file>', 'write a self-contained HTML report (charts, page-state map) to FILE')
    .option('--checks', "also print each precopy convergence check (pending bytes, threshold, decision), dirty sync and iteration that ended on its time (scenario host.iteration), as QEMU's migrate_pending, migration_bitmap_sync_end and ram_save_iterate_big_wait traces")
    .action((file: string, options: SimOptions) => setCode(runSim(file, options, io)));
}
