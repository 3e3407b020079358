/**
 * Decoding of the guest-written buffers of the balloon's queues, as pure functions of guest
 * memory and one element. The device decides what to do with the decoded values.
 *
 * - inflate/deflate: device-readable arrays of le32 page frame numbers in 4 KiB units; a
 *   trailing fragment of fewer than 4 bytes is ignored (QEMU reads whole u32s only).
 * - stats: device-readable packed {le16 tag, le64 value} entries; a trailing fragment of
 *   fewer than 10 bytes is ignored.
 * - free page queue: the first 4 device-readable bytes are the le32 command id.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { gatherReadable, segmentsLengthBytes, type QueueElement } from '../element-io.ts';
import { BALLOON_STAT_ENTRY_BYTES } from './constants.ts';

/** The le32 PFNs of an inflate or deflate element, in order. */
export function readPfns(memory: GuestMemory, element: QueueElement): number[] {
  const lengthBytes = segmentsLengthBytes(element.readable);
  const bytes = gatherReadable(memory, element, 0, lengthBytes - (lengthBytes % 4));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pfns: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; at += 4) pfns.push(view.getUint32(at, true));
  return pfns;
}

/** One guest statistic. Values are full u64s, so they are bigints. */
export interface BalloonStatEntry {
  /** VIRTIO_BALLOON_S_* tag. */
  readonly tag: number;
  /** The guest's value for the tag. */
  readonly value: bigint;
}

export interface StatsBuffer {
  /** The entries in buffer order (unknown tags included; the device drops them). */
  readonly entries: readonly BalloonStatEntry[];
  /** Bytes consumed: whole entries only (QEMU's stats_vq_offset). */
  readonly consumedBytes: number;
}

/** The {le16 tag, le64 value} entries of a stats element. */
export function readStats(memory: GuestMemory, element: QueueElement): StatsBuffer {
  const lengthBytes = segmentsLengthBytes(element.readable);
  const wholeBytes = lengthBytes - (lengthBytes % BALLOON_STAT_ENTRY_BYTES);
  const bytes = gatherReadable(memory, element, 0, wholeBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: BalloonStatEntry[] = [];
  for (let at = 0; at + BALLOON_STAT_ENTRY_BYTES <= bytes.length; at += BALLOON_STAT_ENTRY_BYTES) {
    entries.push({ tag: view.getUint16(at, true), value: view.getBigUint64(at + 2, true) });
  }
  return { entries, consumedBytes: bytes.length };
}

/**
 * The le32 command id at the start of a free page element's readable part: null when the
 * element has no readable part, 'short' when it has fewer than 4 readable bytes.
 */
export function readCmdId(memory: GuestMemory, element: QueueElement): number | null | 'short' {
  if (element.readable.length === 0) return null;
  const bytes = gatherReadable(memory, element, 0, 4);
  if (bytes.length < 4) return 'short';
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
}
