/**
 * The VMDESCRIPTION record at the end of a precopy stream (facts §1.8): u8 0x06, be32 length,
 * then compact JSON `{"page_size": n, "devices": [...]}` describing the field layout of every
 * FULL device section written. This module validates that JSON (zod) into typed descriptions
 * and finds the record inside a whole stream file. vmdesc-decoder.ts then decodes device
 * payloads by these descriptions.
 *
 * JSON shape written by QEMU (vmstate.c, vmsd_desc_field_start/_end): a field is
 * `{"name", ["array_len" | "index"], "type", ["struct": {…}], "size"}` where `size` is the bytes
 * written for one element; `type` is "struct", "vstruct", the VMStateInfo name or "unknown";
 * only VMS_STRUCT fields carry "struct". A struct / device / subsection description is
 * `{"vmsd_name", "version", "fields", ["subsections"]}`; devices add "name" and "instance_id";
 * old-style devices have "size" and a single buffer field "data" instead of a vmsd.
 */
import { z } from 'zod';
import { FormatError } from './errors.ts';

export const MIG_ERR_VMDESC_BAD_JSON = 'MIG_ERR_VMDESC_BAD_JSON';
export const MIG_ERR_VMDESC_INVALID = 'MIG_ERR_VMDESC_INVALID';
export const MIG_ERR_VMDESC_LIMIT = 'MIG_ERR_VMDESC_LIMIT';

/** Type byte of the record (QEMU_VM_VMDESCRIPTION). */
export const VMDESC_RECORD_TYPE = 0x06;
/** analyze-migration.py looks at the last 10 MiB of a file only. */
export const VMDESC_SEARCH_WINDOW_BYTES = 10 * 1024 * 1024;

export interface VmdescField {
  readonly name: string;
  readonly type: string;
  /** Bytes of one element as written (for a struct: including its subsections). */
  readonly sizeBytes: number;
  /** Element count of a compressed array (absent for single values). */
  readonly arrayLen?: number;
  /** Element index of an uncompressed array, whose elements are listed one by one. */
  readonly index?: number;
  readonly struct?: VmdescStruct;
}

export interface VmdescStruct {
  readonly vmsdName?: string;
  readonly version?: number;
  readonly fields: readonly VmdescField[];
  readonly subsections: readonly VmdescStruct[];
}

export interface VmdescDevice extends VmdescStruct {
  /** The section idstr. */
  readonly name: string;
  readonly instanceId: number;
  /** Old-style (non-vmsd) devices only: the payload size. */
  readonly sizeBytes?: number;
}

export interface VmDescription {
  readonly pageSizeBytes: number;
  readonly devices: readonly VmdescDevice[];
}

export interface VmdescParseLimits {
  /** Deepest bracket nesting accepted in the JSON (default 64). */
  readonly maxDepth?: number;
  /** Largest array_len / index + 1 accepted (default 2^20). */
  readonly maxArrayLen?: number;
  /** Largest field size accepted (default 64 MiB). */
  readonly maxFieldBytes?: number;
}

interface RawField {
  name: string;
  type: string;
  size: number;
  array_len?: number | undefined;
  index?: number | undefined;
  struct?: RawStruct | undefined;
}

interface RawStruct {
  vmsd_name?: string | undefined;
  version?: number | undefined;
  fields?: RawField[] | undefined;
  subsections?: RawStruct[] | undefined;
}

const count = z.number().int().nonnegative();

const rawField: z.ZodType<RawField> = z.lazy(() =>
  z.object({
    name: z.string(),
    type: z.string(),
    size: count,
    array_len: count.optional(),
    index: count.optional(),
    struct: rawStruct.optional(),
  }),
);

const rawStruct: z.ZodType<RawStruct> = z.lazy(() =>
  z.object({
    vmsd_name: z.string().optional(),
    version: z.number().int().optional(),
    fields: z.array(rawField).optional(),
    subsections: z.array(rawStruct).optional(),
  }),
);

const rawDevice = z.object({
  name: z.string(),
  instance_id: count,
  vmsd_name: z.string().optional(),
  version: z.number().int().optional(),
  size: count.optional(),
  fields: z.array(rawField).optional(),
  subsections: z.array(rawStruct).optional(),
});

const rawDescription = z.object({
  page_size: z.number().int().positive(),
  devices: z.array(rawDevice),
});

/** Deepest nesting of `{`/`[` outside strings, found without recursion. */
function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Validates and converts a parsed VMDESCRIPTION JSON text into typed descriptions. */
export function parseVmDescription(json: string | Uint8Array, limits: VmdescParseLimits = {}, offset = 0): VmDescription {
  const text = typeof json === 'string' ? json : new TextDecoder('utf-8', { fatal: false }).decode(json);
  const maxDepth = limits.maxDepth ?? 64;
  const depth = jsonDepth(text);
  if (depth > maxDepth) throw new FormatError(MIG_ERR_VMDESC_LIMIT, `VMDESCRIPTION nests ${depth} levels deep, limit ${maxDepth}`, offset);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FormatError(MIG_ERR_VMDESC_BAD_JSON, `VMDESCRIPTION is not JSON: ${err instanceof Error ? err.message : String(err)}`, offset);
  }
  const parsed = rawDescription.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FormatError(MIG_ERR_VMDESC_INVALID, `VMDESCRIPTION invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`, offset);
  }
  const ctx = { maxArrayLen: limits.maxArrayLen ?? 1 << 20, maxFieldBytes: limits.maxFieldBytes ?? 64 * 1024 * 1024, offset };
  return {
    pageSizeBytes: parsed.data.page_size,
    devices: parsed.data.devices.map((d, i) => {
      const base = convertStruct(d, `devices.${i}`, ctx);
      const device: VmdescDevice = { ...base, name: d.name, instanceId: d.instance_id };
      return d.size === undefined ? device : { ...device, sizeBytes: d.size };
    }),
  };
}

interface ConvertContext {
  readonly maxArrayLen: number;
  readonly maxFieldBytes: number;
  readonly offset: number;
}

function convertStruct(raw: RawStruct, path: string, ctx: ConvertContext): VmdescStruct {
  const fields = (raw.fields ?? []).map((f, i) => convertField(f, `${path}.fields.${i}`, ctx));
  // Uncompressed arrays list their elements one by one with "index" 0, 1, …, in order.
  const nextIndex = new Map<string, number>();
  for (const [i, f] of fields.entries()) {
    if (f.index === undefined) continue;
    const want = nextIndex.get(f.name) ?? 0;
    if (f.index !== want) {
      throw new FormatError(MIG_ERR_VMDESC_INVALID, `VMDESCRIPTION invalid at ${path}.fields.${i}: index ${f.index} of '${f.name}', expected ${want}`, ctx.offset);
    }
    nextIndex.set(f.name, want + 1);
  }
  const out: { -readonly [K in keyof VmdescStruct]: VmdescStruct[K] } = {
    fields,
    subsections: (raw.subsections ?? []).map((s, i) => convertStruct(s, `${path}.subsections.${i}`, ctx)),
  };
  if (raw.vmsd_name !== undefined) out.vmsdName = raw.vmsd_name;
  if (raw.version !== undefined) out.version = raw.version;
  return out;
}

function convertField(raw: RawField, path: string, ctx: ConvertContext): VmdescField {
  if (raw.size > ctx.maxFieldBytes) {
    throw new FormatError(MIG_ERR_VMDESC_LIMIT, `VMDESCRIPTION field ${path} size ${raw.size} exceeds ${ctx.maxFieldBytes}`, ctx.offset);
  }
  const n = raw.array_len ?? (raw.index === undefined ? 0 : raw.index + 1);
  if (n > ctx.maxArrayLen) {
    throw new FormatError(MIG_ERR_VMDESC_LIMIT, `VMDESCRIPTION field ${path} array of ${n} exceeds ${ctx.maxArrayLen}`, ctx.offset);
  }
  const out: { -readonly [K in keyof VmdescField]: VmdescField[K] } = { name: raw.name, type: raw.type, sizeBytes: raw.size };
  if (raw.array_len !== undefined) out.arrayLen = raw.array_len;
  if (raw.index !== undefined) out.index = raw.index;
  if (raw.struct !== undefined) out.struct = convertStruct(raw.struct, `${path}.struct`, ctx);
  return out;
}

export interface VmDescriptionLocation {
  /** Offset of the 0x06 type byte. */
  readonly offset: number;
  readonly lengthBytes: number;
  readonly json: string;
  readonly description: VmDescription;
  /** 'length': a record whose be32 length ends exactly at end of file; 'analyze-migration': QEMU's script heuristic. */
  readonly method: 'length' | 'analyze-migration';
}

function be32At(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/**
 * Finds the VMDESCRIPTION record in a whole stream file. First, robustly: scanning backwards,
 * a 0x06 byte followed by a be32 length and a '{' whose record ends exactly at end of file and
 * whose JSON validates. Failing that, the way analyze-migration.py does it: the last NUL byte
 * of the last 10 MiB, the first '{' after it, the byte 5 before that '{' being 0x06, then the
 * be32 length. Returns null when neither finds a record; throws FormatError when the
 * heuristic finds one whose JSON is invalid.
 */
export function findVmDescription(file: Uint8Array, limits: VmdescParseLimits = {}): VmDescriptionLocation | null {
  const windowStart = Math.max(0, file.length - VMDESC_SEARCH_WINDOW_BYTES);
  for (let p = file.length - 6; p >= windowStart; p--) {
    if (file[p] !== VMDESC_RECORD_TYPE || file[p + 5] !== 0x7b) continue;
    const lengthBytes = be32At(file, p + 1);
    if (p + 5 + lengthBytes !== file.length) continue;
    const json = new TextDecoder('utf-8', { fatal: false }).decode(file.subarray(p + 5));
    try {
      return { offset: p, lengthBytes, json, description: parseVmDescription(json, limits, p), method: 'length' };
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
    }
  }
  const tail = file.subarray(windowStart);
  const nul = tail.lastIndexOf(0);
  if (nul < 0) return null;
  const brace = tail.indexOf(0x7b, nul);
  if (brace < 0) return null;
  const p = windowStart + brace - 5;
  if (p < 0 || file[p] !== VMDESC_RECORD_TYPE) return null;
  const lengthBytes = be32At(file, p + 1);
  if (p + 5 + lengthBytes > file.length) return null;
  const json = new TextDecoder('utf-8', { fatal: false }).decode(file.subarray(p + 5, p + 5 + lengthBytes));
  return { offset: p, lengthBytes, json, description: parseVmDescription(json, limits, p), method: 'analyze-migration' };
}
