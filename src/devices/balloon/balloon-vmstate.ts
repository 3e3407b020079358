/**
 * Migration state of the balloon: the plain-object form the simulator moves around, and the
 * QEMU 7.2 byte form of the `virtio-balloon-device` vmsd.
 *
 * Byte form (big-endian, QEMU vmstate):
 *   be32 num_pages, be32 actual,
 *   [u8 0x05, cstr8 "virtio-balloon-device/free-page-report", be32 version 1,
 *    be32 free_page_hint_cmd_id, be32 free_page_hint_status]   if FREE_PAGE_HINT negotiated
 *   [u8 0x05, cstr8 "virtio-balloon-device/page-poison", be32 version 1, be32 poison_val]
 *                                                               if PAGE_POISON negotiated
 * The decoder follows QEMU's subsection loader: it reads subsections while the next byte is
 * 0x05 and the name starts with the vmsd name; a 0x05 with another prefix (the generic
 * `virtio/...` subsections that follow in a real section) ends the payload. A subsection
 * with the right prefix but an unknown name, or a newer version, is an error.
 *
 * DONE travels here: a source that set DONE before saving (VM-stopped sync, or the 'track'
 * policy's preSave) hands a destination the status it must show its guest.
 */
import { ByteReader, ByteWriter, ShortReadError } from '../../lib/bytes.ts';
import { hasFeature } from '../virtio/constants.ts';
import { DeviceError } from '../device-error.ts';
import type { BalloonDevice } from './balloon-device.ts';
import * as C from './constants.ts';
import { isHintStatus, type HintStatus } from './free-page-hint.ts';

/** QEMU_VM_SUBSECTION. */
const VMSTATE_SUBSECTION_MARKER = 0x05;

/** Everything of the balloon that travels, as plain data. */
export interface BalloonMigrationState {
  /** num_pages. */
  readonly numPages: number;
  /** actual. */
  readonly actualPages: number;
  /** free_page_hint_cmd_id. */
  readonly freePageHintCmdId: number;
  /** free_page_hint_status (DONE included). */
  readonly freePageHintStatus: HintStatus;
  /** poison_val. */
  readonly poisonVal: number;
  /** Negotiated features, all 64 bits. */
  readonly negotiatedFeatures: bigint;
  /** last_avail_idx of each queue, in the device's queue order (supplied by the queue owner). */
  readonly lastAvailIdx: readonly number[];
}

/** Captures the device's migratable state; `lastAvailIdx` comes from whoever owns the queues. */
export function saveBalloonState(device: BalloonDevice, lastAvailIdx: readonly number[]): BalloonMigrationState {
  if (lastAvailIdx.length !== device.queues.length) {
    throw new DeviceError('BALLOON_ERR_BAD_STATE', `expected ${device.queues.length} last_avail_idx values, got ${lastAvailIdx.length}`);
  }
  const fields = device.captureFields();
  return {
    numPages: fields.numPages,
    actualPages: fields.actualPages,
    freePageHintCmdId: fields.hint.cmdId,
    freePageHintStatus: fields.hint.status,
    poisonVal: fields.poisonVal,
    negotiatedFeatures: fields.negotiatedFeatures,
    lastAvailIdx: lastAvailIdx.slice(),
  };
}

/**
 * Installs a migrated state into a device created with the same properties. Returns the
 * per-queue last_avail_idx for the queue owner to apply. Rejects a state whose queue count
 * differs, whose hint status is not one of QEMU's four, or whose features were not offered.
 */
export function loadBalloonState(device: BalloonDevice, state: BalloonMigrationState): readonly number[] {
  if (state.lastAvailIdx.length !== device.queues.length) {
    throw new DeviceError('BALLOON_ERR_BAD_STATE', `state has ${state.lastAvailIdx.length} queues, device has ${device.queues.length}`);
  }
  if (!isHintStatus(state.freePageHintStatus)) {
    throw new DeviceError('BALLOON_ERR_BAD_STATE', `invalid free page hint status ${String(state.freePageHintStatus)}`);
  }
  // Only the device-specific bits (0..23) are known here; the virtio core checks the rest.
  const deviceBits = (1n << 24n) - 1n;
  if ((state.negotiatedFeatures & deviceBits & ~device.offeredFeatures) !== 0n) {
    throw new DeviceError(
      'BALLOON_ERR_BAD_STATE',
      `Features 0x${state.negotiatedFeatures.toString(16)} unsupported. Allowed features: 0x${device.offeredFeatures.toString(16)}`,
    );
  }
  device.restoreFields({
    numPages: state.numPages,
    actualPages: state.actualPages,
    hint: { cmdId: state.freePageHintCmdId, status: state.freePageHintStatus },
    poisonVal: state.poisonVal,
    negotiatedFeatures: state.negotiatedFeatures,
  });
  return state.lastAvailIdx.slice();
}

/** The values of the `virtio-balloon-device` vmsd; null marks an absent subsection. */
export interface BalloonDevicePayload {
  readonly numPages: number;
  readonly actualPages: number;
  /** The free-page-report subsection, present iff FREE_PAGE_HINT was negotiated. */
  readonly hint: { readonly cmdId: number; readonly status: number } | null;
  /** The page-poison subsection, present iff PAGE_POISON was negotiated. */
  readonly poisonVal: number | null;
}

/** The payload QEMU would write for a state (subsections chosen by negotiated features). */
export function balloonPayloadFromState(state: BalloonMigrationState): BalloonDevicePayload {
  return {
    numPages: state.numPages,
    actualPages: state.actualPages,
    hint: hasFeature(state.negotiatedFeatures, C.VIRTIO_BALLOON_F_FREE_PAGE_HINT)
      ? { cmdId: state.freePageHintCmdId, status: state.freePageHintStatus }
      : null,
    poisonVal: hasFeature(state.negotiatedFeatures, C.VIRTIO_BALLOON_F_PAGE_POISON) ? state.poisonVal : null,
  };
}

/**
 * Merges a decoded payload over a base state (the destination's own values), as QEMU loads
 * into the live device: fields of absent subsections keep their base values.
 */
export function applyBalloonPayload(base: BalloonMigrationState, payload: BalloonDevicePayload): BalloonMigrationState {
  let status = base.freePageHintStatus;
  if (payload.hint !== null) {
    if (!isHintStatus(payload.hint.status)) {
      throw new DeviceError('BALLOON_VMSTATE_ERR_BAD_VALUE', `invalid free page hint status ${payload.hint.status}`);
    }
    status = payload.hint.status;
  }
  return {
    ...base,
    numPages: payload.numPages,
    actualPages: payload.actualPages,
    freePageHintCmdId: payload.hint?.cmdId ?? base.freePageHintCmdId,
    freePageHintStatus: status,
    poisonVal: payload.poisonVal ?? base.poisonVal,
  };
}

/** Writes the `virtio-balloon-device` vmsd. */
export function encodeBalloonDevicePayload(payload: BalloonDevicePayload, out: ByteWriter): void {
  out.be32(payload.numPages).be32(payload.actualPages);
  if (payload.hint !== null) {
    out.u8(VMSTATE_SUBSECTION_MARKER).cstr8(C.BALLOON_VMSD_HINT_SUBSECTION).be32(C.BALLOON_VMSD_VERSION);
    out.be32(payload.hint.cmdId).be32(payload.hint.status);
  }
  if (payload.poisonVal !== null) {
    out.u8(VMSTATE_SUBSECTION_MARKER).cstr8(C.BALLOON_VMSD_POISON_SUBSECTION).be32(C.BALLOON_VMSD_VERSION);
    out.be32(payload.poisonVal);
  }
}

/** The vmsd bytes of a payload on their own. */
export function balloonDevicePayloadBytes(payload: BalloonDevicePayload): Uint8Array {
  const out = new ByteWriter(64);
  encodeBalloonDevicePayload(payload, out);
  return out.toBytes();
}

/**
 * Reads a `virtio-balloon-device` vmsd at the reader's position and leaves the reader after
 * it. Errors: BALLOON_VMSTATE_ERR_TRUNCATED, _UNKNOWN_SUBSECTION, _BAD_VERSION.
 */
export function decodeBalloonDevicePayload(reader: ByteReader): BalloonDevicePayload {
  try {
    const numPages = reader.be32();
    const actualPages = reader.be32();
    let hint: BalloonDevicePayload['hint'] = null;
    let poisonVal: number | null = null;
    while (reader.remaining > 0 && reader.peekU8() === VMSTATE_SUBSECTION_MARKER) {
      const name = peekSubsectionName(reader);
      if (!name.startsWith(C.BALLOON_VMSD_NAME)) break;
      reader.skip(1);
      reader.cstr8();
      const version = reader.be32();
      if (name !== C.BALLOON_VMSD_HINT_SUBSECTION && name !== C.BALLOON_VMSD_POISON_SUBSECTION) {
        throw new DeviceError('BALLOON_VMSTATE_ERR_UNKNOWN_SUBSECTION', `VMState subsection '${name}' not found`);
      }
      if (version > C.BALLOON_VMSD_VERSION || version < 1) {
        throw new DeviceError('BALLOON_VMSTATE_ERR_BAD_VERSION', `subsection '${name}' version ${version} is not supported (max ${C.BALLOON_VMSD_VERSION})`);
      }
      if (name === C.BALLOON_VMSD_HINT_SUBSECTION) hint = { cmdId: reader.be32(), status: reader.be32() };
      else poisonVal = reader.be32();
    }
    return { numPages, actualPages, hint, poisonVal };
  } catch (error) {
    if (error instanceof ShortReadError) {
      throw new DeviceError('BALLOON_VMSTATE_ERR_TRUNCATED', `virtio-balloon-device state is truncated: ${error.message}`);
    }
    throw error;
  }
}

/** The name of the subsection starting at the reader's position (after 0x05); ShortReadError if cut off. */
function peekSubsectionName(reader: ByteReader): string {
  reader.need(2);
  const length = reader.bytes[reader.pos + 1];
  reader.need(2 + length);
  let name = '';
  for (let i = 0; i < length; i++) name += String.fromCharCode(reader.bytes[reader.pos + 2 + i]);
  return name;
}
