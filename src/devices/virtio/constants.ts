/**
 * Device-independent virtio constants (virtio 1.2, split virtqueues): descriptor and ring
 * flags, feature bit numbers, device status bits, and the event-index arithmetic both ends
 * of a queue use to suppress notifications. Names keep the spec's / QEMU's / Linux's
 * SCREAMING_SNAKE spelling so they can be grepped across the codebases.
 *
 * Feature bits are bit numbers (0..63); `featureBit()` turns one into a 64-bit mask. Feature
 * sets are bigints so all 64 bits fit in one value.
 */

/** The chain continues at the descriptor named by `next`. */
export const VIRTQ_DESC_F_NEXT = 1;
/** The buffer is device-writable (otherwise device-readable). */
export const VIRTQ_DESC_F_WRITE = 2;
/** addr/len name a table of len/16 descriptors (needs VIRTIO_RING_F_INDIRECT_DESC). */
export const VIRTQ_DESC_F_INDIRECT = 4;

/** avail.flags: the driver asks the device not to interrupt on used buffers (advisory). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device asks the driver not to kick on new available buffers (advisory). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Legacy: notify when the avail ring runs empty even if interrupts are suppressed. */
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
/** Legacy: the device accepts any descriptor layout (implied by VERSION_1). */
export const VIRTIO_F_ANY_LAYOUT = 27;
/** Descriptors may point at indirect descriptor tables. */
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
/** used_event / avail_event replace the ring flags for notification suppression. */
export const VIRTIO_RING_F_EVENT_IDX = 29;
/** The device and driver follow virtio 1.x (little-endian rings, FEATURES_OK handshake). */
export const VIRTIO_F_VERSION_1 = 32;
/** The device accesses memory through a platform IOMMU (QEMU: VIRTIO_F_IOMMU_PLATFORM). */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** Packed virtqueues (not implemented here; never offered by this model). */
export const VIRTIO_F_RING_PACKED = 34;
/** Buffers are used in the order they were made available (not implemented here). */
export const VIRTIO_F_IN_ORDER = 35;

/** Device status: the guest has noticed the device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** Device status: the guest knows how to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** Device status: the driver is set up and ready to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** Device status: feature negotiation is complete (set by the driver, kept by the device only if acceptable). */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** Device status: the device hit an error it cannot recover from without a reset (device-owned). */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 64;
/** Device status: the driver gave up on the device. */
export const VIRTIO_CONFIG_S_FAILED = 128;

/** The largest queue size the split ring format allows. */
export const VIRTQUEUE_SIZE_MAX = 32768;
/** QEMU's VIRTQUEUE_MAX_SIZE, the largest queue QEMU devices create. */
export const VIRTQUEUE_MAX_SIZE_QEMU = 1024;

/** A feature bit number as a 64-bit mask. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** Whether `features` contains feature bit `bit`. */
export function hasFeature(features: bigint, bit: number): boolean {
  return (features & featureBit(bit)) !== 0n;
}

/** Builds a feature set from bit numbers. */
export function featureSet(...bits: number[]): bigint {
  let features = 0n;
  for (const bit of bits) features |= featureBit(bit);
  return features;
}

/** The low 32 feature bits, as QEMU's migration stream carries them ("guest features"). */
export function featuresLow32(features: bigint): number {
  return Number(features & 0xffffffffn);
}

/** The high 32 feature bits (QEMU's "virtio/64bit_features" subsection). */
export function featuresHigh32(features: bigint): number {
  return Number((features >> 32n) & 0xffffffffn);
}

/** Joins the two 32-bit halves back into one feature set. */
export function featuresFromHalves(low32: number, high32: number): bigint {
  return (BigInt(high32 >>> 0) << 32n) | BigInt(low32 >>> 0);
}

/**
 * The event-index test of virtio 1.x (Linux/QEMU vring_need_event): after moving an index
 * from `oldIdx` to `newIdx`, notify iff the other side's published event index lies in
 * [oldIdx, newIdx). All three are free-running u16 values.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
