/**
 * The QEMU 7.2 byte form of the `virtio-mem-device` vmsd (version 1, priority
 * MIG_PRI_VIRTIO_MEM = 3), big-endian:
 *   be64 addr, be64 region_size, be64 block_size, be32 node   (sanity block; must match)
 *   be64 usable_region_size, be64 size (plugged), be64 requested_size,
 *   plugged bitmap as ceil(blocks / 64) be64 words (bit i of the bitmap = bit i % 64 of word i / 64).
 * Only this device vmsd is covered; the generic virtio wrapper around it in a real
 * `virtio-mem` section is not (see balloon/virtio-section.ts for the balloon's).
 */
import { ByteReader, ByteWriter, ShortReadError } from '../../lib/bytes.ts';
import { DeviceError } from '../device-error.ts';
import type { VirtioMemDevice, VirtioMemMigrationState } from './virtio-mem-device.ts';

/** The vmsd bytes for a device's current state. */
export function encodeVirtioMemDevicePayload(device: VirtioMemDevice, state: VirtioMemMigrationState = device.captureState()): Uint8Array {
  const out = new ByteWriter(64 + Math.ceil(device.blockCount / 8));
  out.be64(device.addrBytes).be64(device.regionSizeBytes).be64(device.blockSizeBytes).be32(device.nodeId);
  out.be64(state.usableRegionSizeBytes).be64(state.pluggedSizeBytes).be64(state.requestedSizeBytes);
  const words64 = Math.ceil(device.blockCount / 64);
  for (let i = 0; i < words64; i++) {
    out.be32(state.pluggedWords[2 * i + 1] ?? 0).be32(state.pluggedWords[2 * i] ?? 0);
  }
  return out.toBytes();
}

/**
 * Reads the vmsd at the reader's position for a device with the same properties and returns
 * the migrated state (not yet installed: call device.restoreState, which checks consistency).
 * Errors: VIRTIO_MEM_VMSTATE_ERR_PROPERTY_CHANGED, VIRTIO_MEM_VMSTATE_ERR_TRUNCATED.
 */
export function decodeVirtioMemDevicePayload(reader: ByteReader, device: VirtioMemDevice): VirtioMemMigrationState {
  try {
    const changed = (what: string, from: number, to: number, hexValues = true): never => {
      const f = hexValues ? `0x${from.toString(16)}` : String(from);
      const t = hexValues ? `0x${to.toString(16)}` : String(to);
      throw new DeviceError('VIRTIO_MEM_VMSTATE_ERR_PROPERTY_CHANGED', `Property '${what}' changed from ${f} to ${t}`);
    };
    const addr = reader.be64();
    const regionSize = reader.be64();
    const blockSize = reader.be64();
    const node = reader.be32();
    if (addr !== device.addrBytes) changed('memaddr', addr, device.addrBytes);
    if (regionSize !== device.regionSizeBytes) changed('memdev', regionSize, device.regionSizeBytes);
    if (blockSize !== device.blockSizeBytes) changed('block-size', blockSize, device.blockSizeBytes);
    if (node !== device.nodeId) changed('node', node, device.nodeId, false);
    const usableRegionSizeBytes = reader.be64();
    const pluggedSizeBytes = reader.be64();
    const requestedSizeBytes = reader.be64();
    const words64 = Math.ceil(device.blockCount / 64);
    const pluggedWords = new Uint32Array(Math.ceil(device.blockCount / 32));
    for (let i = 0; i < words64; i++) {
      const high = reader.be32();
      const low = reader.be32();
      pluggedWords[2 * i] = low;
      if (2 * i + 1 < pluggedWords.length) pluggedWords[2 * i + 1] = high;
      else if (high !== 0) throw new DeviceError('VIRTIO_MEM_ERR_BAD_STATE', 'bitmap has bits set past the last block');
    }
    return { usableRegionSizeBytes, pluggedSizeBytes, requestedSizeBytes, pluggedWords };
  } catch (error) {
    if (error instanceof ShortReadError) {
      throw new DeviceError('VIRTIO_MEM_VMSTATE_ERR_TRUNCATED', `virtio-mem-device state is truncated: ${error.message}`);
    }
    throw error;
  }
}
