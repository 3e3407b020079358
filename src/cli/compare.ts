/**
 * `livemig compare FILE [--seed N] [--set key=value]... [--json | --markdown]`: runs the five
 * free-page-hint × postcopy policies (refuse, overrule, legacy, ignore-after-switch, track) on
 * the same seeded scenario and prints one table (sim/compare.ts): postcopy allowed?, total
 * time, downtime, bytes sent, pages hinted, hinted memory held after migration, the longest
 * fault stall and each invariant's verdict; with --json one object per policy with
 * `livemig sim --json`'s fields (for `refuse` also its error texts).
 *
 * Exit codes: 0 when the five runs ran (a refused start or a failed invariant is data, not an
 * error); 2 on a usage error (missing file, bad option, invalid scenario); a crash of a run
 * propagates.
 */
import type { Command } from 'commander';
import { compareJson, compareMarkdown, comparePolicies, compareText, type CompareRow } from '../sim/compare.ts';
import { FREE_PAGE_HINT_POSTCOPY_POLICIES } from '../devices/balloon/postcopy-policy.ts';
import { runObserved } from '../web/observer.ts';
import { compareEntryOf } from '../web/result-summary.ts';
import type { CompareEntry, RunView } from '../web/api-types.ts';
import { simReportRecorder, writeCompareReport } from './report-command.ts';
import { loadScenario, ScenarioError } from '../sim/scenario/scenario.ts';
import { EXIT_OK, UsageError, toJson } from './io.ts';
import { collect, parseSeed, readScenarioArgs } from './scenario-args.ts';
import type { CliIo } from './io.ts';

export interface CompareOptions {
  readonly seed?: string;
  readonly set?: string[];
  readonly json?: boolean;
  readonly markdown?: boolean;
  /** Also write one self-contained HTML report: comparison bars and each policy's run. */
  readonly report?: string;
}

/** Runs `livemig compare`; returns the exit code. */
export function runCompare(file: string, options: CompareOptions, io: CliIo): number {
  if (options.json === true && options.markdown === true) throw new UsageError('--json and --markdown exclude each other');
  const seed = parseSeed(options.seed);
  const { text, overrides, scenario } = readScenarioArgs(file, options.set);
  try {
    if (scenario.balloon === null || !scenario.balloon.freePageHint) {
      io.err('livemig compare: free-page-hint is off in this scenario, so the policies can only differ in refusing postcopy (--set devices.balloon.free-page-hint=true)\n');
    }
    const reported: { entry: CompareEntry; view: RunView }[] = [];
    const rows: CompareRow[] = options.report === undefined
      ? comparePolicies({ text, overrides, seed })
      : FREE_PAGE_HINT_POSTCOPY_POLICIES.map((policy) => {
          // The same runs as comparePolicies, watched by a recorder (which does not change them).
          const policyScenario = loadScenario(text, [...overrides, { path: 'devices.balloon.free-page-hint-postcopy', valueText: policy }]);
          const recorder = simReportRecorder(false);
          const result = runObserved(policyScenario, seed, recorder.observer);
          reported.push({ entry: compareEntryOf(policy, result), view: recorder.view() });
          return { policy, result };
        });
    if (options.json === true) io.out(`${toJson(compareJson(rows))}\n`);
    else if (options.markdown === true) io.out(compareMarkdown(rows));
    else io.out(compareText(rows));
    if (options.report !== undefined) {
      const title = `livemig compare: ${scenario.name}, seed ${seed ?? scenario.seed}`;
      writeCompareReport(options.report, title, reported, `livemig compare ${file} --report`, io);
    }
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
  return EXIT_OK;
}

/** Adds the `compare` command to the program (main.ts calls this once). */
export function registerCompareCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('compare')
    .description('run the five free-page-hint × postcopy policies on one seeded scenario and print one table (exit 0 unless a run crashed: failed invariants are data)')
    .argument('<file>', 'scenario file (YAML, as for livemig sim)')
    .option('--seed <n>', "every run's seed (default: the scenario's)")
    .option('--set <key=value>', 'override a scenario field by its dotted path (repeatable)', collect, [])
    .option('--json', 'print one JSON object per policy (livemig sim --json fields plus policy)')
    .option('--markdown', 'print the table in Markdown')
    .option('--report <out.html>', 'also write a self-contained HTML report: comparison bars and each policy\'s run')
    .addHelpText(
      'after',
      '\nExit status: 0 when the five runs ran, whatever their verdicts (a refused postcopy or a failed\ninvariant is what this command shows, not an error); 2 on a usage error.\n',
    )
    .action((file: string, options: CompareOptions) => setCode(runCompare(file, options, io)));
}
