/**
 * A pure tokenizer for QEMU-style command lines, shared by `livemig vm` and `livemig-qemu`.
 *
 * QEMU spells long options with one dash (`-m 2G`, `-device virtio-balloon,...`) and accepts
 * two dashes as well (`--m`); whether an option takes a value is a property of the option, not
 * of its spelling, so a generic option parser (commander) cannot read such a command line. The
 * tokenizer here does what QEMU's `lookup_opt` does: it looks each word up in a table that says
 * whether the option takes an argument, and reports QEMU's own texts for the two ways that can
 * fail (`-foo: invalid option`, `-m: requires an argument`). livemig's own options may also be
 * written `--name=value`.
 *
 * `parseQemuOpts` splits an option value the way QemuOpts does: comma-separated `key=value`
 * pairs, `,,` for a literal comma, an optional implied first key (`-device virtio-balloon,...`
 * means `driver=virtio-balloon`), and a bare `key` meaning `key=on`.
 *
 * What it deliberately doesn't do: interpret values (vm-args.ts does), read files, or support
 * QEMU's `-readconfig` and JSON (`-object '{...}'`) forms.
 */
import { parseSizeBytes } from '../lib/units.ts';

/** Whether an option takes the next word as its value. */
export type OptionArity = 'flag' | 'value';

/** One entry of an option table. */
export interface OptionSpec {
  /** The name without dashes (`m`, `device`, `workload`). */
  readonly name: string;
  readonly arity: OptionArity;
  /** Other names of the same option (`machine` for `M`). */
  readonly aliases?: readonly string[];
}

/** One option as it appeared on the command line. */
export interface ParsedOption {
  /** The canonical name (the table's `name`, never an alias). */
  readonly name: string;
  /** The value, or null for a flag. */
  readonly value: string | null;
  /** How it was written (`-m`), for error messages. */
  readonly spelling: string;
}

/** Stable codes of command-line errors. */
export type QemuArgsErrorCode =
  | 'QEMU_ARGS_INVALID_OPTION'
  | 'QEMU_ARGS_MISSING_VALUE'
  | 'QEMU_ARGS_STRAY_ARGUMENT'
  | 'QEMU_ARGS_BAD_VALUE'
  | 'QEMU_ARGS_CONFLICT';

/** A command line QEMU would refuse; `message` is QEMU's text without the program prefix. */
export class QemuArgsError extends Error {
  override name = 'QemuArgsError';
  constructor(
    readonly code: QemuArgsErrorCode,
    message: string,
    /** Lines QEMU prints after the error line (the size-suffix hint, say). */
    readonly extraLines: readonly string[] = [],
  ) {
    super(message);
  }
}

/** The QEMU options both commands understand (the subset scripts use). */
export const QEMU_OPTIONS: readonly OptionSpec[] = Object.freeze([
  { name: 'M', arity: 'value', aliases: ['machine'] },
  { name: 'm', arity: 'value' },
  { name: 'object', arity: 'value' },
  { name: 'device', arity: 'value' },
  { name: 'nodefaults', arity: 'flag' },
  { name: 'display', arity: 'value' },
  { name: 'nographic', arity: 'flag' },
  { name: 'S', arity: 'flag' },
  { name: 'incoming', arity: 'value' },
  { name: 'qmp', arity: 'value' },
  { name: 'accel', arity: 'value' },
  { name: 'enable-kvm', arity: 'flag' },
  { name: 'name', arity: 'value' },
  { name: 'pidfile', arity: 'value' },
  { name: 'daemonize', arity: 'flag' },
  { name: 'smp', arity: 'value' },
  { name: 'version', arity: 'flag' },
  { name: 'h', arity: 'flag', aliases: ['help'] },
] satisfies OptionSpec[]);

/** livemig's own options of `livemig vm` (QEMU has none of these). */
export const LIVEMIG_VM_OPTIONS: readonly OptionSpec[] = Object.freeze([
  ...QEMU_OPTIONS,
  { name: 'workload', arity: 'value' },
  { name: 'vcpus', arity: 'value' },
  { name: 'seed', arity: 'value' },
  { name: 'vcpu-nice', arity: 'value' },
] satisfies OptionSpec[]);

/** Builds the lookup map of a table (names and aliases). */
function indexOptions(table: readonly OptionSpec[]): Map<string, OptionSpec> {
  const byName = new Map<string, OptionSpec>();
  for (const spec of table) {
    byName.set(spec.name, spec);
    for (const alias of spec.aliases ?? []) byName.set(alias, spec);
  }
  return byName;
}

/**
 * Splits `argv` (the arguments only) into options, in order. Throws QemuArgsError with QEMU's
 * text for an unknown option, a missing value or a word that is not an option.
 */
export function tokenizeQemuArgs(argv: readonly string[], table: readonly OptionSpec[] = QEMU_OPTIONS): ParsedOption[] {
  const byName = indexOptions(table);
  const out: ParsedOption[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (!word.startsWith('-') || word === '-' || word === '--') {
      // QEMU 7.2 treats a bare word as a disk image; livemig has no disks.
      throw new QemuArgsError('QEMU_ARGS_STRAY_ARGUMENT', `${word}: unexpected argument (livemig has no disk images)`);
    }
    const body = word.startsWith('--') ? word.slice(2) : word.slice(1);
    const equals = word.startsWith('--') ? body.indexOf('=') : -1;
    const key = equals >= 0 ? body.slice(0, equals) : body;
    const spec = byName.get(key);
    const spelling = word.startsWith('--') ? `--${key}` : `-${key}`;
    if (spec === undefined) throw new QemuArgsError('QEMU_ARGS_INVALID_OPTION', `${spelling}: invalid option`);
    if (spec.arity === 'flag') {
      if (equals >= 0) throw new QemuArgsError('QEMU_ARGS_BAD_VALUE', `${spelling}: takes no argument`);
      out.push({ name: spec.name, value: null, spelling });
      continue;
    }
    if (equals >= 0) {
      out.push({ name: spec.name, value: body.slice(equals + 1), spelling });
      continue;
    }
    if (i + 1 >= argv.length) throw new QemuArgsError('QEMU_ARGS_MISSING_VALUE', `${spelling}: requires an argument`);
    out.push({ name: spec.name, value: argv[++i], spelling });
  }
  return out;
}

/** A QemuOpts value split into its parts. */
export interface QemuOpts {
  /** The value of the implied first key, when the text began with one; else null. */
  readonly implied: string | null;
  /** The `key=value` pairs in order (a bare `key` gives `on`). */
  readonly entries: readonly (readonly [string, string])[];
}

/** Splits `text` at single commas; `,,` stands for a literal comma. */
function splitCommas(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== ',') {
      current += c;
    } else if (text[i + 1] === ',') {
      current += ',';
      i++;
    } else {
      parts.push(current);
      current = '';
    }
  }
  parts.push(current);
  return parts;
}

/**
 * Parses a QemuOpts string. With `impliedKey`, a first part without `=` is that key's value
 * (`virtio-balloon,free-page-hint=on`). A later part without `=` is `key=on`. An empty part
 * (`a=1,,` aside) is refused, as QEMU does.
 */
export function parseQemuOpts(text: string, impliedKey: string | null, what: string): QemuOpts {
  const parts = splitCommas(text);
  let implied: string | null = null;
  const entries: (readonly [string, string])[] = [];
  parts.forEach((part, index) => {
    const equals = part.indexOf('=');
    if (index === 0 && impliedKey !== null && equals < 0) {
      implied = part;
      return;
    }
    if (part === '') throw new QemuArgsError('QEMU_ARGS_BAD_VALUE', `${what}: Invalid parameter ''`);
    if (equals < 0) entries.push([part, 'on']);
    else entries.push([part.slice(0, equals), part.slice(equals + 1)]);
  });
  return { implied, entries };
}

/** The value of `key` in `opts` (the last one wins, as in QemuOpts), or undefined. */
export function optValue(opts: QemuOpts, key: string): string | undefined {
  let value: string | undefined;
  for (const [k, v] of opts.entries) if (k === key) value = v;
  return value;
}

/** Parses a QEMU boolean property (`on`/`off`, also `yes`/`no`, `true`/`false`). */
export function parseOnOff(value: string, what: string, key: string): boolean {
  if (['on', 'yes', 'true', 'y'].includes(value)) return true;
  if (['off', 'no', 'false', 'n'].includes(value)) return false;
  throw new QemuArgsError('QEMU_ARGS_BAD_VALUE', `${what}: Parameter '${key}' expects 'on' or 'off'`);
}

/** QEMU's lines after a bad size. */
export const SIZE_HINT_LINES = [
  'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-',
  'and exabytes, respectively.',
] as const;

/** A QEMU_ARGS_BAD_VALUE error with QEMU's text (and the lines QEMU prints after it). */
export function badValue(message: string, extraLines: readonly string[] = []): QemuArgsError {
  return new QemuArgsError('QEMU_ARGS_BAD_VALUE', message, extraLines);
}

/** A size property: QEMU's text on a malformed one, and livemig's limit on a large one. */
export function parseSizeOption(text: string, what: string, key: string, defaultSuffix: 'B' | 'M' = 'B'): number {
  const bytes = /^\d/.test(text) ? parseSizeBytes(text, defaultSuffix) : null;
  if (bytes === null) throw badValue(`${what}: Parameter '${key}' expects a non-negative number below 2^64`, SIZE_HINT_LINES);
  return bytes;
}

/** Refuses keys of `opts` outside `known` with QEMU's "Property 'TYPE.KEY' not found". */
export function checkKeys(opts: QemuOpts, known: readonly string[], typeName: string, what: string): void {
  for (const [key] of opts.entries) if (!known.includes(key)) throw badValue(`${what}: Property '${typeName}.${key}' not found`);
}
