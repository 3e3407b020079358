/**
 * Where a split virtqueue lives in guest memory, shared by the device side (which checks a
 * layout the driver hands it) and the driver side (which lays one out). Three areas, all
 * little-endian (VERSION_1), for queue size N:
 *
 *   descriptor table  align 16  16·N bytes   N × {le64 addr, le32 len, le16 flags, le16 next}
 *   avail ring        align 2   6 + 2·N      le16 flags, le16 idx, le16 ring[N], le16 used_event
 *   used ring         align 4   6 + 8·N      le16 flags, le16 idx, N × {le32 id, le32 len}, le16 avail_event
 */
import { VIRTQUEUE_SIZE_MAX } from './constants.ts';
import { VIRTIO_ERR, VirtioError } from './errors.ts';

/** The guest addresses and size of one split virtqueue. */
export interface SplitQueueLayout {
  /** Number of descriptors and ring entries (N), a power of two in 1..32768. */
  readonly queueSize: number;
  /** Guest physical address of the descriptor table (16-aligned). */
  readonly descGpa: number;
  /** Guest physical address of the available ring, the driver area (2-aligned). */
  readonly availGpa: number;
  /** Guest physical address of the used ring, the device area (4-aligned). */
  readonly usedGpa: number;
}

/** Bytes in one descriptor. */
export const DESC_SIZE_BYTES = 16;
export const DESC_ALIGN_BYTES = 16;
export const AVAIL_ALIGN_BYTES = 2;
export const USED_ALIGN_BYTES = 4;

// Offsets inside a descriptor.
export const DESC_ADDR_OFFSET = 0;
export const DESC_LEN_OFFSET = 8;
export const DESC_FLAGS_OFFSET = 12;
export const DESC_NEXT_OFFSET = 14;

// Offsets inside the avail and used rings.
export const RING_FLAGS_OFFSET = 0;
export const RING_IDX_OFFSET = 2;
export const RING_ENTRIES_OFFSET = 4;
export const USED_ELEM_SIZE_BYTES = 8;

export function descTableSizeBytes(queueSize: number): number {
  return DESC_SIZE_BYTES * queueSize;
}

export function availRingSizeBytes(queueSize: number): number {
  return 6 + 2 * queueSize;
}

export function usedRingSizeBytes(queueSize: number): number {
  return 6 + USED_ELEM_SIZE_BYTES * queueSize;
}

/** Offset of avail.ring[slot]. */
export function availEntryOffset(slot: number): number {
  return RING_ENTRIES_OFFSET + 2 * slot;
}

/** Offset of used_event inside the avail ring. */
export function usedEventOffset(queueSize: number): number {
  return RING_ENTRIES_OFFSET + 2 * queueSize;
}

/** Offset of used.ring[slot].id (len follows at +4). */
export function usedElemOffset(slot: number): number {
  return RING_ENTRIES_OFFSET + USED_ELEM_SIZE_BYTES * slot;
}

/** Offset of avail_event inside the used ring. */
export function availEventOffset(queueSize: number): number {
  return RING_ENTRIES_OFFSET + USED_ELEM_SIZE_BYTES * queueSize;
}

export function isValidQueueSize(queueSize: number): boolean {
  return Number.isInteger(queueSize) && queueSize >= 1 && queueSize <= VIRTQUEUE_SIZE_MAX && (queueSize & (queueSize - 1)) === 0;
}

/**
 * Checks a layout against the spec's size and alignment rules and against guest memory of
 * `memorySizeBytes`. Returns the first problem as a VIRTIO_ERR_QUEUE_CONFIG error, or null.
 * Overlapping areas are the driver's business and are not refused (QEMU does not either).
 */
export function checkLayout(layout: SplitQueueLayout, memorySizeBytes: number): VirtioError | null {
  const { queueSize, descGpa, availGpa, usedGpa } = layout;
  if (!isValidQueueSize(queueSize)) {
    return configError(`Queue size ${queueSize} is not a power of two in 1..${VIRTQUEUE_SIZE_MAX}`);
  }
  const areas: Array<[string, number, number, number]> = [
    ['descriptor table', descGpa, DESC_ALIGN_BYTES, descTableSizeBytes(queueSize)],
    ['available ring', availGpa, AVAIL_ALIGN_BYTES, availRingSizeBytes(queueSize)],
    ['used ring', usedGpa, USED_ALIGN_BYTES, usedRingSizeBytes(queueSize)],
  ];
  for (const [name, gpa, alignBytes, sizeBytes] of areas) {
    if (!Number.isSafeInteger(gpa) || gpa < 0) return configError(`The ${name} address ${gpa} is not a guest physical address`);
    if (gpa % alignBytes !== 0) return configError(`The ${name} at 0x${gpa.toString(16)} is not ${alignBytes}-byte aligned`);
    if (gpa + sizeBytes > memorySizeBytes) {
      return configError(`The ${name} at 0x${gpa.toString(16)} (${sizeBytes} bytes) does not fit in ${memorySizeBytes} bytes of guest memory`);
    }
  }
  return null;
}

function configError(message: string): VirtioError {
  return new VirtioError(VIRTIO_ERR.QUEUE_CONFIG, message);
}
