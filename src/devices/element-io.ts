/**
 * Queue-agnostic buffer access for the balloon and virtio-mem devices. A device handler is a
 * function of one popped virtqueue element (the descriptor chain already walked into
 * device-readable and device-writable segments) plus guest memory; it returns what the
 * queue should do with the element. Whoever owns the split queue pops, calls the handler and
 * carries out the returned effect, so the device logic does not depend on the ring code.
 *
 * The gather/scatter helpers behave like QEMU's iov_to_buf / iov_from_buf over the
 * element's segments: they treat the segments as one contiguous byte stream and copy as much
 * as exists, reporting short reads by returning fewer bytes.
 */
import type { GuestMemory } from '../memory/guest-memory.ts';

/** One guest-physical buffer segment of a descriptor chain. */
export interface BufferSegment {
  /** Guest-physical address of the first byte. */
  readonly gpa: number;
  /** Length of the segment in bytes. */
  readonly lengthBytes: number;
}

/**
 * A popped virtqueue element, structurally identical to the split queue's element: the head
 * descriptor index, then the device-readable segments (driver → device) and the
 * device-writable segments (device → driver), each in chain order.
 */
export interface QueueElement {
  /** Head descriptor index; the used ring entry names it. */
  readonly head: number;
  /** Device-readable segments, in chain order. */
  readonly readable: readonly BufferSegment[];
  /** Device-writable segments, in chain order. */
  readonly writable: readonly BufferSegment[];
}

/** What to do with an element after a handler looked at it. */
export type ElementEffect =
  /** Return the element to the driver through the used ring, then notify the driver. */
  | { readonly kind: 'push'; readonly element: QueueElement; readonly usedLengthBytes: number }
  /** The device keeps the element for later (the balloon's stats buffer). */
  | { readonly kind: 'hold'; readonly element: QueueElement }
  /** Drop the element without a used entry (QEMU virtqueue_detach_element; the device is broken). */
  | { readonly kind: 'detach'; readonly element: QueueElement }
  /** Give the element back to the avail ring as if never popped (QEMU virtqueue_unpop). */
  | { readonly kind: 'unpop'; readonly element: QueueElement };

/**
 * Receiver of "this guest memory may be dropped" requests (QEMU ram_block_discard_range):
 * balloon inflation, free page reporting and virtio-mem unplug. After a discard the range
 * reads as zeros. Ranges are page-aligned guest-physical byte ranges.
 */
export interface DiscardSink {
  discard(gpa: number, lengthBytes: number): void;
}

/** A DiscardSink that drops every request, for devices whose memory is not modelled. */
export const NULL_DISCARD_SINK: DiscardSink = { discard: () => {} };

/** Total bytes of a segment list. */
export function segmentsLengthBytes(segments: readonly BufferSegment[]): number {
  let total = 0;
  for (const s of segments) total += s.lengthBytes;
  return total;
}

/**
 * Copies up to `lengthBytes` bytes starting `offsetBytes` into the concatenation of the
 * readable segments (QEMU iov_to_buf). The result is shorter when the segments end first.
 * Guest memory errors propagate (GuestMemoryError); callers turn them into device errors.
 */
export function gatherReadable(
  memory: GuestMemory,
  element: QueueElement,
  offsetBytes: number,
  lengthBytes: number,
): Uint8Array {
  const out = new Uint8Array(Math.max(0, Math.min(lengthBytes, segmentsLengthBytes(element.readable) - offsetBytes)));
  let skip = offsetBytes;
  let at = 0;
  for (const segment of element.readable) {
    if (at >= out.length) break;
    if (skip >= segment.lengthBytes) {
      skip -= segment.lengthBytes;
      continue;
    }
    const take = Math.min(segment.lengthBytes - skip, out.length - at);
    out.set(memory.read(segment.gpa + skip, take), at);
    at += take;
    skip = 0;
  }
  return out;
}

/**
 * Copies `bytes` into the concatenation of the writable segments (QEMU iov_from_buf) and
 * returns how many bytes fit.
 */
export function scatterWritable(memory: GuestMemory, element: QueueElement, bytes: Uint8Array): number {
  let at = 0;
  for (const segment of element.writable) {
    if (at >= bytes.length) break;
    const take = Math.min(segment.lengthBytes, bytes.length - at);
    memory.write(segment.gpa, bytes.subarray(at, at + take));
    at += take;
  }
  return at;
}
