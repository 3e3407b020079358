/**
 * The fixed-layout pieces of the main stream that are not RAM and not commands: section
 * headers and footers, the CONFIGURATION record, and the two device payloads this layer
 * decodes without a VMDESCRIPTION (`timer` v2 and `globalstate` v1, facts §1.10), and the
 * dispatch of every other device payload to a DeviceSectionDecoder. Each
 * function reads from a ByteReader and throws ShortReadError when the bytes run out, so the
 * push decoder can retry the whole unit once more input arrived.
 */
import { latin1, ShortReadError, Unsafe64Error } from '../lib/bytes.ts';
import type { ByteReader } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';
import type { Configuration, DeviceSectionDecoder, DeviceState, SectionHeader } from './stream-types.ts';
import {
  CONFIG_SUBSECTION_CAPABILITIES,
  CONFIG_SUBSECTION_PAGE_BITS,
  CONFIG_SUBSECTION_UUID,
  CONFIG_UUID_BYTES,
  GLOBALSTATE_RUNSTATE_BYTES,
  GLOBALSTATE_SECTION_IDSTR,
  GLOBALSTATE_SECTION_VERSION,
  MAX_TARGET_PAGE_BITS,
  MIN_TARGET_PAGE_BITS,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SUBSECTION,
  TIMER_SECTION_IDSTR,
  TIMER_SECTION_VERSION,
} from './constants.ts';
import {
  MIG_ERR_CONFIG,
  MIG_ERR_DEVICE_STATE,
  MIG_ERR_FOOTER_MISMATCH,
  MIG_ERR_FOOTER_MISSING,
  MIG_ERR_INTEGER_RANGE,
  MIG_ERR_LIMIT,
  MIG_ERR_OPAQUE_SECTION,
  MIG_ERR_SECTION_VERSION,
} from './stream-errors.ts';
import type { StreamLimits } from './stream-errors.ts';

/** How the pieces report errors: the decoder turns a reader position into an absolute offset. */
export interface DecodeContext {
  fail(code: string, message: string, pos: number): FormatError;
}

/** The fields of a START/FULL header after its type byte. */
export interface FullHeaderFields {
  readonly sectionId: number;
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
}

/** Reads be32 section_id, cstr8 idstr, be32 instance_id, be32 version_id. */
export function readFullHeaderFields(r: ByteReader): FullHeaderFields {
  const sectionId = r.be32();
  const idstr = r.cstr8();
  const instanceId = r.be32();
  const versionId = r.be32();
  return { sectionId, idstr, instanceId, versionId };
}

/** Reads and checks a section footer: u8 0x7e, be32 section id equal to the header's. */
export function readFooter(r: ByteReader, ctx: DecodeContext, sectionId: number, idstr: string): void {
  const at = r.pos;
  const marker = r.u8();
  if (marker !== QEMU_VM_SECTION_FOOTER) {
    throw ctx.fail(MIG_ERR_FOOTER_MISSING, `Missing section footer for ${idstr} (found byte 0x${marker.toString(16)})`, at);
  }
  const id = r.be32();
  if (id !== sectionId) {
    throw ctx.fail(
      MIG_ERR_FOOTER_MISMATCH,
      `Mismatched section id in footer for ${idstr} - read 0x${id.toString(16)} expected 0x${sectionId.toString(16)}`,
      at,
    );
  }
}

/**
 * Reads the CONFIGURATION record after its type byte: be32 name length, the machine name,
 * then any subsections (u8 0x05, cstr8 name, be32 version 1, fields). It peeks one byte past
 * the record to see whether a subsection follows, so it needs the next record's type byte.
 */
export function readConfiguration(r: ByteReader, ctx: DecodeContext, limits: StreamLimits): Configuration {
  const lenAt = r.pos;
  const nameLengthBytes = r.be32();
  if (nameLengthBytes > limits.maxMachineNameBytes) {
    throw ctx.fail(MIG_ERR_LIMIT, `machine type name of ${nameLengthBytes} bytes exceeds the limit of ${limits.maxMachineNameBytes}`, lenAt);
  }
  const machine = latin1(r.bytesView(nameLengthBytes));
  let targetPageBits: number | undefined;
  let capabilities: string[] | undefined;
  let uuid: Uint8Array | undefined;
  while (r.peekU8() === QEMU_VM_SUBSECTION) {
    const subAt = r.pos;
    r.u8();
    const name = r.cstr8();
    const version = r.be32();
    if (version !== 1) {
      throw ctx.fail(MIG_ERR_CONFIG, `CONFIGURATION subsection '${name}' has version ${version}, expected 1`, subAt);
    }
    if (name === CONFIG_SUBSECTION_PAGE_BITS && targetPageBits === undefined) {
      const bitsAt = r.pos;
      targetPageBits = r.be32();
      if (targetPageBits < MIN_TARGET_PAGE_BITS || targetPageBits > MAX_TARGET_PAGE_BITS) {
        throw ctx.fail(MIG_ERR_CONFIG, `Received TARGET_PAGE_BITS ${targetPageBits} is outside ${MIN_TARGET_PAGE_BITS}..${MAX_TARGET_PAGE_BITS}`, bitsAt);
      }
    } else if (name === CONFIG_SUBSECTION_CAPABILITIES && capabilities === undefined) {
      const countAt = r.pos;
      const count = r.be32();
      if (count > limits.maxCapabilities) {
        throw ctx.fail(MIG_ERR_LIMIT, `${count} capabilities in CONFIGURATION exceed the limit of ${limits.maxCapabilities}`, countAt);
      }
      capabilities = [];
      for (let i = 0; i < count; i++) capabilities.push(r.cstr8());
    } else if (name === CONFIG_SUBSECTION_UUID && uuid === undefined) {
      uuid = r.bytesView(CONFIG_UUID_BYTES).slice();
    } else {
      throw ctx.fail(MIG_ERR_CONFIG, `unknown or repeated CONFIGURATION subsection '${name}'`, subAt);
    }
  }
  const configuration: {
    machine: string;
    targetPageBits?: number;
    capabilities?: readonly string[];
    uuid?: Uint8Array;
  } = { machine };
  if (targetPageBits !== undefined) configuration.targetPageBits = targetPageBits;
  if (capabilities !== undefined) configuration.capabilities = capabilities;
  if (uuid !== undefined) configuration.uuid = uuid;
  return configuration;
}

/**
 * The `timer` device state, version 2, by QEMU field name. The clock offsets are signed 64-bit
 * nanosecond values, kept exact as bigint.
 */
export interface TimerState {
  readonly cpu_ticks_offset: bigint;
  readonly cpu_clock_offset: bigint;
}

/** The `globalstate` device state, version 1: the sender's runstate name (e.g. "running"). */
export interface GlobalState {
  /** The size field as sent: strlen(runstate) + 1. */
  readonly size: number;
  readonly runstate: string;
}

/** Reads the 24-byte `timer` payload: int64, 8 unused bytes, int64. */
export function decodeTimerPayload(r: ByteReader, ctx: DecodeContext, idstr: string): TimerState {
  const cpuTicksOffset = r.be64Signed();
  r.skip(8);
  const cpuClockOffset = r.be64Signed();
  rejectSubsection(r, ctx, idstr);
  return { cpu_ticks_offset: cpuTicksOffset, cpu_clock_offset: cpuClockOffset };
}

/** Reads the `globalstate` payload: be32 size, 100-byte NUL-padded runstate. */
export function decodeGlobalstatePayload(r: ByteReader, ctx: DecodeContext, idstr: string): GlobalState {
  const sizeAt = r.pos;
  const size = r.be32();
  const raw = r.bytesView(GLOBALSTATE_RUNSTATE_BYTES);
  const nul = raw.indexOf(0);
  if (size > GLOBALSTATE_RUNSTATE_BYTES || nul < 0) {
    throw ctx.fail(MIG_ERR_DEVICE_STATE, `globalstate runstate is not a NUL-terminated name of at most ${GLOBALSTATE_RUNSTATE_BYTES - 1} bytes (size ${size})`, sizeAt);
  }
  rejectSubsection(r, ctx, idstr);
  return { size, runstate: latin1(raw.subarray(0, nul)) };
}

/**
 * The natively decoded devices have optional subsections (e.g. `timer/icount`) whose layout
 * this layer does not carry; one appearing is reported instead of being misread as a footer.
 */
function rejectSubsection(r: ByteReader, ctx: DecodeContext, idstr: string): void {
  if (r.peekU8() !== QEMU_VM_SUBSECTION) return;
  const at = r.pos;
  r.u8();
  const name = r.cstr8();
  throw ctx.fail(MIG_ERR_DEVICE_STATE, `unsupported subsection '${name}' in section '${idstr}'`, at);
}

/**
 * Decodes a non-RAM section payload (not its footer): `timer` and `globalstate` natively, any
 * other device through `deviceDecoder`, or an opaque-section error when there is none.
 * `at` is the section's type byte, where version and opaque errors point.
 */
export function decodeDeviceSectionPayload(
  r: ByteReader,
  ctx: DecodeContext,
  header: SectionHeader,
  at: number,
  deviceDecoder: DeviceSectionDecoder | undefined,
): DeviceState {
  if (header.idstr === TIMER_SECTION_IDSTR) {
    checkVersion(ctx, header, TIMER_SECTION_VERSION, at);
    return decodeTimerPayload(r, ctx, header.idstr);
  }
  if (header.idstr === GLOBALSTATE_SECTION_IDSTR) {
    checkVersion(ctx, header, GLOBALSTATE_SECTION_VERSION, at);
    return decodeGlobalstatePayload(r, ctx, header.idstr);
  }
  if (deviceDecoder === undefined) {
    throw ctx.fail(
      MIG_ERR_OPAQUE_SECTION,
      `device section '${header.idstr}' (instance ${header.instanceId}, version ${header.versionId}) has no self-describing ` +
        'layout: decoding it needs the VMDESCRIPTION JSON at the end of a whole migration file (a DeviceSectionDecoder built from it)',
      at,
    );
  }
  const payloadAt = r.pos;
  try {
    return deviceDecoder.decode(header, r);
  } catch (e) {
    // A short read means "wait for more"; FormatErrors are already typed.
    if (e instanceof ShortReadError || e instanceof FormatError) throw e;
    if (e instanceof Unsafe64Error) throw ctx.fail(MIG_ERR_INTEGER_RANGE, e.message, e.offset);
    const message = e instanceof Error ? e.message : String(e);
    const wrapped = ctx.fail(MIG_ERR_DEVICE_STATE, `error while loading state of device '${header.idstr}': ${message}`, payloadAt);
    wrapped.cause = e;
    throw wrapped;
  }
}

/** START/FULL carry a version; the natively decoded devices load exactly one. */
function checkVersion(ctx: DecodeContext, header: SectionHeader, version: number, at: number): void {
  if (header.type !== 'part' && header.type !== 'end' && header.versionId !== version) {
    throw ctx.fail(MIG_ERR_SECTION_VERSION, `savevm: unsupported version ${header.versionId} for '${header.idstr}' v${version}`, at);
  }
}
