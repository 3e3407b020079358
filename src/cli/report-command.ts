/**
 * `livemig report TRACE [-o OUT.html] [--svg DIR] [--title TEXT]`: the HTML report of a trace
 * recorded by `livemig sim --trace` (plain or gzip): status timeline, remaining, bandwidth and
 * dirty rate over time, the page-request latency histogram and the page-state map the trace
 * supports, in one self-contained file (docs/dashboard.md). `--svg DIR` also writes each chart
 * as DIR/<name>.svg.
 *
 * Also the writers `livemig sim --report` and `livemig compare --report` use.
 *
 * Exit codes: 0 written; 2 a usage error (missing or unreadable trace, not a livemig trace).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Command } from 'commander';
import type { CompareEntry, RunView } from '../web/api-types.ts';
import { reportData, renderReport, ReportRecorder } from '../web/report-html.ts';
import { compareChartsSvg, runChartsSvg } from '../web/svg-charts.ts';
import { runViewFromTrace } from '../web/trace-model.ts';
import { EXIT_OK, UsageError, toJson } from './io.ts';
import type { CliIo } from './io.ts';

export interface ReportOptions {
  readonly output?: string;
  readonly svg?: string;
  readonly title?: string;
  readonly json?: boolean;
}

function readTraceText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new UsageError(`cannot read trace ${file}: ${(error as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new UsageError(`${file}: bad gzip data: ${(error as Error).message}`);
    }
  }
  return bytes.toString('utf8');
}

function writeOut(path: string, text: string, what: string, io: CliIo): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    throw new UsageError(`cannot write ${path}: ${(error as Error).message}`);
  }
  io.out(`${what}: ${path} (${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB)\n`);
}

/** Writes each chart of the views (and the comparison) as DIR/<name>.svg; returns the files. */
export function writeSvgCharts(dir: string, views: readonly RunView[], compare: readonly CompareEntry[] | null, io: CliIo): string[] {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new UsageError(`cannot create ${dir}: ${(error as Error).message}`);
  }
  const charts = [
    ...(compare === null ? [] : compareChartsSvg(compare)),
    ...views.flatMap((view, i) => runChartsSvg(view).map((c) => ({ name: views.length > 1 ? `${i + 1}-${c.name}` : c.name, svg: c.svg }))),
  ];
  const files = charts.map((c) => join(dir, `${c.name}.svg`));
  charts.forEach((c, i) => writeFileSync(files[i], c.svg));
  io.out(`charts: ${files.length} SVG files in ${dir}\n`);
  return files;
}

/** Runs `livemig report`; returns the exit code. */
export function runReport(traceFile: string, options: ReportOptions, io: CliIo): number {
  const text = readTraceText(traceFile);
  let result;
  try {
    result = runViewFromTrace(text, 'report', `trace ${basename(traceFile)}`);
  } catch (error) {
    throw new UsageError(`${traceFile}: ${(error as Error).message}`);
  }
  for (const e of result.errors) io.err(`livemig report: ${traceFile}: skipped ${e}\n`);
  const output = options.output ?? (options.svg === undefined ? `${traceFile.replace(/\.(jsonl|json|txt)(\.gz)?$/, '')}.html` : undefined);
  // With --json the file lines go to stderr and stdout holds one object.
  const say: CliIo = options.json === true ? { out: (t) => io.err(t), err: (t) => io.err(t) } : io;
  if (output !== undefined) {
    const title = options.title ?? `livemig report: ${result.view.info.scenario} (trace ${basename(traceFile)})`;
    writeOut(output, renderReport(reportData(title, `livemig report ${basename(traceFile)}`, [result.view])), 'report', say);
  }
  const svg = options.svg === undefined ? [] : writeSvgCharts(options.svg, [result.view], null, say);
  if (options.json === true) {
    const { scenario, seed } = result.view.info;
    io.out(`${toJson({ report: output ?? null, svg, skipped: result.errors, scenario, seed, summary: result.view.summary })}\n`);
  }
  return EXIT_OK;
}

/** For `livemig sim --report`: the recorder to run with. */
export function simReportRecorder(keepTraceLines: boolean): ReportRecorder {
  return new ReportRecorder(keepTraceLines);
}

/** For `livemig sim --report`: writes the report of the watched run. */
export function writeSimReport(path: string, recorder: ReportRecorder, scenarioFile: string, io: CliIo): void {
  const view = recorder.view();
  const title = `livemig report: ${view.info.scenario}, seed ${view.info.seed}`;
  writeOut(path, renderReport(reportData(title, `livemig sim ${basename(scenarioFile)} --report`, [view])), 'report', io);
}

/** For `livemig start --report`: a real run watched by web/real-observer.ts (wall-clock times). */
export function writeRealReport(path: string, view: RunView, generatedBy: string, io: CliIo): void {
  writeOut(path, renderReport(reportData(`livemig report: ${view.info.scenario}`, generatedBy, [view], null, 'wall')), 'report', io);
}

/** For `livemig compare --report`: one report with the comparison bars and each run's panel. */
export function writeCompareReport(path: string, title: string, runs: readonly { entry: CompareEntry; view: RunView }[], generatedBy: string, io: CliIo): void {
  const data = reportData(title, generatedBy, runs.map((r) => r.view), runs.map((r) => r.entry));
  writeOut(path, renderReport(data), 'report', io);
}

/** Adds the `report` command (main.ts calls this once). */
export function registerReportCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('report')
    .description('make a self-contained HTML report (charts, page-state map, timeline) from a trace of livemig sim --trace')
    .argument('<trace>', 'JSON-lines trace file (plain or gzip)')
    .option('-o, --output <file>', 'where to write the HTML (default: TRACE with .html)')
    .option('--svg <dir>', 'also write each chart as DIR/<name>.svg')
    .option('--title <text>', "the report's title")
    .option('--json', 'print one JSON object: the files written, skipped trace lines, the run summary')
    .action((trace: string, options: ReportOptions) => setCode(runReport(trace, options, io)));
}
