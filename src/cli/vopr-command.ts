/**
 * `livemig vopr [--seeds N] [--seed S] [--verbose] [--json]`: the fault-injecting simulator
 * (src/sim/vopr). Runs seeds S..S+N-1 (default 1..1000), prints one summary (outcomes, fault
 * kinds, seeds per second) and, for every failing seed, its plan and fault log; exit 1 on any
 * violation. `--verbose` also prints each seed's trace hash (and, with `--seeds 1`, its trace).
 * The same seed on the same commit gives the same trace hash, byte for byte.
 */
import type { Command } from 'commander';
import { addToSummary, emptySummary, formatFailure, runVoprSeed } from '../sim/vopr/vopr.ts';
import { EXIT_FAILURE, EXIT_OK, UsageError } from './io.ts';
import type { CliIo } from './io.ts';

interface VoprOptions {
  readonly seeds: string;
  readonly seed: string;
  readonly verbose?: boolean;
  readonly json?: boolean;
}

/** Failing seeds printed in full (the rest are listed). */
const FAILURES_PRINTED_MAX = 5;

function intOf(text: string, what: string, min: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${what}: '${text}' is not an integer >= ${min}`);
  return n;
}

/** Runs the sweep; returns the exit code. */
export function runVopr(options: VoprOptions, io: CliIo): number {
  const count = intOf(options.seeds, '--seeds', 1);
  const first = intOf(options.seed, '--seed', 0);
  const summary = emptySummary();
  const started = performance.now();
  let printed = 0;
  for (let seed = first; seed < first + count; seed++) {
    const r = runVoprSeed(seed, { keepLines: options.verbose === true && count === 1 });
    addToSummary(summary, r);
    if (options.verbose === true) io.out(`seed ${seed} ${r.outcome?.kind ?? 'none'} trace ${r.traceHash}\n`);
    if (options.verbose === true && count === 1) io.out(`${r.lines.join('\n')}\n`);
    if (!r.ok && printed++ < FAILURES_PRINTED_MAX) io.err(`${formatFailure(r).join('\n')}\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  if (options.json === true) {
    io.out(`${JSON.stringify({ ...summary, seconds })}\n`);
  } else {
    io.out(`vopr: ${summary.seeds} seeds from ${first}, ${summary.failed.length} failing, ${(summary.seeds / seconds).toFixed(0)} seeds/s\n`);
    io.out(`  outcomes: ${Object.entries(summary.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
    io.out(`  postcopy runs ${summary.postcopy}, retries ${summary.attemptsRetried}, recoveries ${summary.recoveries}, operator cont after a kept-stopped failure ${summary.operatorConts}\n`);
    io.out(`  faults: ${Object.entries(summary.faultsByKind).sort().map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
    if (summary.failed.length > 0) io.out(`  failing seeds: ${summary.failed.slice(0, 50).join(', ')}\n`);
  }
  return summary.failed.length === 0 ? EXIT_OK : EXIT_FAILURE;
}

export function registerVoprCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('vopr')
    .description('run the fault-injecting simulator over seeds: cuts, stalls, collapses, crashes, QMP misuse; exit 1 on any violation')
    .option('--seeds <n>', 'how many seeds', '1000')
    .option('--seed <s>', 'the first seed', '1')
    .option('--verbose', 'print each seed\'s outcome and trace hash (with --seeds 1: the trace)')
    .option('--json', 'print the summary as JSON')
    .action((options: VoprOptions) => setCode(runVopr(options, io)));
}
