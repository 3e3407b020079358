/**
 * The device sections the simulated machine migrates, and the decoder that tells the
 * destination engine where each payload ends:
 *
 * - `0000:00:02.0/virtio-balloon` (version 1): the virtio wrapper of
 *   devices/balloon/virtio-section.ts around the `virtio-balloon-device` vmsd, the QEMU 7.2
 *   layout that carries the free page hint status (DONE travels here);
 * - `0000:00:03.0/virtio-mem` (version 1): the `virtio-mem-device` vmsd
 *   (devices/virtio-mem/virtio-mem-vmstate.ts): the plugged bitmap.
 *
 * The decoder only measures a payload (it reads lengths and subsection names, never values):
 * the stream decoder retries a section whose bytes have not all arrived, so measuring must not
 * throw anything but ShortReadError, and the codecs' own decoders turn a short read into their
 * typed errors. The world decodes the complete payload in its loadDevice hook.
 *
 * What it deliberately doesn't do: carry the split queues' ring addresses (QEMU's
 * `virtio/virtqueues` subsection, which virtio-section.ts does not model); the world passes
 * the core's queue layouts beside the stream (see device-host.ts).
 */
import type { ByteReader } from '../lib/bytes.ts';
import type { DeviceSectionDecoder, DeviceState, SectionHeader } from '../format/stream-types.ts';
import { BALLOON_VMSD_NAME } from '../devices/balloon/constants.ts';
import { FormatError } from '../format/errors.ts';
import { MIG_ERR_DEVICE_STATE, MIG_ERR_UNKNOWN_SECTION } from '../format/stream-errors.ts';

export const BALLOON_SECTION_IDSTR = '0000:00:02.0/virtio-balloon';
export const VIRTIO_MEM_SECTION_IDSTR = '0000:00:03.0/virtio-mem';
export const DEVICE_SECTION_VERSION = 1;

/** QEMU_VM_SUBSECTION. */
const SUBSECTION = 0x05;
const VIRTIO_64BIT_FEATURES = 'virtio/64bit_features';

/** Skips a subsection header (marker, name, version) and returns its name. */
function subsectionName(reader: ByteReader): string {
  reader.skip(1);
  return reader.cstr8();
}

/** Measures a virtio-balloon section payload (see the module comment). */
export function measureBalloonSection(reader: ByteReader): void {
  reader.skip(1 + 1 + 2 + 4); // status, isr, queue_sel, low features
  const configBytes = reader.be32();
  reader.skip(configBytes);
  const queueCount = reader.be32();
  reader.skip(queueCount * (4 + 8 + 2));
  reader.skip(4 + 4); // num_pages, actual
  // The section footer always follows, so running out of bytes here means "wait for more".
  while ((reader.need(1), reader.peekU8() === SUBSECTION)) {
    const at = reader.pos;
    const name = subsectionName(reader);
    reader.skip(4); // version
    if (name === `${BALLOON_VMSD_NAME}/free-page-report`) reader.skip(8);
    else if (name === `${BALLOON_VMSD_NAME}/page-poison`) reader.skip(4);
    else if (name === VIRTIO_64BIT_FEATURES) reader.skip(8);
    else {
      reader.pos = at; // not ours: the footer check will refuse it
      break;
    }
  }
}

/** Bytes of a virtio-mem-device payload for a region of `blockCount` blocks. */
export function virtioMemPayloadBytes(blockCount: number): number {
  return 8 + 8 + 8 + 4 + 8 + 8 + 8 + Math.ceil(blockCount / 64) * 8;
}

/** The most blocks a virtio-mem payload may declare (a 1 TiB region of 1 MiB blocks). */
const VIRTIO_MEM_BLOCKS_MAX = 1 << 20;

/**
 * The block count a virtio-mem-device payload declares in its sanity block (region_size /
 * block_size), read without moving the reader. The payload is measured by what the source
 * declares, so a destination with other properties still reads the whole payload and its load
 * reports QEMU's "Property 'block-size' changed ..." rather than a misplaced footer.
 */
function declaredVirtioMemBlocks(reader: ByteReader, header: SectionHeader): number {
  const at = reader.pos;
  reader.skip(8); // addr
  const regionBytes = reader.be64();
  const blockBytes = reader.be64();
  reader.pos = at;
  const blocks = blockBytes === 0 ? 0 : regionBytes / blockBytes;
  if (!Number.isInteger(blocks) || blocks <= 0 || blocks > VIRTIO_MEM_BLOCKS_MAX) {
    throw new FormatError(MIG_ERR_DEVICE_STATE, `virtio-mem: region of ${regionBytes} bytes in blocks of ${blockBytes} bytes`, header.offset);
  }
  return blocks;
}

/** The decoder of the simulated machine's device sections (and the real shell's). */
export class SimDeviceDecoder implements DeviceSectionDecoder {
  decode(header: SectionHeader, reader: ByteReader): DeviceState {
    if (header.idstr === BALLOON_SECTION_IDSTR) {
      measureBalloonSection(reader);
      return { device: 'virtio-balloon' };
    }
    if (header.idstr === VIRTIO_MEM_SECTION_IDSTR) {
      reader.skip(virtioMemPayloadBytes(declaredVirtioMemBlocks(reader, header)));
      return { device: 'virtio-mem' };
    }
    throw new FormatError(MIG_ERR_UNKNOWN_SECTION, `Unknown savevm section or instance '${header.idstr}' ${header.instanceId}`, header.offset);
  }
}
