/**
 * QEMU's QAPI input visitor (qapi/qobject-input-visitor.c, 7.2) as small typed combinators, so
 * that a command's argument schema is declared once and reports the first problem with QEMU's
 * exact text. Each combinator is wrapped into a zod schema by `qapiArgs`, the form qmp/schema.ts
 * uses.
 *
 * Texts reproduced (checked against a QEMU 7.2.22 run):
 * - wrong JSON type: `Invalid parameter type for 'uri', expected: string` (also integer,
 *   boolean, number, array, object), with the full member path (`capabilities[0].state`);
 * - missing member: `Parameter 'uri' is missing`;
 * - unknown member, reported after every declared member passed: `Parameter 'x' is unexpected`;
 * - unknown enum value: `Parameter 'state' does not accept value 'bogus'`, naming the member
 *   only (a list element is named 'null', as QEMU does).
 *
 * What it deliberately doesn't do: the keyval (command line) visitor's string conversions.
 */
import { z } from 'zod';
import { QmpFloat, isQmpJsonObject, type QmpJson, type QmpJsonObject } from './json.ts';

/** A visit failure; `message` is QEMU's text. Caught by `qapiArgs` and the dispatcher. */
export class QapiVisitError extends Error {
  override name = 'QapiVisitError';
}

/** Where a value sits: its full path (for type errors) and its own name (for enum errors). */
export interface VisitPlace {
  readonly path: string;
  readonly name: string;
}

/** Visits one value and returns its typed form, or throws QapiVisitError. */
export type Visit<T> = (place: VisitPlace, value: QmpJson) => T;

function wrongType(place: VisitPlace, expected: string): QapiVisitError {
  return new QapiVisitError(`Invalid parameter type for '${place.path}', expected: ${expected}`);
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** QAPI `str`. */
export const visitStr: Visit<string> = (place, value) => {
  if (typeof value !== 'string') throw wrongType(place, 'string');
  return value;
};

/** QAPI `bool`. */
export const visitBool: Visit<boolean> = (place, value) => {
  if (typeof value !== 'boolean') throw wrongType(place, 'boolean');
  return value;
};

/**
 * QAPI `int` (int64). A value written as a double (`1.0`) or beyond int64 is refused, as QEMU
 * does. Values beyond 2^53 are returned as the nearest number.
 */
export const visitInt: Visit<number> = (place, value) => {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX) return Number(value);
  throw wrongType(place, 'integer');
};

/** QAPI `number` (double): any JSON number. */
export const visitNumber: Visit<number> = (place, value) => {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof QmpFloat) return value.value;
  throw wrongType(place, 'number');
};

/** A QAPI enum over `values`. */
export function visitEnum<const V extends string>(values: readonly V[]): Visit<V> {
  return (place, value) => {
    const text = visitStr(place, value);
    if (!(values as readonly string[]).includes(text)) {
      throw new QapiVisitError(`Parameter '${place.name}' does not accept value '${text}'`);
    }
    return text as V;
  };
}

/** A QAPI list of `element`. */
export function visitList<T>(element: Visit<T>): Visit<T[]> {
  return (place, value) => {
    if (!Array.isArray(value)) throw wrongType(place, 'array');
    return value.map((item, i) => element({ path: `${place.path}[${i}]`, name: 'null' }, item));
  };
}

/** One declared member of a struct. */
export interface Member<T, Optional extends boolean> {
  readonly visit: Visit<T>;
  readonly optional: Optional;
}

/** A required member. */
export function required<T>(visit: Visit<T>): Member<T, false> {
  return { visit, optional: false };
}

/** An optional member (absent stays absent). */
export function optional<T>(visit: Visit<T>): Member<T, true> {
  return { visit, optional: true };
}

/** Members of a struct, in QAPI declaration order (the order QEMU visits them). */
export type Members = Readonly<Record<string, Member<unknown, boolean>>>;

type RequiredKeys<M extends Members> = { [K in keyof M]: M[K] extends Member<unknown, false> ? K : never }[keyof M];
type OptionalKeys<M extends Members> = { [K in keyof M]: M[K] extends Member<unknown, true> ? K : never }[keyof M];
type MemberType<X> = X extends Member<infer T, boolean> ? T : never;

/** The typed output of a struct visit. */
export type StructOf<M extends Members> = { -readonly [K in RequiredKeys<M>]: MemberType<M[K]> } & {
  -readonly [K in OptionalKeys<M>]?: MemberType<M[K]>;
};

function childPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/**
 * A QAPI struct: members visited in order (missing, then type), then any member not declared
 * is reported. The top level uses the path ''.
 */
export function visitStruct<M extends Members>(members: M): Visit<StructOf<M>> {
  return (place, value) => {
    if (!isQmpJsonObject(value)) throw wrongType(place, 'object');
    const record: QmpJsonObject = value;
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(members)) {
      const path = childPath(place.path, key);
      if (!Object.hasOwn(record, key)) {
        if (member.optional) continue;
        throw new QapiVisitError(`Parameter '${path}' is missing`);
      }
      out[key] = member.visit({ path, name: key }, record[key]);
    }
    const extra = Object.keys(record).find((key) => !Object.hasOwn(members, key));
    if (extra !== undefined) throw new QapiVisitError(`Parameter '${childPath(place.path, extra)}' is unexpected`);
    return out as StructOf<M>;
  };
}

/** Runs a visit over a command's `arguments` object (absent arguments count as `{}`). */
export function visitArguments<T>(visit: Visit<T>, args: QmpJsonObject | undefined): T {
  return visit({ path: '', name: '' }, args ?? (Object.create(null) as QmpJsonObject));
}

/**
 * The zod form of a visitor over an `arguments` object: parses with QEMU's first error as the
 * only issue. qmp/schema.ts declares every command's arguments this way.
 */
export function qapiArgs<T>(visit: Visit<T>): z.ZodType<T, unknown> {
  return z.unknown().transform((value, ctx): T => {
    try {
      return visitArguments(visit, value as QmpJsonObject | undefined);
    } catch (error) {
      if (!(error instanceof QapiVisitError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message });
      return z.NEVER;
    }
  });
}

/** A struct with no members: refuses any argument (`Parameter 'x' is unexpected`). */
export const NO_ARGUMENTS = visitStruct({});
