/**
 * The livemig command line: every subcommand registers here (`start` is the main job, a
 * live migration between two VMs on loopback). `main` takes the argv and the output writers, so tests run every command
 * in-process and read what it printed; it returns the exit code and never exits the process.
 *
 * Exit codes: 0 success, 1 a decode error or failed check, 2 a usage error (unknown command,
 * bad or missing option, missing input file).
 */
import { Command, CommanderError } from 'commander';
import { runAnalyze } from './analyze-command.ts';
import type { AnalyzeOptions } from './analyze-command.ts';
import { runEncode } from './encode-command.ts';
import type { EncodeOptions } from './encode-command.ts';
import { collect } from './scenario-args.ts';
import { runStart, type StartOptions } from './start-command.ts';
import { registerSimCommand } from './sim.ts';
import { registerCompareCommand } from './compare.ts';
import { registerReportCommand } from './report-command.ts';
import { registerDashboardCommand } from './dashboard-command.ts';
import { registerVmCommand } from './vm-command.ts';
import { registerVoprCommand } from './vopr-command.ts';
import { GzipError } from './byte-source.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, processIo } from './io.ts';
import type { CliIo } from './io.ts';
import { installNativeZeroTest } from '../host/native-zero.ts';

function buildProgram(io: CliIo, setCode: (code: number) => void): Command {
  const program = new Command('livemig');
  program
    .description("Live migration of VM memory, speaking QEMU 7.2's stream format and QMP")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(see livemig --help)');

  program
    .command('analyze')
    .description('decode a QEMU 7.2 migration stream (or a multifd channel) and report what it holds')
    .argument('<file>', 'stream file (plain or gzip); a multifd channel is recognised by its magic')
    .option('--json', 'print one JSON object instead of the text report')
    .option('--extract-ram <dir>', 'write each rebuilt RAM block to DIR/<name>.ram')
    .option('--return-path <file>', 'also decode this destination-to-source (return path) capture')
    .option('--chunk-bytes <n>', 'feed the decoder chunks of N bytes (K/M suffixes; default 1M)')
    .option('--max-ram <n>', 'rebuild RAM in memory only up to N bytes in all (default 8G)')
    .option('--multifd', 'FILE is a multifd channel (normally detected by its magic)')
    .option('--multifd-channel <file>', 'merge this multifd channel capture into the RAM of the main stream (repeatable)', collect, [])
    .action(async (file: string, options: AnalyzeOptions) => setCode(await runAnalyze(file, options, io)));

  program
    .command('encode')
    .description('write the precopy stream QEMU 7.2 loads for a guest whose one RAM block holds a file')
    .requiredOption('--ram-image <file>', 'RAM contents (a multiple of 4096 bytes)')
    .requiredOption('--block <name>', 'RAM block name (e.g. ram for -M none -m SIZE)')
    .requiredOption('-o, --output <file>', 'where to write the stream')
    .option('--machine <type>', 'machine type for the CONFIGURATION record', 'none')
    .option('--json', 'print what was written as one JSON object')
    .action((options: EncodeOptions) => setCode(runEncode(options, io)));

  program
    .command('start')
    .description('the main job: migrate a running 2 GiB livemig VM (incrementer vCPUs, free page hinting) to another over loopback TCP and check the result')
    .option('--memory <size>', 'guest RAM, QEMU spelling', '2G')
    .option('--max-bandwidth <bytes/s>', 'max-bandwidth for the migration', String(1024 ** 3))
    .option('--json', 'print query-migrate and the verdicts as one JSON object')
    .option('--report <file>', 'write a self-contained HTML report (charts, page-state map) of the run to FILE')
    .option('--events', 'print the run\'s dashboard events as JSON lines on stdout, everything else on stderr (livemig dashboard runs it so)')
    .action(async (options: StartOptions) => setCode(await runStart(options, io)));

  registerSimCommand(program, io, setCode);
  registerCompareCommand(program, io, setCode);
  registerReportCommand(program, io, setCode);
  registerDashboardCommand(program, io, setCode);
  registerVmCommand(program, io, setCode);
  registerVoprCommand(program, io, setCode);
  program
    .command('bench')
    .description('run the benchmarks side by side with QEMU 7.2 and the machine\'s limits (npm run bench); `livemig bench --help-groups` lists the groups')
    .helpOption(false)
    .allowUnknownOption(true)
    .argument('[args...]', 'the bench\'s own flags: --json, --quick, --only GROUP, --list, --help')
    .action(async (args: string[]) => {
      const { runBench } = await import('../bench/main.ts');
      setCode(await runBench(args.map((a) => (a === '--help-groups' ? '--list' : a)), io));
    });
  for (const command of program.commands) {
    const examples = HELP_EXAMPLES[command.name()];
    if (examples !== undefined) command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  }
  return program;
}

/** Worked examples shown at the end of each command's --help (all runnable from a clone). */
const HELP_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  analyze: [
    'livemig analyze testdata/qemu-7.2/pattern-16M.stream.gz',
    'livemig analyze testdata/qemu-7.2/postcopy-4M/conn0.src2dst.bin.gz --return-path testdata/qemu-7.2/postcopy-4M/conn0.dst2src.bin.gz',
    'livemig analyze guest.stream --json --extract-ram /tmp/ram',
  ],
  encode: ['livemig encode --ram-image guest.ram --block mem -o guest.stream'],
  bench: ['livemig bench --list', 'livemig bench --quick --only codec,limits', 'livemig bench --json > bench.json'],
  start: ['livemig start', 'livemig start --memory 512M --json', 'livemig start --memory 512M --report start.html'],
  sim: [
    'livemig sim scenarios/hot-set-converges.yaml',
    'livemig sim scenarios/hint-idle-8g.yaml --set parameters.max-bandwidth=128M --json',
    'livemig sim scenarios/postcopy-after-2-syncs.yaml --trace run.jsonl --report run.html',
  ],
  compare: [
    'livemig compare scenarios/hint-postcopy-pressure.yaml',
    'livemig compare scenarios/hint-idle-8g.yaml --set capabilities.postcopy-ram=true --markdown --report compare.html',
  ],
  report: ['livemig sim scenarios/hint-idle-8g.yaml --trace run.jsonl && livemig report run.jsonl -o run.html --svg charts/'],
  dashboard: ['livemig dashboard', 'livemig dashboard --trace run.jsonl --port 8080'],
  vopr: ['livemig vopr --seeds 1000', 'livemig vopr --seed 4242 --seeds 1 --verbose'],
};

/**
 * Runs the CLI. `argv` is process.argv-shaped (node, script, args...) unless `from` is
 * 'user', in which case it holds only the arguments.
 */
export async function main(argv: string[], io: CliIo = processIo(), from: 'node' | 'user' = 'node'): Promise<number> {
  let code = EXIT_OK;
  installNativeZeroTest(); // faster zero tests for every command (lib/zero-range.ts)
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version requested explicitly are successes; every other parse problem is usage.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      io.err(`livemig: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof GzipError) {
      io.err(`livemig: ${e.message}\n`);
      return EXIT_FAILURE;
    }
    throw e;
  }
}

/** `main` for tests: arguments only, output captured by `io`. */
export function runCli(args: string[], io: CliIo): Promise<number> {
  return main(args, io, 'user');
}
