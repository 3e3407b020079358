/**
 * `livemig vm [QEMU-STYLE OPTIONS]`: runs one real-mode VM (host/vm.ts) until QMP `quit` or a
 * signal, with QEMU's option spelling where it fits:
 *
 *   livemig vm -m 2G -device virtio-balloon,free-page-hint=on,free-page-hint-postcopy=track \
 *     -incoming tcp:127.0.0.1:4444 | unix:PATH | defer   -qmp unix:PATH,server=on,wait=off \
 *     -S  --vcpus N  --vcpu-nice N  --seed N  --workload incrementer[:SIZE[:RATE]]|hot-set:SIZE:RATE|random:RATE[:SIZE]|kernel-build[:USED[:RATE]]|idle
 *
 * The command line is read by host/qemu-args.ts and host/vm-args.ts (commander cannot parse
 * one-dash long options); `livemig-qemu` (qemu-compat-command.ts) shares everything here with
 * QEMU's own option table and texts.
 *
 * Also here: the QMP adapter that makes a LivemigVm a qmp VmController (the host layer may not
 * import qmp, so the VM throws VmCommandError and the adapter rethrows QmpCommandError).
 *
 * Exit codes: 0 after `quit` or SIGINT/SIGTERM; 1 when a QMP socket cannot be bound or an
 * incoming migration failed; a bad command line exits 2 like every livemig command
 * (`livemig-qemu` exits 1 there, as QEMU does).
 */
import { unlinkSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { LIVEMIG_VM_OPTIONS, QemuArgsError, tokenizeQemuArgs, type OptionSpec } from '../host/qemu-args.ts';
import { interpretVmArgs, type VmCommandLine } from '../host/vm-args.ts';
import { LivemigVm } from '../host/vm.ts';
import { VmCommandError } from '../host/vm-types.ts';
import type { MaybePromise, VmController } from '../qmp/controller.ts';
import { QmpCommandError } from '../qmp/errors.ts';
import { QmpServer } from '../qmp/server.ts';
import { EXIT_USAGE } from './io.ts';
import type { CliIo } from './io.ts';

/** Rethrows a VM's typed refusal as QMP's. */
function toQmpError(error: unknown): never {
  if (error instanceof VmCommandError) throw new QmpCommandError(error.errorClass, error.desc, error.reports);
  throw error;
}

/** Runs `body`, mapping VmCommandError (thrown or rejected) to QmpCommandError. */
function mapped<T>(body: () => MaybePromise<T>): MaybePromise<T> {
  try {
    const result = body();
    return result instanceof Promise ? result.catch(toQmpError) : result;
  } catch (error) {
    return toQmpError(error);
  }
}

/** A LivemigVm as the QMP server's controller. */
export function vmController(vm: LivemigVm): VmController {
  return {
    queryStatus: () => mapped(() => vm.queryStatus()),
    stop: () => mapped(() => vm.stop()),
    cont: () => mapped(() => vm.cont()),
    quit: () => mapped(() => vm.quit()),
    migrate: (args) => mapped(() => vm.migrate(args)),
    migrateIncoming: (args) => mapped(() => vm.migrateIncoming(args)),
    migrateSetCapabilities: (args) => mapped(() => vm.migrateSetCapabilities(args)),
    queryMigrateCapabilities: () => mapped(() => vm.queryMigrateCapabilities()),
    migrateSetParameters: (args) => mapped(() => vm.migrateSetParameters(args)),
    queryMigrateParameters: () => mapped(() => vm.queryMigrateParameters()),
    queryMigrate: () => mapped(() => vm.queryMigrate()),
    migrateStartPostcopy: () => mapped(() => vm.migrateStartPostcopy()),
    migrateCancel: () => mapped(() => vm.migrateCancel()),
    migrateContinue: (args) => mapped(() => vm.migrateContinue(args)),
    migratePause: () => mapped(() => vm.migratePause()),
    migrateRecover: (args) => mapped(() => vm.migrateRecover(args)),
    balloon: (args) => mapped(() => vm.balloon(args)),
    queryBalloon: () => mapped(() => vm.queryBalloon()),
    pmemsave: (args) => mapped(() => vm.pmemsave(args)),
    queryVersion: () => vm.queryVersion(),
    cpuCount: () => vm.cpuCount(),
    subscribe: (listener) => vm.subscribe(listener),
  };
}

/** How a VM process presents itself: its option table, name and version text. */
export interface VmFlavour {
  /** Prefix of error lines (`livemig`, `qemu-system-x86_64`). */
  readonly program: string;
  readonly options: readonly OptionSpec[];
  readonly versionText: string;
  readonly helpText: string;
  /** Checks and adjusts the interpreted command line (QEMU's -smp limit, say). */
  readonly finish?: (config: VmCommandLine) => VmCommandLine;
  /** Exit code of a command-line error: livemig's usage code 2, or QEMU's 1. */
  readonly usageExitCode: number;
}

export const LIVEMIG_VM_FLAVOUR: VmFlavour = {
  program: 'livemig',
  usageExitCode: EXIT_USAGE,
  options: LIVEMIG_VM_OPTIONS,
  versionText: 'livemig 0.1.0 (QEMU 7.2 migration stream and QMP)\n',
  helpText: [
    'usage: livemig vm [-m SIZE] [-M none[,memory-backend=ID]] [-object memory-backend-ram|file|tls-creds-x509,...]',
    '                  [-device virtio-balloon,free-page-hint=on,free-page-hint-postcopy=POLICY]',
    '                  [-m SIZE,maxmem=MAX -object memory-backend-ram,id=MEM,size=SIZE -device virtio-mem-pci,id=ID,memdev=MEM,requested-size=SIZE[,block-size=SIZE]]',
    '                  [-incoming tcp:HOST:PORT|unix:PATH|defer] [-qmp unix:PATH,server=on,wait=off] [-S]',
    '                  [--vcpus N] [--vcpu-nice 0-19] [--seed N] [--workload idle|incrementer[:SIZE[:RATE]]|hot-set:SIZE:RATE|random:RATE[:SIZE]|kernel-build[:USED[:RATE]]]',
    '',
  ].join('\n'),
};

/** Writes a command-line error as QEMU does: `PROGRAM: message`, then the hint lines. */
function reportArgsError(io: CliIo, program: string, error: QemuArgsError): void {
  io.err(`${program}: ${error.message}\n`);
  for (const line of error.extraLines) io.err(`${line}\n`);
}

/** Runs a VM process to its end; returns the exit code. */
export async function runVm(argv: readonly string[], io: CliIo, flavour: VmFlavour): Promise<number> {
  let config: VmCommandLine;
  try {
    config = interpretVmArgs(tokenizeQemuArgs(argv, flavour.options));
    if (flavour.finish !== undefined) config = flavour.finish(config);
  } catch (error) {
    if (!(error instanceof QemuArgsError)) throw error;
    reportArgsError(io, flavour.program, error);
    return flavour.usageExitCode;
  }
  if (config.showVersion) {
    io.out(flavour.versionText);
    return 0;
  }
  if (config.showHelp) {
    io.out(flavour.helpText);
    return 0;
  }
  if (config.daemonize) {
    io.err(`${flavour.program}: -daemonize is not supported; run it in the background instead\n`);
    return flavour.usageExitCode;
  }
  return runConfiguredVm(config, io, flavour);
}

async function runConfiguredVm(config: VmCommandLine, io: CliIo, flavour: VmFlavour): Promise<number> {
  let finish!: (code: number) => void;
  const ended = new Promise<number>((resolve) => (finish = resolve));
  let vm: LivemigVm;
  try {
    vm = await LivemigVm.start(config, {
      report: (line) => io.err(`${line.replace(/^livemig: /, `${flavour.program}: `)}\n`),
      onQuit: () => finish(0),
      onIncomingFailed: () => finish(1),
    });
  } catch (error) {
    io.err(`${flavour.program}: ${(error as Error).message}\n`);
    return 1;
  }
  const servers: QmpServer[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    io.err(`${flavour.program}: terminating on signal ${signal === 'SIGINT' ? 2 : 15}\n`);
    finish(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const controller = vmController(vm);
    for (const spec of config.qmp) {
      const listen = 'unix' in spec ? { unix: spec.unix } : { tcp: { host: spec.tcp.host, port: spec.tcp.port } };
      servers.push(await QmpServer.listen({ controller, listen, onInternalError: (command, error) => io.err(`${flavour.program}: ${command}: ${(error as Error).stack ?? error}\n`) }));
    }
    if (config.pidfile !== null) writeFileSync(config.pidfile, `${process.pid}\n`);
  } catch (error) {
    io.err(`${flavour.program}: ${(error as Error).message}\n`);
    finish(1);
  }
  const code = await ended;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await Promise.all(servers.map((s) => s.close()));
  await vm.close();
  if (config.pidfile !== null) {
    try {
      unlinkSync(config.pidfile);
    } catch {
      // Already gone.
    }
  }
  return code;
}

/** Adds `livemig vm` to the program (main.ts calls this once). */
export function registerVmCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('vm')
    .description('run a VM in real mode (vCPU threads, QMP, live migration); QEMU-style options, see `livemig vm -h`')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options...]', 'QEMU-style options')
    .action(async (args: string[]) => setCode(await runVm(args, io, LIVEMIG_VM_FLAVOUR)));
}
