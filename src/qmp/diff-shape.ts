/**
 * Compares two JSON values by shape: the same object keys, the same JSON types, recursively;
 * values themselves may differ. Used to diff our QMP replies against real QEMU 7.2 replies
 * (testdata/qemu-7.2/qmp), where numbers like total-time can never match but a missing
 * member or a string where QEMU has a number is a bug.
 *
 * Arrays: every element of ours is compared with the first element of theirs (QMP arrays are
 * homogeneous), unless `arrays: 'pairwise'` asks for element-by-element comparison (then
 * lengths must match). Integers and doubles are both "number" (JSON has one number type); a
 * bigint is a number too.
 */
import { QmpFloat } from './json.ts';

/** One difference, with the JSON path where it is. */
export interface ShapeDifference {
  readonly path: string;
  readonly problem: string;
}

/** Options of diffShape. */
export interface DiffShapeOptions {
  /** How arrays are compared (default 'homogeneous'). */
  readonly arrays?: 'homogeneous' | 'pairwise';
  /** Object keys whose presence may differ (optional members), by name. */
  readonly optionalKeys?: readonly string[];
}

/** The JSON type of a value: object, array, string, number, boolean or null. */
export function jsonType(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'bigint' || typeof value === 'number' || value instanceof QmpFloat) return 'number';
  return typeof value;
}

function walk(ours: unknown, theirs: unknown, path: string, options: DiffShapeOptions, out: ShapeDifference[]): void {
  const a = jsonType(ours);
  const b = jsonType(theirs);
  if (a !== b) {
    out.push({ path, problem: `type ${a}, QEMU has ${b}` });
    return;
  }
  if (a === 'array') {
    const mine = ours as unknown[];
    const qemu = theirs as unknown[];
    if (options.arrays === 'pairwise') {
      if (mine.length !== qemu.length) out.push({ path, problem: `length ${mine.length}, QEMU has ${qemu.length}` });
      for (let i = 0; i < Math.min(mine.length, qemu.length); i++) walk(mine[i], qemu[i], `${path}[${i}]`, options, out);
    } else if (qemu.length > 0) {
      for (let i = 0; i < mine.length; i++) walk(mine[i], qemu[0], `${path}[${i}]`, options, out);
    }
    return;
  }
  if (a !== 'object') return;
  const mine = ours as Record<string, unknown>;
  const qemu = theirs as Record<string, unknown>;
  const optional = new Set(options.optionalKeys ?? []);
  for (const key of Object.keys(qemu)) {
    if (!Object.hasOwn(mine, key)) {
      if (!optional.has(key)) out.push({ path: `${path}.${key}`, problem: 'missing (QEMU has it)' });
    } else {
      walk(mine[key], qemu[key], `${path}.${key}`, options, out);
    }
  }
  for (const key of Object.keys(mine)) {
    if (!Object.hasOwn(qemu, key) && !optional.has(key)) out.push({ path: `${path}.${key}`, problem: 'extra (QEMU lacks it)' });
  }
}

/**
 * The shape differences of `ours` against `theirs` (QEMU's), in document order; empty when the
 * shapes agree. Paths start at `$`.
 */
export function diffShape(ours: unknown, theirs: unknown, options: DiffShapeOptions = {}): ShapeDifference[] {
  const out: ShapeDifference[] = [];
  walk(ours, theirs, '$', options, out);
  return out;
}

/** The differences as one readable block (for assertion messages). */
export function formatShapeDifferences(differences: readonly ShapeDifference[]): string {
  return differences.map((d) => `${d.path}: ${d.problem}`).join('\n');
}
