/**
 * A simplified form of QEMU's generic virtio migration wrapper (virtio_save/virtio_load)
 * around the balloon's device vmsd, for the `<qdev path>/virtio-balloon` section (version 1).
 *
 * Layout written (big-endian):
 *   u8 status, u8 isr, be16 queue_sel, be32 guest features (low 32),
 *   be32 config_len, config bytes,
 *   be32 queue count, per queue {be32 size, be64 descriptor table gpa, be16 last_avail_idx},
 *   the `virtio-balloon-device` vmsd (balloon-vmstate.ts),
 *   u8 0x05, cstr8 "virtio/64bit_features", be32 1, be64 guest features.
 *
 * QEMU-compatible: the order and encoding of every field above, and the device vmsd bytes.
 * Not QEMU-compatible (a real QEMU section would differ): the transport's own state that
 * virtio-pci writes first (PCI config space, MSI-X) and per queue (MSI-X vector); and the
 * other `virtio/...` subsections QEMU writes for modern devices (virtqueues ring
 * addresses, ringsize, extra_state, started, broken, device_endian). The decoder refuses
 * those subsections with VIRTIO_VMSTATE_ERR_UNSUPPORTED_SUBSECTION rather than misread them.
 */
import { ByteReader, ByteWriter, ShortReadError } from '../../lib/bytes.ts';
import { featuresFromHalves, featuresHigh32, featuresLow32 } from '../virtio/constants.ts';
import { DeviceError } from '../device-error.ts';
import type { BalloonDevice } from './balloon-device.ts';
import {
  applyBalloonPayload,
  balloonPayloadFromState,
  decodeBalloonDevicePayload,
  encodeBalloonDevicePayload,
  type BalloonMigrationState,
} from './balloon-vmstate.ts';

const VMSTATE_SUBSECTION_MARKER = 0x05;
const SUBSECTION_64BIT_FEATURES = 'virtio/64bit_features';
/** QEMU's VIRTIO_QUEUE_MAX. */
const VIRTIO_QUEUE_MAX = 1024;

/** The generic virtio fields the virtio core and queue owner supply. */
export interface VirtioTransportFields {
  /** Device status register. */
  readonly status: number;
  /** Interrupt status register. */
  readonly isr: number;
  /** Selected queue index. */
  readonly queueSel: number;
  /** Descriptor table gpa of each queue, in queue order. */
  readonly descGpa: readonly number[];
}

/** The section payload for a balloon state. */
export function encodeVirtioBalloonSection(
  device: BalloonDevice,
  state: BalloonMigrationState,
  transport: VirtioTransportFields,
): Uint8Array {
  const out = new ByteWriter(256);
  const config = device.configBytesForMigration();
  out.u8(transport.status).u8(transport.isr).be16(transport.queueSel);
  out.be32(featuresLow32(state.negotiatedFeatures));
  out.be32(config.length).bytes(config);
  out.be32(device.queues.length);
  device.queues.forEach((queue, i) => {
    out.be32(queue.sizeEntries).be64(transport.descGpa[i] ?? 0).be16(state.lastAvailIdx[i]);
  });
  encodeBalloonDevicePayload(balloonPayloadFromState(state), out);
  out.u8(VMSTATE_SUBSECTION_MARKER).cstr8(SUBSECTION_64BIT_FEATURES).be32(1);
  out.be32(featuresHigh32(state.negotiatedFeatures)).be32(featuresLow32(state.negotiatedFeatures));
  return out.toBytes();
}

export interface DecodedVirtioBalloonSection {
  /** The balloon state, over `base` for fields the stream leaves out. */
  readonly state: BalloonMigrationState;
  readonly transport: VirtioTransportFields;
  /** The config bytes as saved (QEMU vdev->config). */
  readonly config: Uint8Array;
}

/**
 * Reads a section payload produced by encodeVirtioBalloonSection for a device with the same
 * queue layout. `base` supplies values absent from the stream (the destination's own).
 */
export function decodeVirtioBalloonSection(
  bytes: Uint8Array,
  device: BalloonDevice,
  base: BalloonMigrationState,
): DecodedVirtioBalloonSection {
  const reader = new ByteReader(bytes);
  try {
    const status = reader.u8();
    const isr = reader.u8();
    const queueSel = reader.be16();
    const featuresLow = reader.be32();
    const configLength = reader.be32();
    const config = reader.bytesView(configLength).slice();
    const queueCount = reader.be32();
    if (queueCount > VIRTIO_QUEUE_MAX) throw new DeviceError('VIRTIO_VMSTATE_ERR_QUEUE_COUNT', `Invalid number of virtqueues: 0x${queueCount.toString(16)}`);
    if (queueCount !== device.queues.length) {
      throw new DeviceError('VIRTIO_VMSTATE_ERR_QUEUE_COUNT', `stream has ${queueCount} virtqueues, device has ${device.queues.length}`);
    }
    const descGpa: number[] = [];
    const lastAvailIdx: number[] = [];
    for (let i = 0; i < queueCount; i++) {
      const size = reader.be32();
      if (size !== device.queues[i].sizeEntries) {
        throw new DeviceError('VIRTIO_VMSTATE_ERR_QUEUE_SIZE', `virtqueue ${i} size ${size} differs from the device's ${device.queues[i].sizeEntries}`);
      }
      descGpa.push(reader.be64());
      lastAvailIdx.push(reader.be16());
    }
    const payload = decodeBalloonDevicePayload(reader);
    // As in QEMU: the low half alone unless the 64-bit subsection follows with all 64 bits.
    let features = featuresFromHalves(featuresLow, 0);
    while (reader.remaining > 0) {
      if (reader.u8() !== VMSTATE_SUBSECTION_MARKER) throw new DeviceError('VIRTIO_VMSTATE_ERR_TRAILING', 'unexpected bytes after the virtio state');
      const name = reader.cstr8();
      const version = reader.be32();
      if (name !== SUBSECTION_64BIT_FEATURES || version !== 1) {
        throw new DeviceError('VIRTIO_VMSTATE_ERR_UNSUPPORTED_SUBSECTION', `virtio subsection '${name}' version ${version} is not supported`);
      }
      const high = reader.be32();
      features = featuresFromHalves(reader.be32(), high);
    }
    const merged = applyBalloonPayload({ ...base, lastAvailIdx, negotiatedFeatures: features }, payload);
    return { state: merged, transport: { status, isr, queueSel, descGpa }, config };
  } catch (error) {
    if (error instanceof ShortReadError) throw new DeviceError('VIRTIO_VMSTATE_ERR_TRUNCATED', `virtio-balloon state is truncated: ${error.message}`);
    throw error;
  }
}
