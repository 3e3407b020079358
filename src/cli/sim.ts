/**
 * `livemig sim FILE [--seed N] [--set key=value]... [--json] [--trace OUT]`: runs a scenario
 * (docs/scenarios.md) in the deterministic simulator and reports a per-iteration progress
 * table and each invariant's verdict (DESIGN §4), or with --json one object with
 * query-migrate's names.
 *
 * Exit codes: 0 when every invariant held and the migration ended as the scenario expects,
 * 1 when an invariant failed or the migration did not end as expected, 2 on a usage error
 * (missing file, bad option, invalid scenario).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ScenarioError } from '../sim/scenario/scenario.ts';
import { runScenario } from '../sim/runner.ts';
import { jsonReport, progressTable, summaryText } from '../sim/report.ts';
import { TraceWriter } from '../sim/trace.ts';
import { runObserved } from '../web/observer.ts';
import { simReportRecorder, writeSimReport } from './report-command.ts';
import { EXIT_FAILURE, EXIT_OK, UsageError, toJson } from './io.ts';
import { collect, parseSeed, readScenarioArgs } from './scenario-args.ts';
import type { CliIo } from './io.ts';

export interface SimOptions {
  readonly seed?: string;
  readonly set?: string[];
  readonly json?: boolean;
  readonly trace?: string;
  readonly report?: string;
}

/** Runs `livemig sim`; returns the exit code. */
export function runSim(file: string, options: SimOptions, io: CliIo): number {
  const seed = parseSeed(options.seed);
  const { scenario } = readScenarioArgs(file, options.set);
  // --report watches the run (web/observer.ts: reads only, the trace is the same).
  const recorder = options.report === undefined ? null : simReportRecorder(options.trace !== undefined);
  const trace = recorder?.observer.trace ?? new TraceWriter({ keepLines: options.trace !== undefined });
  let result;
  try {
    result = recorder === null ? runScenario(scenario, { seed, trace }) : runObserved(scenario, seed, recorder.observer);
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
  if (options.trace !== undefined) writeFileSync(options.trace, trace.text());
  if (recorder !== null && options.report !== undefined) writeSimReport(options.report, recorder, file, options.json === true ? { out: (t) => io.err(t), err: (t) => io.err(t) } : io);
  if (options.json === true) io.out(`${toJson(jsonReport(result))}\n`);
  else io.out(progressTable(result) + summaryText(result));
  return result.ok ? EXIT_OK : EXIT_FAILURE;
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
    .action((file: string, options: SimOptions) => setCode(runSim(file, options, io)));
}
