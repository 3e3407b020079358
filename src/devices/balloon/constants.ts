/**
 * virtio-balloon constants as QEMU 7.2 and Linux spell them: device id, feature bits, config
 * layout, queue sizes, command ids and guest statistics tags. Values are from the virtio 1.2
 * spec (Traditional Memory Balloon Device) and QEMU's hw/virtio/virtio-balloon.c.
 */
import {
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureSet,
} from '../virtio/constants.ts';

/** virtio device id of the balloon. */
export const VIRTIO_ID_BALLOON = 5;

/** Balloon PFNs count 4 KiB pages whatever the guest page size (VIRTIO_BALLOON_PFN_SHIFT). */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
export const BALLOON_PAGE_SIZE_BYTES = 1 << VIRTIO_BALLOON_PFN_SHIFT;

/** Feature bits (bit numbers). */
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
/** The spec's VIRTIO_BALLOON_F_PAGE_REPORTING. */
export const VIRTIO_BALLOON_F_REPORTING = 5;

/** RING_RESET (40) and bit 30 (legacy BAD_FEATURE), which QEMU 7.2's virtio-pci also offers. */
const VIRTIO_F_BAD_FEATURE = 30;
const VIRTIO_F_RING_RESET = 40;

/**
 * The device-independent features QEMU 7.2 offered on a virtio-balloon-pci (observed with
 * `info virtio-status`). The virtio core merges these with the device's own bits.
 */
export const QEMU_72_BALLOON_TRANSPORT_FEATURES: bigint = featureSet(
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_F_BAD_FEATURE,
  VIRTIO_F_RING_RESET,
);

/** Config space offsets (all fields little-endian, also for legacy devices). */
export const BALLOON_CONFIG_NUM_PAGES_OFFSET = 0;
export const BALLOON_CONFIG_ACTUAL_OFFSET = 4;
export const BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID_OFFSET = 8;
export const BALLOON_CONFIG_POISON_VAL_OFFSET = 12;
/** sizeof(struct virtio_balloon_config). */
export const BALLOON_CONFIG_SIZE_MAX_BYTES = 16;

/** Queue sizes QEMU creates (VIRTQUEUE_MAX_SIZE for the free page queue). */
export const BALLOON_INFLATE_QUEUE_SIZE = 128;
export const BALLOON_DEFLATE_QUEUE_SIZE = 128;
export const BALLOON_STATS_QUEUE_SIZE = 128;
export const BALLOON_FREE_PAGE_QUEUE_SIZE = 1024;
export const BALLOON_REPORTING_QUEUE_SIZE = 32;

/** Command ids the driver reads in free_page_hint_cmd_id: STOP and DONE; any value ≥ 2 is a request. */
export const VIRTIO_BALLOON_CMD_ID_STOP = 0;
export const VIRTIO_BALLOON_CMD_ID_DONE = 1;
/** QEMU's initial stored command id; the first request increments it to 0x80000001. */
export const VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN = 0x80000000;
/** The largest command id before the counter wraps back to the minimum. */
export const VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MAX = 0xffffffff;

/** Guest statistics tags (le16) and QEMU's names for them; tags ≥ VIRTIO_BALLOON_S_NR are ignored. */
export const BALLOON_STAT_NAMES = [
  'stat-swap-in',
  'stat-swap-out',
  'stat-major-faults',
  'stat-minor-faults',
  'stat-free-memory',
  'stat-total-memory',
  'stat-available-memory',
  'stat-disk-caches',
  'stat-htlb-pgalloc',
  'stat-htlb-pgfail',
] as const;
export const VIRTIO_BALLOON_S_NR = BALLOON_STAT_NAMES.length;
/** A statistic the guest has not reported reads as all ones (QEMU stores -1 in a uint64). */
export const BALLOON_STAT_UNSET = 0xffffffffffffffffn;
/** One statistics entry: le16 tag then le64 value, packed. */
export const BALLOON_STAT_ENTRY_BYTES = 10;

/** vmstate names and versions of the device part of the balloon's migration section. */
export const BALLOON_VMSD_NAME = 'virtio-balloon-device';
export const BALLOON_VMSD_HINT_SUBSECTION = 'virtio-balloon-device/free-page-report';
export const BALLOON_VMSD_POISON_SUBSECTION = 'virtio-balloon-device/page-poison';
export const BALLOON_VMSD_VERSION = 1;
