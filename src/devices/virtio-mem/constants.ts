/**
 * virtio-mem constants (virtio 1.2 §5.15, QEMU 7.2 hw/virtio/virtio-mem.c): device id,
 * features, config layout, request and response codes, sizes and vmstate names.
 */
import { MiB } from '../../lib/units.ts';

export const VIRTIO_ID_MEM = 24;

/** Feature bits (bit numbers). */
export const VIRTIO_MEM_F_ACPI_PXM = 0;
export const VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE = 1;

/** Config space (read-only for the driver, little-endian), 56 bytes. */
export const VIRTIO_MEM_CONFIG_BLOCK_SIZE_OFFSET = 0;
export const VIRTIO_MEM_CONFIG_NODE_ID_OFFSET = 8;
export const VIRTIO_MEM_CONFIG_ADDR_OFFSET = 16;
export const VIRTIO_MEM_CONFIG_REGION_SIZE_OFFSET = 24;
export const VIRTIO_MEM_CONFIG_USABLE_REGION_SIZE_OFFSET = 32;
export const VIRTIO_MEM_CONFIG_PLUGGED_SIZE_OFFSET = 40;
export const VIRTIO_MEM_CONFIG_REQUESTED_SIZE_OFFSET = 48;
export const VIRTIO_MEM_CONFIG_SIZE_BYTES = 56;

/** Request types (le16 at offset 0 of a 24-byte request). */
export const VIRTIO_MEM_REQ_PLUG = 0;
export const VIRTIO_MEM_REQ_UNPLUG = 1;
export const VIRTIO_MEM_REQ_UNPLUG_ALL = 2;
export const VIRTIO_MEM_REQ_STATE = 3;
/** le16 type, 6 bytes padding, le64 addr, le16 nb_blocks, 6 bytes padding. */
export const VIRTIO_MEM_REQ_SIZE_BYTES = 24;
export const VIRTIO_MEM_REQ_ADDR_OFFSET = 8;
export const VIRTIO_MEM_REQ_NB_BLOCKS_OFFSET = 16;

/** Response types (le16 at offset 0 of a 10-byte response). */
export const VIRTIO_MEM_RESP_ACK = 0;
export const VIRTIO_MEM_RESP_NACK = 1;
export const VIRTIO_MEM_RESP_BUSY = 2;
export const VIRTIO_MEM_RESP_ERROR = 3;
/** le16 type, 6 bytes padding, le16 state. */
export const VIRTIO_MEM_RESP_SIZE_BYTES = 10;
export const VIRTIO_MEM_RESP_STATE_OFFSET = 8;

/** STATE response values. */
export const VIRTIO_MEM_STATE_PLUGGED = 0;
export const VIRTIO_MEM_STATE_UNPLUGGED = 1;
export const VIRTIO_MEM_STATE_MIXED = 2;

/** The smallest block size QEMU accepts (VIRTIO_MEM_MIN_BLOCK_SIZE). */
export const VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES = 1 * MiB;
/** QEMU's default on x86_64 when THP size is unknown. */
export const VIRTIO_MEM_DEFAULT_BLOCK_SIZE_BYTES = 2 * MiB;
/** How far past requested_size the usable region reaches on x86 (VIRTIO_MEM_USABLE_EXTENT). */
export const VIRTIO_MEM_USABLE_EXTENT_BYTES = 2 * 128 * MiB;

/** Queue size QEMU creates for the guest-request queue. */
export const VIRTIO_MEM_QUEUE_SIZE = 128;

/** vmstate of the device part of the section. */
export const VIRTIO_MEM_VMSD_NAME = 'virtio-mem-device';
export const VIRTIO_MEM_VMSD_VERSION = 1;
