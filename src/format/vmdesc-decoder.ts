/**
 * Decodes device section payloads by their VMDESCRIPTION field lists (vmdesc.ts), the way
 * QEMU's analyze-migration.py does, into plain JSON-able objects:
 *
 *   { fields: { name: value, … }, subsections: { vmsd_name: { fields, subsections }, … } }
 *
 * Values: integer types (int8…int64, uint8…uint64, their " equal" variants, "int32 le") read
 * `size` bytes big-endian (little-endian for " le") and become numbers, or decimal strings when
 * a 64-bit value is beyond 2^53; bool becomes a boolean; a field with a "struct" description
 * becomes a nested object; every other type (buffer, unused_buffer, bitmap, timer, float64,
 * vstruct, virtio, unknown, …) becomes the lowercase hex of its `size` bytes. Arrays
 * ("array_len", or elements listed with "index") become JS arrays.
 *
 * Subsections follow the parent's fields (facts §1.4): u8 0x05, cstr8 name, be32 version, then
 * the subsection's own fields and subsections. The description lists exactly the subsections
 * that were written, so the decoder reads that many, matching each by name.
 *
 * When the bytes run out the decoder lets lib/bytes.ts's ShortReadError through so that a push
 * decoder can wait and retry the whole section; content errors are FormatError.
 */
import type { ByteReader } from '../lib/bytes.ts';
import { FormatError, type ErrorSection } from './errors.ts';
import type { DeviceSectionDecoder, SectionHeader } from './stream-types.ts';
import type { VmDescription, VmdescDevice, VmdescField, VmdescStruct } from './vmdesc.ts';
import { MIG_ERR_VMDESC_BAD_JSON, MIG_ERR_VMDESC_INVALID, MIG_ERR_VMDESC_LIMIT } from './vmdesc.ts';

export const MIG_ERR_VMDESC_UNKNOWN_DEVICE = 'MIG_ERR_VMDESC_UNKNOWN_DEVICE';
export const MIG_ERR_VMDESC_VERSION_MISMATCH = 'MIG_ERR_VMDESC_VERSION_MISMATCH';
export const MIG_ERR_VMDESC_MISSING_SUBSECTION = 'MIG_ERR_VMDESC_MISSING_SUBSECTION';
export const MIG_ERR_VMDESC_UNKNOWN_SUBSECTION = 'MIG_ERR_VMDESC_UNKNOWN_SUBSECTION';

/** Every code of vmdesc.ts and this module. */
export const VMDESC_ERROR_CODES = [
  MIG_ERR_VMDESC_BAD_JSON,
  MIG_ERR_VMDESC_INVALID,
  MIG_ERR_VMDESC_LIMIT,
  MIG_ERR_VMDESC_UNKNOWN_DEVICE,
  MIG_ERR_VMDESC_VERSION_MISMATCH,
  MIG_ERR_VMDESC_MISSING_SUBSECTION,
  MIG_ERR_VMDESC_UNKNOWN_SUBSECTION,
] as const;

/** Marker byte of a subsection inside a vmstate payload (QEMU_VM_SUBSECTION). */
export const VMSTATE_SUBSECTION_MARKER = 0x05;

export type VmValue = number | string | boolean | VmState | VmValue[];

export interface VmState {
  fields: { [name: string]: VmValue };
  subsections: { [vmsdName: string]: VmState };
}

const INT_TYPE = /^(u?)int(8|16|32|64)( equal| le)?$/;

interface DecodeContext {
  readonly reader: ByteReader;
  /** Absolute stream offset of reader position `startPos`. */
  readonly baseOffset: number;
  readonly startPos: number;
  readonly section: ErrorSection | null;
}

function fail(ctx: DecodeContext, code: string, message: string): FormatError {
  return new FormatError(code, message, ctx.baseOffset + (ctx.reader.pos - ctx.startPos), ctx.section);
}

/** Sets a property without letting a name like `__proto__` touch the prototype. */
function put<T>(obj: { [k: string]: T }, name: string, value: T): void {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}

function decodeInt(bytes: Uint8Array, signed: boolean, littleEndian: boolean): number | string {
  let v = 0n;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[littleEndian ? bytes.length - 1 - i : i];
    v = (v << 8n) | BigInt(b);
  }
  if (signed) v = BigInt.asIntN(bytes.length * 8, v);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

function decodeValue(field: VmdescField, ctx: DecodeContext): VmValue {
  if (field.struct !== undefined) return decodeStruct(field.struct, ctx);
  const bytes = ctx.reader.bytesView(field.sizeBytes);
  const int = INT_TYPE.exec(field.type);
  if (int !== null && bytes.length >= 1 && bytes.length <= 8) return decodeInt(bytes, int[1] === '', int[3] === ' le');
  if (field.type === 'bool' && bytes.length === 1) return bytes[0] !== 0;
  return hexOf(bytes);
}

/** Decodes a struct (or a device / subsection body): its fields, then its subsections. */
function decodeStruct(desc: VmdescStruct, ctx: DecodeContext): VmState {
  const fields: { [name: string]: VmValue } = {};
  for (const field of desc.fields) {
    if (field.arrayLen !== undefined) {
      const items: VmValue[] = [];
      for (let i = 0; i < field.arrayLen; i++) items.push(decodeValue(field, ctx));
      put(fields, field.name, items);
    } else if (field.index !== undefined) {
      // parseVmDescription checked that indexes run 0, 1, … per name.
      const value = decodeValue(field, ctx);
      const existing = field.index === 0 ? undefined : fields[field.name];
      if (Array.isArray(existing)) existing.push(value);
      else put<VmValue>(fields, field.name, [value]);
    } else {
      put(fields, field.name, decodeValue(field, ctx));
    }
  }
  const subsections: { [vmsdName: string]: VmState } = {};
  const pending = desc.subsections.slice();
  const r = ctx.reader;
  while (pending.length > 0) {
    const marker = r.peekU8();
    if (marker !== VMSTATE_SUBSECTION_MARKER) {
      throw fail(ctx, MIG_ERR_VMDESC_MISSING_SUBSECTION, `subsection '${pending[0].vmsdName ?? '?'}' not found (byte 0x${marker.toString(16)} instead of 0x05)`);
    }
    const at = r.pos;
    r.u8();
    const name = r.cstr8();
    const version = r.be32();
    const k = pending.findIndex((s) => s.vmsdName === name);
    if (k < 0) {
      r.pos = at;
      throw fail(ctx, MIG_ERR_VMDESC_UNKNOWN_SUBSECTION, `subsection '${name}' is not described`);
    }
    const sub = pending[k];
    if (sub.version !== undefined && sub.version !== version) {
      r.pos = at;
      throw fail(ctx, MIG_ERR_VMDESC_VERSION_MISMATCH, `subsection '${name}' has version ${version}, described as ${sub.version}`);
    }
    pending.splice(k, 1);
    put(subsections, name, decodeStruct(sub, ctx));
  }
  return { fields, subsections };
}

/**
 * Decodes one device payload at the reader's position by `device`'s description.
 * `baseOffset` is the absolute stream offset of that position (for error offsets).
 */
export function decodeDevicePayload(device: VmdescDevice, reader: ByteReader, baseOffset = reader.pos, section: ErrorSection | null = null): VmState {
  return decodeStruct(device, { reader, baseOffset, startPos: reader.pos, section });
}

/** Length of a section header before its payload (facts §1.2). */
function headerLengthBytes(header: SectionHeader): number {
  return header.type === 'start' || header.type === 'full' ? 14 + header.idstr.length : 5;
}

/** A DeviceSectionDecoder for the devices of one VMDESCRIPTION, looked up by (idstr, instance). */
export function createVmDescDeviceDecoder(desc: VmDescription): DeviceSectionDecoder {
  const byKey = new Map<string, VmdescDevice>();
  for (const d of desc.devices) {
    const key = `${d.name}\u0000${d.instanceId}`;
    if (!byKey.has(key)) byKey.set(key, d);
  }
  return {
    decode(header: SectionHeader, reader: ByteReader): VmState {
      const section: ErrorSection = { idstr: header.idstr, sectionId: header.sectionId };
      const payloadOffset = header.offset + headerLengthBytes(header);
      const device = byKey.get(`${header.idstr}\u0000${header.instanceId}`);
      if (device === undefined) {
        throw new FormatError(MIG_ERR_VMDESC_UNKNOWN_DEVICE, `device '${header.idstr}' instance ${header.instanceId} is not in the VMDESCRIPTION`, payloadOffset, section);
      }
      if (device.version !== undefined && header.type !== 'part' && header.type !== 'end' && device.version !== header.versionId) {
        throw new FormatError(MIG_ERR_VMDESC_VERSION_MISMATCH, `device '${header.idstr}' has version ${header.versionId}, described as ${device.version}`, payloadOffset, section);
      }
      return decodeDevicePayload(device, reader, payloadOffset, section);
    },
  };
}
