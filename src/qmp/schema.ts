/**
 * The QMP commands and events livemig implements: the single source of truth for names (QAPI
 * spelling), argument schemas (zod, via qapi-visit.ts so errors carry QEMU 7.2's texts),
 * return schemas, out-of-band permission and one worked example each. dispatch.ts routes by
 * this table, `query-commands` lists it, and schema.test.ts replays every example against
 * FakeVmController.
 *
 * Argument order within a struct is QAPI's declaration order: QEMU reports the first bad member
 * in that order, then any unexpected one.
 */
import { z } from 'zod';
import { MIGRATION_STATUSES } from '../core/status.ts';
import {
  defaultCapabilities,
  parseCapabilityList,
  queryMigrateCapabilities,
  type MigrationCapabilityStatus,
} from '../core/capabilities.ts';
import { parseMigrateSetParameters } from '../core/params-schema.ts';
import { DEFAULT_PARAMETERS, toQueryMigrateParameters, type MigrateSetParameters } from '../core/params.ts';
import {
  NO_ARGUMENTS,
  QapiVisitError,
  optional,
  qapiArgs,
  required,
  visitBool,
  visitEnum,
  visitInt,
  visitList,
  visitStr,
  visitStruct,
  type Visit,
} from './qapi-visit.ts';
import type { QmpJsonObject } from './json.ts';
import * as t from './schema-types.ts';

/** The fixture an example runs against (schema.test.ts builds each with FakeVmController). */
export type ExampleFixture =
  /** A fresh running source. */
  | 'fresh'
  /** Started with `-incoming defer`. */
  | 'incoming-defer'
  /** A source with a balloon device. */
  | 'balloon'
  /** A source migrating in postcopy-active. */
  | 'postcopy-active'
  /** A destination whose postcopy is paused. */
  | 'postcopy-paused-destination'
  /** A source stopped in pre-switchover (capability pause-before-switchover). */
  | 'pre-switchover';

/** One worked example: the request's arguments and the exact reply. */
export interface CommandExample {
  readonly fixture: ExampleFixture;
  readonly arguments?: Record<string, unknown>;
  /** The `return` member, or a function computing it (for replies derived from tables). */
  readonly return: unknown;
}

/** One command of the schema. */
export interface CommandSpec<A, R> {
  /** What the command does, one sentence. */
  readonly doc: string;
  /** Arguments: parses an `arguments` object (or undefined) with QEMU's texts. */
  readonly args: z.ZodType<A, unknown>;
  /** The `return` member's shape. */
  readonly returns: z.ZodType<R>;
  /** Whether `exec-oob` may run it (QAPI allow-oob). */
  readonly allowOob: boolean;
  /** A worked example. */
  readonly example: CommandExample;
}

function spec<A, R>(s: CommandSpec<A, R>): CommandSpec<A, R> {
  return s;
}

/** The capability list member, with core/capabilities.ts's texts (QEMU's). */
const visitCapabilities: Visit<MigrationCapabilityStatus[]> = (place, value) => {
  const parsed = parseCapabilityList(value);
  if (!parsed.ok) throw new QapiVisitError(parsed.error.desc);
  return parsed.value;
};

/** The whole migrate-set-parameters arguments object, with core/params-schema.ts's texts. */
const visitSetParameters: Visit<MigrateSetParameters> = (_place, value) => {
  const parsed = parseMigrateSetParameters(value);
  if (!parsed.ok) throw new QapiVisitError(parsed.error.desc);
  return parsed.value;
};

const none = qapiArgs(NO_ARGUMENTS);
const empty = t.emptyReturn;

/** Every command, by QMP name. */
export const COMMANDS = {
  qmp_capabilities: spec({
    doc: 'Leaves capability negotiation mode, optionally enabling out-of-band execution.',
    args: qapiArgs(visitStruct({ enable: optional(visitList(visitEnum(['oob']))) })),
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', arguments: { enable: ['oob'] }, return: {} },
  }),
  'query-status': spec({
    doc: 'The run state of the VM.',
    args: none,
    returns: t.statusInfoSchema,
    allowOob: false,
    example: { fixture: 'fresh', return: { status: 'running', singlestep: false, running: true } },
  }),
  stop: spec({
    doc: 'Pauses all vCPUs.',
    args: none,
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', return: {} },
  }),
  cont: spec({
    doc: 'Resumes all vCPUs.',
    args: none,
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', return: {} },
  }),
  quit: spec({
    doc: 'Ends the VM process after replying.',
    args: none,
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', return: {} },
  }),
  migrate: spec({
    doc: 'Starts an outgoing migration to a URI (tcp:, unix:, exec:, fd:, vsock:, rdma:).',
    args: qapiArgs(
      visitStruct({
        uri: required(visitStr),
        blk: optional(visitBool),
        inc: optional(visitBool),
        detach: optional(visitBool),
        resume: optional(visitBool),
      }),
    ),
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', arguments: { uri: 'tcp:127.0.0.1:4444' }, return: {} },
  }),
  'migrate-incoming': spec({
    doc: 'Starts listening for an incoming migration (needs -incoming defer).',
    args: qapiArgs(visitStruct({ uri: required(visitStr) })),
    returns: empty,
    allowOob: false,
    example: { fixture: 'incoming-defer', arguments: { uri: 'tcp:127.0.0.1:4444' }, return: {} },
  }),
  'migrate-set-capabilities': spec({
    doc: 'Turns migration capabilities on or off (refused while a migration runs).',
    args: qapiArgs(visitStruct({ capabilities: required(visitCapabilities) })),
    returns: empty,
    allowOob: false,
    example: {
      fixture: 'fresh',
      arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] },
      return: {},
    },
  }),
  'query-migrate-capabilities': spec({
    doc: 'Every migration capability and its state, in QEMU enum order.',
    args: none,
    returns: z.array(t.capabilityStatusSchema),
    allowOob: false,
    example: { fixture: 'fresh', return: queryMigrateCapabilities(defaultCapabilities()) },
  }),
  'migrate-set-parameters': spec({
    doc: 'Sets migration parameters; allowed at any time, limits apply at once.',
    args: qapiArgs(visitSetParameters),
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', arguments: { 'downtime-limit': 500, 'max-bandwidth': 67108864 }, return: {} },
  }),
  'query-migrate-parameters': spec({
    doc: 'Every migration parameter.',
    args: none,
    returns: t.migrationParametersSchema,
    allowOob: false,
    example: { fixture: 'fresh', return: toQueryMigrateParameters(DEFAULT_PARAMETERS) },
  }),
  'query-migrate': spec({
    doc: 'The state and statistics of the current or last migration.',
    args: none,
    returns: t.migrationInfoSchema,
    allowOob: false,
    example: { fixture: 'fresh', return: {} },
  }),
  'migrate-start-postcopy': spec({
    doc: 'Switches a running precopy migration to postcopy.',
    args: none,
    returns: empty,
    allowOob: false,
    example: { fixture: 'postcopy-active', return: {} },
  }),
  migrate_cancel: spec({
    doc: 'Cancels the current outgoing migration (succeeds without one).',
    args: none,
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', return: {} },
  }),
  'migrate-continue': spec({
    doc: 'Releases a migration paused in the given state (pre-switchover).',
    args: qapiArgs(visitStruct({ state: required(visitEnum(MIGRATION_STATUSES)) })),
    returns: empty,
    allowOob: false,
    example: { fixture: 'pre-switchover', arguments: { state: 'pre-switchover' }, return: {} },
  }),
  'migrate-pause': spec({
    doc: 'Pauses a postcopy migration by cutting its channels (either side).',
    args: none,
    returns: empty,
    allowOob: true,
    example: { fixture: 'postcopy-active', return: {} },
  }),
  'migrate-recover': spec({
    doc: 'Listens for the source to resume a paused postcopy (destination).',
    args: qapiArgs(visitStruct({ uri: required(visitStr) })),
    returns: empty,
    allowOob: true,
    example: { fixture: 'postcopy-paused-destination', arguments: { uri: 'tcp:127.0.0.1:4445' }, return: {} },
  }),
  balloon: spec({
    doc: 'Sets the balloon target: the logical RAM size the guest should keep, bytes.',
    args: qapiArgs(visitStruct({ value: required(visitInt) })),
    returns: empty,
    allowOob: false,
    example: { fixture: 'balloon', arguments: { value: 8388608 }, return: {} },
  }),
  'query-balloon': spec({
    doc: 'The guest RAM the balloon leaves to the guest, bytes.',
    args: none,
    returns: t.balloonInfoSchema,
    allowOob: false,
    example: { fixture: 'balloon', return: { actual: 16777216 } },
  }),
  pmemsave: spec({
    doc: 'Saves guest-physical memory to a file.',
    args: qapiArgs(visitStruct({ val: required(visitInt), size: required(visitInt), filename: required(visitStr) })),
    returns: empty,
    allowOob: false,
    example: { fixture: 'fresh', arguments: { val: 0, size: 4096, filename: '/tmp/page0.bin' }, return: {} },
  }),
  'human-monitor-command': spec({
    doc: 'Runs one HMP command line and returns its output (lines end in \\r\\n).',
    args: qapiArgs(visitStruct({ 'command-line': required(visitStr), 'cpu-index': optional(visitInt) })),
    returns: z.string(),
    allowOob: false,
    example: { fixture: 'fresh', arguments: { 'command-line': 'info status' }, return: 'VM status: running\r\n' },
  }),
  'query-version': spec({
    doc: 'The QEMU version this control plane speaks and our package string.',
    args: none,
    returns: t.versionInfoSchema,
    allowOob: false,
    example: { fixture: 'fresh', return: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'livemig (fake VM)' } },
  }),
  'query-commands': spec({
    doc: 'The commands this server implements.',
    args: none,
    returns: z.array(t.commandInfoSchema),
    allowOob: false,
    example: { fixture: 'fresh', return: (): unknown => COMMAND_NAMES.map((name) => ({ name })) },
  }),
} as const;

/** A command name of the schema. */
export type CommandName = keyof typeof COMMANDS;

/** The parsed arguments of a command. */
export type CommandArgs<N extends CommandName> = z.output<(typeof COMMANDS)[N]['args']>;

/** The `return` value of a command. */
export type CommandReturn<N extends CommandName> = z.output<(typeof COMMANDS)[N]['returns']>;

/** Every command name, in table order. */
export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

/** True when `name` is a command of the schema. */
export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/**
 * Parses `args` for `name` with QEMU's texts: the parsed value, or the first problem's text.
 * (A thin wrapper so callers need not know zod.)
 */
export function parseCommandArgs<N extends CommandName>(
  name: N,
  args: QmpJsonObject | undefined,
): { readonly ok: true; readonly value: CommandArgs<N> } | { readonly ok: false; readonly desc: string } {
  const parsed = (COMMANDS[name].args as z.ZodType<CommandArgs<N>, unknown>).safeParse(args);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, desc: parsed.error.issues[0]?.message ?? 'invalid arguments' };
}

/** The events carried, with their data schemas (null: no data) and an example each. */
export const EVENTS = {
  MIGRATION: { data: t.migrationEventSchema, example: { status: 'setup' } },
  MIGRATION_PASS: { data: t.migrationPassEventSchema, example: { pass: 1 } },
  STOP: { data: null, example: null },
  RESUME: { data: null, example: null },
  BALLOON_CHANGE: { data: t.balloonChangeEventSchema, example: { actual: 8388608 } },
  SHUTDOWN: { data: t.shutdownEventSchema, example: { guest: false, reason: 'host-qmp-quit' } },
} as const;
