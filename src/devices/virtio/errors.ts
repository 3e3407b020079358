/**
 * Typed virtio errors. A guest that breaks the virtqueue rules (a descriptor loop, a buffer
 * outside guest memory, a bad indirect table, ...) is an operating error, not a bug in
 * livemig: it becomes a `VirtioError` with a stable `code`, which the device turns into
 * QEMU's `virtio_error()` behaviour (see split-queue.ts and device-core.ts). The driver side
 * (guest/virtio) uses the same class for a device that breaks the used ring, and the
 * feature/status handshake uses it to say why a status write was refused.
 */

/** Every code a VirtioError may carry, grouped by who detects it. */
export const VIRTIO_ERR = {
  // Queue configuration (transport writes, migration restore).
  QUEUE_CONFIG: 'VIRTIO_ERR_QUEUE_CONFIG',
  QUEUE_INDEX: 'VIRTIO_ERR_QUEUE_INDEX',
  MIGRATION_INCONSISTENT: 'VIRTIO_ERR_MIGRATION_INCONSISTENT',
  // Device side: walking the available ring and descriptor chains.
  AVAIL_IDX_JUMP: 'VIRTIO_ERR_AVAIL_IDX_JUMP',
  QUEUE_OVERRUN: 'VIRTIO_ERR_QUEUE_OVERRUN',
  HEAD_INDEX: 'VIRTIO_ERR_HEAD_INDEX',
  NEXT_INDEX: 'VIRTIO_ERR_NEXT_INDEX',
  DESC_LOOP: 'VIRTIO_ERR_DESC_LOOP',
  CHAIN_TOO_LONG: 'VIRTIO_ERR_CHAIN_TOO_LONG',
  CHAIN_TOO_LARGE: 'VIRTIO_ERR_CHAIN_TOO_LARGE',
  ADDR_RANGE: 'VIRTIO_ERR_ADDR_RANGE',
  ZERO_LENGTH: 'VIRTIO_ERR_ZERO_LENGTH',
  WRONG_DIRECTION: 'VIRTIO_ERR_WRONG_DIRECTION',
  INDIRECT_NOT_NEGOTIATED: 'VIRTIO_ERR_INDIRECT_NOT_NEGOTIATED',
  INDIRECT_BAD_LENGTH: 'VIRTIO_ERR_INDIRECT_BAD_LENGTH',
  INDIRECT_NESTED: 'VIRTIO_ERR_INDIRECT_NESTED',
  INDIRECT_WITH_NEXT: 'VIRTIO_ERR_INDIRECT_WITH_NEXT',
  INDIRECT_MISPLACED: 'VIRTIO_ERR_INDIRECT_MISPLACED',
  // Driver side: a device that breaks the used ring.
  USED_IDX_JUMP: 'VIRTIO_ERR_USED_IDX_JUMP',
  USED_ID_RANGE: 'VIRTIO_ERR_USED_ID_RANGE',
  USED_ID_NOT_HEAD: 'VIRTIO_ERR_USED_ID_NOT_HEAD',
  // Feature negotiation and the status register.
  FEATURES_NOT_OFFERED: 'VIRTIO_ERR_FEATURES_NOT_OFFERED',
  FEATURES_NO_VERSION_1: 'VIRTIO_ERR_FEATURES_NO_VERSION_1',
  FEATURES_ACCESS_PLATFORM: 'VIRTIO_ERR_FEATURES_ACCESS_PLATFORM',
  FEATURES_REJECTED: 'VIRTIO_ERR_FEATURES_REJECTED',
  FEATURES_LOCKED: 'VIRTIO_ERR_FEATURES_LOCKED',
  STATUS_SEQUENCE: 'VIRTIO_ERR_STATUS_SEQUENCE',
  STATUS_CLEAR: 'VIRTIO_ERR_STATUS_CLEAR',
  // A device model (balloon, virtio-mem) found a guest protocol violation in a buffer's contents.
  DEVICE_PROTOCOL: 'VIRTIO_ERR_DEVICE_PROTOCOL',
} as const;

export type VirtioErrorCode = (typeof VIRTIO_ERR)[keyof typeof VIRTIO_ERR];

/** The set of all codes, for tests that check an error is one of ours. */
export const VIRTIO_ERROR_CODES: ReadonlySet<string> = new Set(Object.values(VIRTIO_ERR));

export class VirtioError extends Error {
  override name = 'VirtioError';
  constructor(
    /** Stable machine-readable code, e.g. VIRTIO_ERR_DESC_LOOP. */
    readonly code: VirtioErrorCode,
    message: string,
  ) {
    super(message);
  }

  toJSON(): object {
    return { code: this.code, message: this.message };
  }
}
