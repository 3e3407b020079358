/**
 * The HMP subset reachable through `human-monitor-command`, on the same VmController as QMP.
 * Output is QEMU 7.2's, byte for byte where checked against 7.2.22: lines end in "\r\n" (the
 * monitor turns every "\n" into "\r\n"), a refused command prints its error_report() lines and
 * then "Error: <desc>", and argument errors print QEMU's scanner message followed by
 * `Try "help <cmd>" for more information`.
 *
 * Commands: info {status, migrate, migrate_capabilities, migrate_parameters, balloon, version},
 * migrate_set_capability, migrate_set_parameter, migrate [-d] [-b] [-i] [-r], migrate_incoming,
 * migrate_cancel, migrate_start_postcopy, migrate_continue, migrate_pause, migrate_recover,
 * stop|s, cont|c, balloon, quit|q, help|?.
 *
 * Deviations: `help` lists only these commands; `migrate` without -d never waits (QEMU cannot
 * either under human-monitor-command and prints the same "continuing detached" line).
 */
import { isMigrationCapability } from '../core/capabilities.ts';
import { MULTIFD_COMPRESSIONS, PARAMETER_FIELDS, type MigrateSetParameters } from '../core/params.ts';
import { isMigrationStatus } from '../core/status.ts';
import type { MaybePromise, VmController } from './controller.ts';
import { QmpCommandError } from './errors.ts';
import { Cursor, HmpArgError, isCSpace, parseHmpArguments, parseQapiBool, qemuStrtosz, qemuStrtou64, type HmpArgs } from './hmp-args.ts';
import {
  formatInfoBalloon,
  formatInfoMigrate,
  formatInfoMigrateCapabilities,
  formatInfoMigrateParameters,
  formatInfoStatus,
  formatInfoVersion,
} from './hmp-format.ts';
import { attemptMaybe, thenMaybe } from './maybe.ts';

/** Output lines (without line ends) or nothing. */
type Lines = readonly string[];

/** An HMP-level failure whose exact output lines are known (no "Error: " added). */
class HmpOutput extends Error {
  constructor(readonly lines: Lines) {
    super(lines.join('\n'));
  }
}

interface HmpCommand {
  /** Name as QEMU's table has it, aliases after '|'. */
  readonly name: string;
  readonly argsType: string;
  readonly params: string;
  readonly help: string;
  readonly run: (vm: VmController, args: HmpArgs) => MaybePromise<Lines | void>;
}

const SIZE_HINT = [
  'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-',
  'and exabytes, respectively.',
];

const ignore = (): void => undefined;

/** hmp_migrate_set_parameter's visit of one value, by QEMU's type for it. */
function visitHmpParameter(name: string, value: string): MigrateSetParameters {
  const field = PARAMETER_FIELDS.find((f) => f.qmp === name);
  if (field === undefined) throw new QmpCommandError('GenericError', `invalid parameter value: ${name}`);
  const set = (v: unknown): MigrateSetParameters => ({ [field.core]: v }) as MigrateSetParameters;
  const expects = (what: string): QmpCommandError => new QmpCommandError('GenericError', `Parameter '${name}' expects ${what}`);
  switch (field.kind) {
    case 'size': {
      if (name === 'max-bandwidth') {
        // QEMU's HMP takes max-bandwidth in MiB by default and caps it at INT64_MAX.
        const bytes = qemuStrtosz(value, 'M');
        if (bytes === null || bytes > (1n << 63n) - 1n) throw new QmpCommandError('GenericError', `Invalid size ${value}`);
        return set(bytes);
      }
      const bytes = qemuStrtosz(value, 'B');
      if (bytes === null) throw new HmpOutput([`Error: Parameter '${name}' expects a non-negative number below 2^64`, ...SIZE_HINT]);
      return set(bytes);
    }
    case 'uint64': {
      // downtime-limit is visited as a size by HMP.
      const ms = qemuStrtosz(value, 'B');
      if (ms === null) throw new HmpOutput([`Error: Parameter '${name}' expects a non-negative number below 2^64`, ...SIZE_HINT]);
      return set(ms);
    }
    case 'uint8':
    case 'uint32': {
      const parsed = qemuStrtou64(value);
      if (parsed === null) throw expects('uint64');
      const bits = field.kind === 'uint8' ? 8n : 32n;
      if (parsed >= 1n << bits) throw expects(`uint${bits}_t`);
      return set(parsed);
    }
    case 'bool': {
      const parsed = parseQapiBool(value);
      if (parsed === null) throw expects("'on' or 'off'");
      return set(parsed);
    }
    case 'str':
      return set(value);
    case 'multifd-compression':
      if (!(MULTIFD_COMPRESSIONS as readonly string[]).includes(value)) {
        throw new QmpCommandError('GenericError', `Parameter '${name}' does not accept value '${value}'`);
      }
      return set(value);
    case 'bitmap-mapping':
      throw new QmpCommandError('GenericError', 'The block-bitmap-mapping parameter can only be set through QMP');
  }
}

const INFO_COMMANDS: readonly HmpCommand[] = [
  { name: 'balloon', argsType: '', params: '', help: 'show balloon information', run: (vm) => thenMaybe(vm.queryBalloon(), formatInfoBalloon) },
  { name: 'migrate', argsType: '', params: '', help: 'show migration status', run: (vm) => thenMaybe(vm.queryMigrate(), formatInfoMigrate) },
  {
    name: 'migrate_capabilities',
    argsType: '',
    params: '',
    help: 'show current migration capabilities',
    run: (vm) => thenMaybe(vm.queryMigrateCapabilities(), formatInfoMigrateCapabilities),
  },
  {
    name: 'migrate_parameters',
    argsType: '',
    params: '',
    help: 'show current migration parameters',
    run: (vm) => thenMaybe(vm.queryMigrateParameters(), formatInfoMigrateParameters),
  },
  { name: 'status', argsType: '', params: '', help: 'show the current VM status (running|paused)', run: (vm) => thenMaybe(vm.queryStatus(), formatInfoStatus) },
  { name: 'version', argsType: '', params: '', help: 'show the version of QEMU', run: (vm) => formatInfoVersion(vm.queryVersion()) },
];

const COMMANDS: readonly HmpCommand[] = [
  {
    name: 'balloon',
    argsType: 'value:M',
    params: 'target',
    help: 'request VM to change its memory allocation (in MB)',
    run: (vm, a) => vm.balloon({ value: Number(a.value as bigint) }),
  },
  { name: 'cont|c', argsType: '', params: '', help: 'resume emulation', run: (vm) => vm.cont() },
  { name: 'help|?', argsType: '', params: '[cmd]', help: 'show the help', run: () => [] },
  { name: 'info', argsType: '', params: '[subcommand]', help: 'show various information about the system state', run: () => helpLines(INFO_COMMANDS, 'info ') },
  {
    name: 'migrate',
    argsType: 'detach:-d,blk:-b,inc:-i,resume:-r,uri:s',
    params: '[-d] [-b] [-i] [-r] uri',
    help:
      'migrate to URI (using -d to not wait for completion)\n\t\t\t -b for migration without shared storage with full copy of disk\n' +
      '\t\t\t -i for migration without shared storage with incremental copy of disk (base image shared between src and destination)\n' +
      '\t\t\t -r to resume a paused migration',
    run: (vm, a) =>
      thenMaybe(vm.migrate({ uri: a.uri as string, blk: a.blk === true, inc: a.inc === true, resume: a.resume === true }), () =>
        a.detach === true ? [] : ['terminal does not allow synchronous migration, continuing detached'],
      ),
  },
  { name: 'migrate_cancel', argsType: '', params: '', help: 'cancel the current VM migration', run: (vm) => vm.migrateCancel() },
  {
    name: 'migrate_continue',
    argsType: 'state:s',
    params: 'state',
    help: 'Continue migration from the given paused state',
    run: (vm, a) => {
      const state = a.state as string;
      if (!isMigrationStatus(state)) throw new QmpCommandError('GenericError', `invalid parameter value: ${state}`);
      return vm.migrateContinue({ state });
    },
  },
  { name: 'migrate_incoming', argsType: 'uri:s', params: 'uri', help: 'Continue an incoming migration from an -incoming defer', run: (vm, a) => vm.migrateIncoming({ uri: a.uri as string }) },
  { name: 'migrate_pause', argsType: '', params: '', help: 'Pause an ongoing migration (postcopy-only)', run: (vm) => vm.migratePause() },
  { name: 'migrate_recover', argsType: 'uri:s', params: 'uri', help: 'Continue a paused incoming postcopy migration', run: (vm, a) => vm.migrateRecover({ uri: a.uri as string }) },
  {
    name: 'migrate_set_capability',
    argsType: 'capability:s,state:b',
    params: 'capability state',
    help: 'Enable/Disable the usage of a capability for migration',
    run: (vm, a) => {
      const capability = a.capability as string;
      if (!isMigrationCapability(capability)) throw new QmpCommandError('GenericError', `invalid parameter value: ${capability}`);
      return vm.migrateSetCapabilities({ capabilities: [{ capability, state: a.state as boolean }] });
    },
  },
  {
    name: 'migrate_set_parameter',
    argsType: 'parameter:s,value:s',
    params: 'parameter value',
    help: 'Set the parameter for migration',
    run: (vm, a) => vm.migrateSetParameters(visitHmpParameter(a.parameter as string, a.value as string)),
  },
  {
    name: 'migrate_start_postcopy',
    argsType: '',
    params: '',
    help:
      'Followup to a migration command to switch the migration to postcopy mode. The postcopy-ram capability must ' +
      'be set on both source and destination before the original migration command .',
    run: (vm) => vm.migrateStartPostcopy(),
  },
  { name: 'quit|q', argsType: '', params: '', help: 'quit the emulator', run: (vm) => thenMaybe(vm.quit(), ignore) },
  { name: 'stop|s', argsType: '', params: '', help: 'stop emulation', run: (vm) => vm.stop() },
];

function matches(command: HmpCommand, word: string): boolean {
  return command.name.split('|').includes(word);
}

function helpLine(command: HmpCommand, prefix: string): string {
  return `${prefix}${command.name} ${command.params} -- ${command.help}`;
}

function helpLines(table: readonly HmpCommand[], prefix: string): string[] {
  return table.flatMap((c) => helpLine(c, prefix).split('\n'));
}

/** get_command_name: the word up to a space or '/'. */
function commandWord(cursor: Cursor): string {
  cursor.skipSpace();
  const start = cursor.pos;
  while (!cursor.atEnd && cursor.current !== '/' && !isCSpace(cursor.current)) cursor.pos++;
  return cursor.text.slice(start, cursor.pos);
}

/** `help [cmd]`: one command's help (info subcommands too), or all of ours. */
function help(line: string): Lines {
  const cursor = new Cursor(line);
  const word = commandWord(cursor);
  if (word === '') return helpLines(COMMANDS, '');
  const command = COMMANDS.find((c) => matches(c, word));
  if (command === undefined) return [`unknown command: '${line.slice(0, cursor.pos)}'`];
  if (command.name !== 'info') return helpLine(command, '').split('\n');
  const sub = commandWord(cursor);
  if (sub === '') return helpLines(INFO_COMMANDS, 'info ');
  const info = INFO_COMMANDS.find((c) => matches(c, sub));
  return info === undefined ? [`unknown command: '${line.slice(0, cursor.pos)}'`] : [helpLine(info, 'info ')];
}

function toText(lines: Lines | void): string {
  return lines === undefined ? '' : lines.map((l) => `${l}\r\n`).join('');
}

function errorText(error: unknown): string {
  if (error instanceof HmpOutput) return toText(error.lines);
  if (error instanceof QmpCommandError) return toText([...error.reports, `Error: ${error.desc}`]);
  throw error;
}

/**
 * Runs one HMP command line against `vm` and returns its output as QEMU's human-monitor-command
 * does. Never throws for bad input or refused commands (they are output); controller bugs
 * propagate.
 */
export function runHmp(vm: VmController, line: string): MaybePromise<string> {
  const cursor = new Cursor(line);
  const word = commandWord(cursor);
  if (word === '') return '';
  let table: readonly HmpCommand[] = COMMANDS;
  let command = COMMANDS.find((c) => matches(c, word));
  if (command === undefined) return toText([`unknown command: '${line.slice(0, cursor.pos)}'`]);
  cursor.skipSpace();
  if (command.name === 'info' && !cursor.atEnd) {
    const sub = commandWord(cursor);
    table = INFO_COMMANDS;
    command = table.find((c) => matches(c, sub));
    if (command === undefined) return toText([`unknown command: '${line.slice(0, cursor.pos)}'`]);
    cursor.skipSpace();
  }
  const commandEnd = cursor.pos;
  if (command.name === 'help|?') return toText(help(line.slice(commandEnd)));
  let args: HmpArgs;
  try {
    args = parseHmpArguments(cursor, command.argsType, command.name);
  } catch (error) {
    if (!(error instanceof HmpArgError)) throw error;
    const helpTopic = line.slice(0, commandEnd).replace(/[ \t\n\v\f\r]+$/, '');
    return toText([error.message, `Try "help ${helpTopic}" for more information`]);
  }
  const chosen = command;
  return attemptMaybe(() => thenMaybe(chosen.run(vm, args), toText), errorText);
}
