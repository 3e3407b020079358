/**
 * The driver side of one split virtqueue, as Linux's drivers/virtio/virtio_ring.c does it:
 * a free-descriptor list, direct chains or (when negotiated and useful) one indirect table,
 * publication through the avail ring, kick suppression, and reclaiming used buffers.
 *
 * Like Linux since 5.14 (desc_extra), the chain and free-list links live in private arrays,
 * never read back from the descriptor table, so a device that scribbles on the table cannot
 * corrupt the driver's bookkeeping. A device that breaks the used ring (an id that is not
 * an outstanding head, an index that jumps) breaks the driver queue, as Linux's BAD_RING
 * does: `getUsed()` then returns null and `error` says why.
 *
 * Indirect tables come from a pool laid out with the rings: one table of
 * `indirectTableSegmentsMax` descriptors per head, so a head never needs more than its own.
 * Linux's policy picks indirect when total segments > 1 and a descriptor is free; here the
 * chain must also fit the pool table, or it goes direct. Either way a buffer has at most N
 * segments: the spec caps every chain, indirect ones too, at the queue size (which is why
 * QEMU sizes virtio-blk's seg_max from the queue size).
 *
 * As a test tool it also exposes raw writers (via `ring`, plus a few shortcuts) that bypass
 * all rules; see split-ring.ts.
 */
import { assert } from '../../lib/assert.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, hasFeature, vringNeedEvent,
} from '../../devices/virtio/constants.ts';
import type { Segment } from '../../devices/virtio/descriptor-chain.ts';
import { VIRTIO_ERR, VirtioError } from '../../devices/virtio/errors.ts';
import { DESC_ALIGN_BYTES, DESC_SIZE_BYTES, type SplitQueueLayout } from '../../devices/virtio/ring-layout.ts';
import type { GpaAllocator } from './bump-allocator.ts';
import { type DescriptorFields, SplitRing } from './split-ring.ts';

export interface SplitQueueDriverOptions {
  /** Queue size N (power of two, at most the device's maximum for the queue). */
  readonly queueSize: number;
  /** The negotiated features (INDIRECT_DESC and EVENT_IDX matter here). */
  readonly features: bigint;
  /** Descriptors per indirect table in the pool (default 8; 0 disables indirect). */
  readonly indirectTableSegmentsMax?: number;
}

/** A buffer returned by the device. */
export interface UsedBuffer<T> {
  readonly token: T;
  /** Bytes the device says it wrote into the buffer's device-writable part. */
  readonly usedLengthBytes: number;
}

const DEFAULT_INDIRECT_SEGMENTS = 8;

export class SplitQueueDriver<T> {
  /** Raw access to the rings (no rules enforced). */
  readonly ring: SplitRing;
  /** Whether EVENT_IDX was negotiated. */
  readonly eventIdx: boolean;
  /** Descriptors per pooled indirect table; 0 when indirect is off. */
  readonly indirectTableSegmentsMax: number;
  /** Base of the indirect table pool, or -1 when indirect is off. */
  private readonly indirectPoolGpa: number;
  /** Per descriptor: the next link (free list, or chain while in a chain). */
  private readonly extraNext: Uint16Array;
  /** Per descriptor: the flags the driver wrote (NEXT / INDIRECT matter for detach). */
  private readonly extraFlags: Uint16Array;
  /** Per head: 1 while a buffer with this head is outstanding. */
  private readonly headInUse: Uint8Array;
  /** Per head: the caller's token for the outstanding buffer. */
  private readonly tokens: Array<T | undefined>;
  /** First free descriptor. */
  private freeHead = 0;
  /** Free descriptors. */
  private numFree = 0;
  /** The avail index the driver has published (Linux avail_idx_shadow). */
  private availIdxShadow = 0;
  /** Buffers added since the last kick. */
  private numAdded = 0;
  /** The next used index the driver will consume. */
  private lastUsedIdx = 0;
  /** avail.flags as the driver wants it (Linux avail_flags_shadow). */
  private availFlagsShadow = 0;
  /** The error that broke the queue, or null. */
  private brokenError: VirtioError | null = null;

  constructor(mem: GuestMemory, allocator: GpaAllocator, options: SplitQueueDriverOptions) {
    this.ring = SplitRing.layOut(mem, allocator, options.queueSize);
    this.eventIdx = hasFeature(options.features, VIRTIO_RING_F_EVENT_IDX);
    const indirect = hasFeature(options.features, VIRTIO_RING_F_INDIRECT_DESC);
    this.indirectTableSegmentsMax = indirect ? options.indirectTableSegmentsMax ?? DEFAULT_INDIRECT_SEGMENTS : 0;
    this.indirectPoolGpa = this.indirectTableSegmentsMax > 0
      ? allocator.allocate(options.queueSize * this.indirectTableSegmentsMax * DESC_SIZE_BYTES, DESC_ALIGN_BYTES)
      : -1;
    this.extraNext = new Uint16Array(options.queueSize);
    this.extraFlags = new Uint16Array(options.queueSize);
    this.headInUse = new Uint8Array(options.queueSize);
    this.tokens = new Array<T | undefined>(options.queueSize);
    this.initialize();
  }

  get layout(): SplitQueueLayout {
    return this.ring.layout;
  }

  get queueSize(): number {
    return this.ring.layout.queueSize;
  }

  get numFreeDescriptors(): number {
    return this.numFree;
  }

  get broken(): boolean {
    return this.brokenError !== null;
  }

  get error(): VirtioError | null {
    return this.brokenError;
  }

  /**
   * Makes a buffer available: `outBufs` device-readable, then `inBufs` device-writable.
   * Returns false (and changes nothing) when there are not enough free descriptors or the
   * queue is broken; Linux returns -ENOSPC / -EIO there.
   */
  add(outBufs: readonly Segment[], inBufs: readonly Segment[], token: T): boolean {
    if (this.brokenError !== null) return false;
    const total = outBufs.length + inBufs.length;
    assert(total > 0, 'a buffer needs at least one segment');
    for (const b of [...outBufs, ...inBufs]) {
      assert(Number.isSafeInteger(b.gpa) && b.gpa >= 0 && Number.isInteger(b.lengthBytes) && b.lengthBytes > 0 && b.lengthBytes <= 0xffffffff,
        `bad segment gpa ${b.gpa} length ${b.lengthBytes}`);
    }
    // The spec caps every chain, indirect ones included, at the queue size.
    assert(total <= this.queueSize, `${total} segments exceed the queue size ${this.queueSize}`);
    const useIndirect = this.indirectPoolGpa >= 0 && total > 1 && total <= this.indirectTableSegmentsMax && this.numFree > 0;
    const descsUsed = useIndirect ? 1 : total;
    if (this.numFree < descsUsed) return false;

    const head = this.freeHead;
    const segmentFlags = (k: number): number => (k < outBufs.length ? 0 : VIRTQ_DESC_F_WRITE) | (k < total - 1 ? VIRTQ_DESC_F_NEXT : 0);
    const segment = (k: number): Segment => (k < outBufs.length ? outBufs[k] : inBufs[k - outBufs.length]);
    if (useIndirect) {
      const tableGpa = this.indirectPoolGpa + head * this.indirectTableSegmentsMax * DESC_SIZE_BYTES;
      for (let k = 0; k < total; k++) {
        const s = segment(k);
        this.ring.writeDescriptorAt(tableGpa + k * DESC_SIZE_BYTES, { addr: s.gpa, len: s.lengthBytes, flags: segmentFlags(k), next: k + 1 < total ? k + 1 : 0 });
      }
      this.ring.writeDescriptor(head, { addr: tableGpa, len: total * DESC_SIZE_BYTES, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      this.extraFlags[head] = VIRTQ_DESC_F_INDIRECT;
      this.freeHead = this.extraNext[head];
    } else {
      let i = head;
      for (let k = 0; k < total; k++) {
        const s = segment(k);
        const flags = segmentFlags(k);
        this.ring.writeDescriptor(i, { addr: s.gpa, len: s.lengthBytes, flags, next: (flags & VIRTQ_DESC_F_NEXT) !== 0 ? this.extraNext[i] : 0 });
        this.extraFlags[i] = flags;
        i = this.extraNext[i];
      }
      this.freeHead = i;
    }
    this.numFree -= descsUsed;
    this.tokens[head] = token;
    this.headInUse[head] = 1;
    // The descriptors and the ring entry are written before the index that publishes them.
    this.ring.setAvailEntry(this.availIdxShadow, head);
    this.availIdxShadow = (this.availIdxShadow + 1) & 0xffff;
    this.ring.setAvailIdx(this.availIdxShadow);
    this.numAdded++;
    return true;
  }

  /**
   * Whether the device wants a notification for the buffers added since the last kick
   * (Linux virtqueue_kick_prepare): with EVENT_IDX iff avail_event lies in the batch,
   * otherwise iff used.flags lacks NO_NOTIFY. The caller notifies when this is true.
   */
  kick(): boolean {
    const newIdx = this.availIdxShadow;
    const added = this.numAdded;
    this.numAdded = 0;
    // After 2^16 - 1 unkicked adds the old index is ambiguous; a spurious kick is always allowed.
    if (added >= 0xffff) return true;
    const oldIdx = (newIdx - added) & 0xffff;
    if (this.eventIdx) return vringNeedEvent(this.ring.readAvailEvent(), newIdx, oldIdx);
    return (this.ring.readUsedFlags() & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** The next buffer the device returned, or null (none yet, or the queue is broken). */
  getUsed(): UsedBuffer<T> | null {
    if (this.brokenError !== null) return null;
    const usedIdx = this.ring.readUsedIdx();
    if (usedIdx === this.lastUsedIdx) return null;
    if (((usedIdx - this.lastUsedIdx) & 0xffff) > this.queueSize) {
      return this.fail(new VirtioError(VIRTIO_ERR.USED_IDX_JUMP, `The device moved the used index from ${this.lastUsedIdx} to ${usedIdx}, more than the queue size ${this.queueSize}`));
    }
    const elem = this.ring.readUsedElem(this.lastUsedIdx);
    if (elem.id >= this.queueSize) return this.fail(new VirtioError(VIRTIO_ERR.USED_ID_RANGE, `The device returned id ${elem.id}, beyond queue size ${this.queueSize}`));
    if (this.headInUse[elem.id] === 0) return this.fail(new VirtioError(VIRTIO_ERR.USED_ID_NOT_HEAD, `The device returned id ${elem.id}, which is not an outstanding head`));
    const token = this.tokens[elem.id] as T;
    this.detach(elem.id);
    this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
    if (this.eventIdx && (this.availFlagsShadow & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0) this.ring.setUsedEvent(this.lastUsedIdx);
    return { token, usedLengthBytes: elem.len };
  }

  /** Asks the device for no used-buffer interrupts (advisory; Linux virtqueue_disable_cb). */
  disableCallbacks(): void {
    this.availFlagsShadow |= VIRTQ_AVAIL_F_NO_INTERRUPT;
    // With EVENT_IDX, used_event is put just behind the consumed index, so no push reaches it until the index wraps.
    if (this.eventIdx) this.ring.setUsedEvent(this.lastUsedIdx - 1);
    else this.ring.setAvailFlags(this.availFlagsShadow);
  }

  /** Asks for interrupts again; returns true when nothing is pending (Linux virtqueue_enable_cb). */
  enableCallbacks(): boolean {
    this.availFlagsShadow &= ~VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (this.eventIdx) this.ring.setUsedEvent(this.lastUsedIdx);
    else this.ring.setAvailFlags(this.availFlagsShadow);
    return this.ring.readUsedIdx() === this.lastUsedIdx;
  }

  /**
   * Re-initialises the queue in place after a device reset (Linux deletes and re-creates
   * it): rings zeroed, free list rebuilt, indices back to 0. Returns the tokens of buffers
   * that were outstanding (Linux virtqueue_detach_unused_buf).
   */
  reset(): T[] {
    const outstanding: T[] = [];
    for (let head = 0; head < this.queueSize; head++) {
      if (this.headInUse[head] !== 0) outstanding.push(this.tokens[head] as T);
    }
    this.initialize();
    return outstanding;
  }

  /** Raw: writes descriptor `index` of the table (test tool; bypasses the free list). */
  writeDescriptor(index: number, desc: DescriptorFields): void {
    this.ring.writeDescriptor(index, desc);
  }

  /** Raw: writes avail.idx (test tool; the driver's own index is unchanged). */
  setAvailIdx(idx: number): void {
    this.ring.setAvailIdx(idx);
  }

  /** Raw: writes avail.ring[slot] (test tool). */
  setAvailEntry(slot: number, headIndex: number): void {
    this.ring.setAvailEntry(slot, headIndex);
  }

  /** Raw: publishes `headIndex` as the next available chain, whatever it holds (test tool). */
  publishRawHead(headIndex: number): void {
    this.ring.setAvailEntry(this.availIdxShadow, headIndex);
    this.availIdxShadow = (this.availIdxShadow + 1) & 0xffff;
    this.ring.setAvailIdx(this.availIdxShadow);
    this.numAdded++;
  }

  private initialize(): void {
    this.ring.zero();
    const n = this.queueSize;
    for (let i = 0; i < n; i++) this.extraNext[i] = (i + 1) & (n - 1);
    this.extraFlags.fill(0);
    this.headInUse.fill(0);
    this.tokens.fill(undefined);
    this.freeHead = 0;
    this.numFree = n;
    this.availIdxShadow = 0;
    this.numAdded = 0;
    this.lastUsedIdx = 0;
    this.availFlagsShadow = 0;
    this.brokenError = null;
  }

  /** Returns the chain at `head` to the free list (Linux detach_buf_split). */
  private detach(head: number): void {
    let last = head;
    let count = 1;
    while ((this.extraFlags[last] & VIRTQ_DESC_F_NEXT) !== 0) {
      last = this.extraNext[last];
      count++;
    }
    this.extraNext[last] = this.freeHead;
    this.freeHead = head;
    this.numFree += count;
    this.headInUse[head] = 0;
    this.tokens[head] = undefined;
  }

  private fail(error: VirtioError): null {
    this.brokenError = error;
    return null;
  }
}
