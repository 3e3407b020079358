/**
 * The zod schema of `migrate-set-parameters` arguments, reproducing QEMU 7.2's QAPI input
 * visitor: members are visited in QAPI order and the first problem is reported with QEMU's
 * text; unknown members are reported after every known one passed. Range checks that QEMU makes
 * after visiting (migrate_params_check, on the merged set) are in params.ts `applySetParameters`.
 *
 * Texts reproduced (member names with dashes at this stage, as QEMU's visitor prints them):
 * - uint64/size not an integer: `Parameter 'downtime-limit' expects uint64`
 * - uint8/uint32 too large (after uint64 wrapping of negatives): `Parameter 'multifd-channels'
 *   expects uint8_t`
 * - bool, str, list of the wrong JSON type: `Invalid parameter type for 'x', expected: boolean`
 * - tls-* neither string nor null: `... expected: StrOrNull`
 * - enum: `Parameter 'multifd-compression' does not accept value 'lz4'`
 * - unknown member: `Parameter 'foo' is unexpected`
 *
 * What it deliberately doesn't do: tell JSON `1.0` from `1` (JSON.parse cannot), or validate
 * block-bitmap-mapping aliases beyond their shape.
 */
import { z } from 'zod';
import { assertNever } from '../lib/assert.ts';
import {
  MULTIFD_COMPRESSIONS,
  PARAMETER_FIELDS,
  applySetParameters,
  type BitmapMigrationNodeAlias,
  type MigrateSetParameters,
  type MigrationParameters,
  type MultifdCompression,
  type ParameterCheckContext,
  type ParameterField,
} from './params.ts';
import { ParamError, firstIssueText, type ParamResult } from './param-errors.ts';

const TWO_64 = 1n << 64n;
const INT64_MIN = -(1n << 63n);

/** Thrown inside a field check and turned into a zod issue; never escapes this module. */
class VisitError extends Error {}

/** QEMU's qobject_input_type_uint64: integers from int64 min to uint64 max, negatives wrapped. */
function visitUint64(name: string, value: unknown): bigint {
  let exact: bigint;
  if (typeof value === 'bigint') {
    exact = value;
  } else if (typeof value === 'number' && Number.isInteger(value)) {
    // JSON.parse rounds 18446744073709551615 up to 2^64; take it as the uint64 maximum.
    exact = value === 2 ** 64 ? TWO_64 - 1n : BigInt(value);
  } else {
    throw new VisitError(`Parameter '${name}' expects uint64`);
  }
  if (exact < INT64_MIN || exact >= TWO_64) throw new VisitError(`Parameter '${name}' expects uint64`);
  return exact < 0n ? exact + TWO_64 : exact;
}

/** QEMU's visit_type_uintN: the uint64 visit, then a bound with the C type in the text. */
function visitUintN(name: string, value: unknown, bits: 8 | 32): bigint {
  const exact = visitUint64(name, value);
  if (exact >= 1n << BigInt(bits)) throw new VisitError(`Parameter '${name}' expects uint${bits}_t`);
  return exact;
}

function wrongType(path: string, expected: string): VisitError {
  return new VisitError(`Invalid parameter type for '${path}', expected: ${expected}`);
}

function visitBool(path: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw wrongType(path, 'boolean');
  return value;
}

function visitStr(path: string, value: unknown): string {
  if (typeof value !== 'string') throw wrongType(path, 'string');
  return value;
}

function visitObject(path: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw wrongType(path, 'object');
  return value as Record<string, unknown>;
}

function visitList(path: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw wrongType(path, 'array');
  return value;
}

function member(path: string, record: Record<string, unknown>, key: string): unknown {
  if (!(key in record)) throw new VisitError(`Parameter '${path}.${key}' is missing`);
  return record[key];
}

function noExtraMembers(path: string, record: Record<string, unknown>, known: readonly string[]): void {
  const extra = Object.keys(record).find((key) => !known.includes(key));
  if (extra !== undefined) throw new VisitError(`Parameter '${path}.${extra}' is unexpected`);
}

/** The shape of BitmapMigrationNodeAlias lists, with QEMU's full member paths in texts. */
function visitBitmapMapping(name: string, value: unknown): BitmapMigrationNodeAlias[] {
  return visitList(name, value).map((nodeValue, i) => {
    const nodePath = `${name}[${i}]`;
    const node = visitObject(nodePath, nodeValue);
    const nodeName = visitStr(`${nodePath}.node-name`, member(nodePath, node, 'node-name'));
    const alias = visitStr(`${nodePath}.alias`, member(nodePath, node, 'alias'));
    const bitmaps = visitList(`${nodePath}.bitmaps`, member(nodePath, node, 'bitmaps')).map((bitmapValue, j) => {
      const bitmapPath = `${nodePath}.bitmaps[${j}]`;
      const bitmap = visitObject(bitmapPath, bitmapValue);
      const bitmapName = visitStr(`${bitmapPath}.name`, member(bitmapPath, bitmap, 'name'));
      const bitmapAlias = visitStr(`${bitmapPath}.alias`, member(bitmapPath, bitmap, 'alias'));
      let transform: { persistent?: boolean } | undefined;
      if ('transform' in bitmap) {
        const transformPath = `${bitmapPath}.transform`;
        const t = visitObject(transformPath, bitmap.transform);
        transform = 'persistent' in t ? { persistent: visitBool(`${transformPath}.persistent`, t.persistent) } : {};
        noExtraMembers(transformPath, t, ['persistent']);
      }
      noExtraMembers(bitmapPath, bitmap, ['name', 'alias', 'transform']);
      return transform === undefined ? { name: bitmapName, alias: bitmapAlias } : { name: bitmapName, alias: bitmapAlias, transform };
    });
    noExtraMembers(nodePath, node, ['node-name', 'alias', 'bitmaps']);
    return { 'node-name': nodeName, alias, bitmaps };
  });
}

/** Visits one member's value by its QAPI kind. */
function visitField(field: ParameterField, value: unknown): unknown {
  const name = field.qmp;
  switch (field.kind) {
    case 'size':
    case 'uint64':
      return visitUint64(name, value);
    case 'uint32':
      return visitUintN(name, value, 32);
    case 'uint8':
      return visitUintN(name, value, 8);
    case 'bool':
      return visitBool(name, value);
    case 'str':
      // StrOrNull: null resets to "" (QEMU rewrites null to "").
      if (value === null) return '';
      if (typeof value !== 'string') throw wrongType(name, 'StrOrNull');
      return value;
    case 'multifd-compression': {
      const text = visitStr(name, value);
      if (!(MULTIFD_COMPRESSIONS as readonly string[]).includes(text)) {
        throw new VisitError(`Parameter '${name}' does not accept value '${text}'`);
      }
      return text as MultifdCompression;
    }
    case 'bitmap-mapping':
      return visitBitmapMapping(name, value);
    default:
      return assertNever(field.kind, 'parameter kind');
  }
}

function fieldSchema(field: ParameterField) {
  return z
    .unknown()
    .transform((value, ctx) => {
      try {
        return visitField(field, value);
      } catch (error) {
        if (!(error instanceof VisitError)) throw error;
        ctx.addIssue({ code: 'custom', message: error.message });
        return z.NEVER;
      }
    })
    .optional();
}

const shape: Record<string, ReturnType<typeof fieldSchema>> = {};
for (const field of PARAMETER_FIELDS) shape[field.qmp] = fieldSchema(field);
const KNOWN_NAMES: ReadonlySet<string> = new Set(PARAMETER_FIELDS.map((f) => f.qmp));

/**
 * zod schema of the `migrate-set-parameters` arguments object. Output: the parsed subset in the
 * core's names, integers as exact bigints (see MigrateSetParameters). Issues carry QEMU's texts;
 * the first issue is the one QEMU reports.
 */
export const migrateSetParametersSchema = z
  .unknown()
  .transform((value, ctx): Record<string, unknown> => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: "QMP input member 'arguments' must be an object" });
      return z.NEVER;
    }
    return value as Record<string, unknown>;
  })
  .pipe(
    z
      .object(shape)
      .catchall(z.unknown())
      .superRefine((record, ctx) => {
        const extra = Object.keys(record).find((key) => !KNOWN_NAMES.has(key));
        if (extra !== undefined) ctx.addIssue({ code: 'custom', message: `Parameter '${extra}' is unexpected` });
      }),
  )
  .transform((record): MigrateSetParameters => {
    const out: Record<string, unknown> = {};
    for (const field of PARAMETER_FIELDS) {
      const value = record[field.qmp];
      if (value !== undefined) out[field.core] = value;
    }
    return out as MigrateSetParameters;
  });

/** Parses `migrate-set-parameters` arguments; the error text is the one QEMU 7.2 reports first. */
export function parseMigrateSetParameters(args: unknown): ParamResult<MigrateSetParameters> {
  const parsed = migrateSetParametersSchema.safeParse(args);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: new ParamError('MIG_ERR_INVALID_PARAMETER', firstIssueText(parsed.error)) };
}

/**
 * The whole of `migrate-set-parameters`: parse `args`, apply them to `current`, check the merged
 * set. Returns the new parameters to commit, or QEMU's error for the first problem.
 */
export function migrateSetParameters(
  current: MigrationParameters,
  args: unknown,
  context?: ParameterCheckContext,
): ParamResult<MigrationParameters> {
  const parsed = parseMigrateSetParameters(args);
  if (!parsed.ok) return parsed;
  return applySetParameters(current, parsed.value, context);
}
