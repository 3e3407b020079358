/**
 * The device side of one split virtqueue (QEMU's VirtQueue): consumes chains the driver made
 * available, hands them to device code as elements, and returns them on the used ring.
 *
 * Error policy (QEMU's `virtio_error`): a ring that breaks the rules never throws out of
 * `pop()`. The walk's VirtioError is reported to `onError`, kept in `error`, and the queue
 * becomes broken: it pops nothing more until `reset()`. The device core (device-core.ts)
 * answers the report by setting DEVICE_NEEDS_RESET, breaking the device's other queues and
 * raising a config interrupt; the driver then resets the device and sets it up again, and
 * the queue serves again. The offending chain is not consumed (lastAvailIdx still names it)
 * and nothing is written to guest memory for it. Elements popped before the error may still
 * be pushed until the reset (QEMU allows it too); after a reset they are stale and device
 * code must drop them. We chose this over "return the bad chain with used length 0" because
 * it is what QEMU does, and because several failures (a jump of the avail index, a head
 * index out of range) leave no chain that could be returned.
 *
 * Memory ordering: the used element is written before used.idx, and used.idx before any
 * notification decision reads used_event, in program order. The GuestMemory backing is
 * responsible for making that order visible to other threads (a real shell uses Atomics).
 *
 * Indices: lastAvailIdx, the avail index and the used index are free-running u16 values;
 * ring slots are index mod N.
 */
import { assert } from '../../lib/assert.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY, VIRTQUEUE_SIZE_MAX, hasFeature, vringNeedEvent,
} from './constants.ts';
import { DescriptorChainWalker, type Segment } from './descriptor-chain.ts';
import { VIRTIO_ERR, VirtioError } from './errors.ts';
import {
  type SplitQueueLayout, RING_FLAGS_OFFSET, RING_IDX_OFFSET, availEntryOffset, availEventOffset, checkLayout,
  usedElemOffset, usedEventOffset,
} from './ring-layout.ts';

/** A chain popped from the available ring, held by device code until it is pushed. */
export interface SplitQueueElement {
  /** Index of the chain's head descriptor: the id written back on the used ring. */
  readonly headIndex: number;
  /** Device-readable buffers, in chain order. */
  readonly readable: readonly Segment[];
  /** Device-writable buffers, in chain order. */
  readonly writable: readonly Segment[];
  readonly readableLengthBytes: number;
  /** The most bytes `push` may report as written. */
  readonly writableLengthBytes: number;
  /** Whether the chain came from an indirect table. */
  readonly indirect: boolean;
  /** Serial number of the pop that produced the element, unique per queue for its lifetime. */
  readonly popSerial: number;
}

export interface SplitQueueOptions {
  /** This queue's index in its device, for reports. */
  readonly queueIndex?: number;
  /** Largest queue size the driver may configure (QEMU's per-queue max). */
  readonly queueSizeMax?: number;
  /** Most buffer descriptors per chain; the queue size if absent or larger. */
  readonly maxChainDescriptors?: number;
  /** Most total bytes per chain; 2^32 - 1 if absent. */
  readonly maxTotalLengthBytes?: number;
  /** Receives the error that broke the queue. */
  readonly onError?: (error: VirtioError, queue: SplitQueueDevice) => void;
}

/** A layout plus the negotiated features the queue must honour. */
export interface SplitQueueConfig extends SplitQueueLayout {
  readonly features: bigint;
}

export class SplitQueueDevice {
  /** This queue's index in its device. */
  readonly queueIndex: number;
  /** Largest queue size the driver may configure. */
  readonly queueSizeMax: number;
  /** Guest memory the rings and buffers live in. */
  private readonly mem: GuestMemory;
  /** Options fixed at construction. */
  private readonly options: SplitQueueOptions;
  /** The configured layout, or null while the queue is not set up. */
  private layout: SplitQueueLayout | null = null;
  /** The chain walker for the configured table, or null while not set up. */
  private walker: DescriptorChainWalker | null = null;
  /** VIRTIO_RING_F_EVENT_IDX negotiated: used_event/avail_event instead of ring flags. */
  private eventIdx = false;
  /** VIRTIO_F_NOTIFY_ON_EMPTY negotiated. */
  private notifyOnEmpty = false;
  /** Next avail index to consume (QEMU last_avail_idx). */
  private lastAvail = 0;
  /** avail.idx as last read and checked (QEMU shadow_avail_idx). */
  private shadowAvailIdx = 0;
  /** Next used index to write (QEMU used_idx). */
  private usedIdxValue = 0;
  /** Chains popped and not yet pushed (QEMU inuse). */
  private inUse = 0;
  /** Serials of the elements device code holds. */
  private readonly inFlight = new Set<number>();
  /** Serial of the last pop. */
  private lastSerial = 0;
  /** The used index at the last notification decision (QEMU signalled_used). */
  private signalledUsed = 0;
  /** Whether signalledUsed is meaningful (QEMU signalled_used_valid). */
  private signalledUsedValid = false;
  /** Whether device code wants kicks (QEMU vq->notification). */
  private notificationEnabled = true;
  /** The error that broke the queue, or null. */
  private brokenError: VirtioError | null = null;

  constructor(mem: GuestMemory, options: SplitQueueOptions = {}) {
    this.mem = mem;
    this.options = options;
    this.queueIndex = options.queueIndex ?? 0;
    this.queueSizeMax = options.queueSizeMax ?? VIRTQUEUE_SIZE_MAX;
  }

  /** Sets the queue up; throws VirtioError (VIRTIO_ERR_QUEUE_CONFIG) on a bad layout. */
  configure(config: SplitQueueConfig): void {
    const problem = checkLayout(config, this.mem.sizeBytes);
    if (problem !== null) throw problem;
    if (config.queueSize > this.queueSizeMax) {
      throw new VirtioError(VIRTIO_ERR.QUEUE_CONFIG, `Queue ${this.queueIndex} size ${config.queueSize} exceeds its maximum ${this.queueSizeMax}`);
    }
    this.reset();
    this.layout = { queueSize: config.queueSize, descGpa: config.descGpa, availGpa: config.availGpa, usedGpa: config.usedGpa };
    this.eventIdx = hasFeature(config.features, VIRTIO_RING_F_EVENT_IDX);
    this.notifyOnEmpty = hasFeature(config.features, VIRTIO_F_NOTIFY_ON_EMPTY);
    this.walker = new DescriptorChainWalker(this.mem, config.descGpa, config.queueSize, {
      maxChainDescriptors: Math.min(this.options.maxChainDescriptors ?? config.queueSize, config.queueSize),
      maxTotalLengthBytes: this.options.maxTotalLengthBytes ?? 0xffffffff,
      indirectAllowed: hasFeature(config.features, VIRTIO_RING_F_INDIRECT_DESC),
    });
  }

  /** Forgets the layout, indices, held elements and any error (device reset). */
  reset(): void {
    this.layout = null;
    this.walker = null;
    this.eventIdx = false;
    this.notifyOnEmpty = false;
    this.lastAvail = 0;
    this.shadowAvailIdx = 0;
    this.usedIdxValue = 0;
    this.inUse = 0;
    this.inFlight.clear();
    this.signalledUsed = 0;
    this.signalledUsedValid = false;
    this.notificationEnabled = true;
    this.brokenError = null;
  }

  /** Whether the queue has a layout. */
  get ready(): boolean {
    return this.layout !== null;
  }

  /** The configured layout, or null. */
  get currentLayout(): SplitQueueLayout | null {
    return this.layout;
  }

  /** Whether an error broke the queue (it pops nothing until reset). */
  get broken(): boolean {
    return this.brokenError !== null;
  }

  /** The error that broke the queue, or null. */
  get error(): VirtioError | null {
    return this.brokenError;
  }

  /** The next avail index to consume: the queue's migration state. */
  get lastAvailIdx(): number {
    return this.lastAvail;
  }

  /** The next used index the device will write. */
  get usedIdx(): number {
    return this.usedIdxValue;
  }

  /** Chains popped and not yet pushed. */
  get inUseCount(): number {
    return this.inUse;
  }

  /** Breaks the queue from outside (the device core does this when another queue fails). */
  markBroken(error: VirtioError): void {
    if (this.brokenError === null) this.brokenError = error;
  }

  /**
   * The next available chain, or null when there is none, the queue is not set up or it is
   * broken. A ring that breaks the rules breaks the queue (see the module comment) and
   * yields null; no exception other than an assertion failure leaves this method.
   */
  pop(): SplitQueueElement | null {
    const layout = this.layout;
    if (layout === null || this.walker === null || this.brokenError !== null) return null;
    try {
      if (this.lastAvail === this.shadowAvailIdx && this.readAvailIdx(layout) === this.lastAvail) return null;
      if (this.inUse >= layout.queueSize) {
        throw new VirtioError(VIRTIO_ERR.QUEUE_OVERRUN, `Queue ${this.queueIndex} has ${this.inUse} chains in use, the whole queue, yet more are available`);
      }
      const slot = this.lastAvail & (layout.queueSize - 1);
      const headIndex = this.mem.readLe16(layout.availGpa + availEntryOffset(slot)) & 0xffff;
      if (headIndex >= layout.queueSize) {
        throw new VirtioError(VIRTIO_ERR.HEAD_INDEX, `Queue ${this.queueIndex} avail entry ${this.lastAvail} names head ${headIndex}, beyond queue size ${layout.queueSize}`);
      }
      const chain = this.walker.walk(headIndex);
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
      if (this.eventIdx) this.writeAvailEvent(layout, this.lastAvail);
      this.inUse++;
      this.lastSerial++;
      this.inFlight.add(this.lastSerial);
      return { headIndex, ...chain, popSerial: this.lastSerial };
    } catch (e) {
      if (!(e instanceof VirtioError)) throw e;
      this.brokenError = e;
      this.options.onError?.(e, this);
      return null;
    }
  }

  /**
   * Returns `element` to the driver, reporting `usedLengthBytes` written into its writable
   * buffers: the used element first, then used.idx. Pushing an element this queue does not
   * hold (already pushed, or popped before a reset) or a length beyond its writable buffers
   * is a bug in the device code and fails an assertion.
   */
  push(element: SplitQueueElement, usedLengthBytes: number): void {
    const layout = this.layout;
    assert(layout !== null && this.inFlight.has(element.popSerial), `Queue ${this.queueIndex}: push of an element the queue does not hold`);
    assert(Number.isInteger(usedLengthBytes) && usedLengthBytes >= 0 && usedLengthBytes <= element.writableLengthBytes,
      `Queue ${this.queueIndex}: used length ${usedLengthBytes} outside 0..${element.writableLengthBytes}`);
    this.inFlight.delete(element.popSerial);
    const slot = this.usedIdxValue & (layout.queueSize - 1);
    const elemGpa = layout.usedGpa + usedElemOffset(slot);
    this.mem.writeLe32(elemGpa, element.headIndex);
    this.mem.writeLe32(elemGpa + 4, usedLengthBytes);
    // The element is complete before the index that publishes it (QEMU: smp_wmb in virtqueue_flush).
    const oldIdx = this.usedIdxValue;
    const newIdx = (oldIdx + 1) & 0xffff;
    this.mem.writeLe16(layout.usedGpa + RING_IDX_OFFSET, newIdx);
    this.usedIdxValue = newIdx;
    this.inUse--;
    // If the used index ran past the last signalled one without a decision, that mark is stale.
    if (((newIdx - this.signalledUsed) & 0xffff) < ((newIdx - oldIdx) & 0xffff)) this.signalledUsedValid = false;
  }

  /**
   * Whether the driver wants an interrupt for what was pushed since the last call (QEMU
   * virtio_should_notify). With EVENT_IDX: iff used_event lies in [previous used index,
   * current used index), or nothing was signalled before. Without: iff avail.flags lacks
   * NO_INTERRUPT. With NOTIFY_ON_EMPTY: always when nothing is in use and the ring is empty.
   */
  needsNotify(): boolean {
    const layout = this.layout;
    if (layout === null) return false;
    if (this.notifyOnEmpty && this.inUse === 0 && this.rawAvailIdx(layout) === this.lastAvail) return true;
    if (!this.eventIdx) return (this.mem.readLe16(layout.availGpa + RING_FLAGS_OFFSET) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const wasValid = this.signalledUsedValid;
    const oldIdx = this.signalledUsed;
    const newIdx = this.usedIdxValue;
    this.signalledUsedValid = true;
    this.signalledUsed = newIdx;
    const usedEvent = this.mem.readLe16(layout.availGpa + usedEventOffset(layout.queueSize)) & 0xffff;
    return !wasValid || vringNeedEvent(usedEvent, newIdx, oldIdx);
  }

  /**
   * Asks the driver for kicks (enabled) or not (QEMU virtio_queue_set_notification). Without
   * EVENT_IDX this sets or clears used.flags NO_NOTIFY; with it, enabling publishes the
   * current avail index as avail_event, and pops keep it current while enabled.
   */
  setNotification(enabled: boolean): void {
    this.notificationEnabled = enabled;
    const layout = this.layout;
    if (layout === null) return;
    if (this.eventIdx) {
      if (enabled) this.writeAvailEvent(layout, this.rawAvailIdx(layout));
    } else {
      this.mem.writeLe16(layout.usedGpa + RING_FLAGS_OFFSET, enabled ? 0 : VIRTQ_USED_F_NO_NOTIFY);
    }
  }

  /** Chains available and not yet popped; 0 when not set up or broken. May break the queue on an avail index jump. */
  availableCount(): number {
    const layout = this.layout;
    if (layout === null || this.brokenError !== null) return 0;
    try {
      return (this.readAvailIdx(layout) - this.lastAvail) & 0xffff;
    } catch (e) {
      if (!(e instanceof VirtioError)) throw e;
      this.brokenError = e;
      this.options.onError?.(e, this);
      return 0;
    }
  }

  /** Whether no chain is available (see availableCount). */
  isEmpty(): boolean {
    return this.availableCount() === 0;
  }

  /**
   * Loads the migrated lastAvailIdx into a configured queue, as QEMU's virtio_load does: the
   * used index is read back from the ring, and an avail index more than N ahead, or more
   * than N chains in use, is inconsistent (VIRTIO_ERR_MIGRATION_INCONSISTENT, thrown; the
   * queue is left unchanged). Chains popped on the source and not pushed stay counted in
   * inUseCount, with no element to push; devices that have such chains must migrate them.
   */
  restoreLastAvailIdx(lastAvailIdx: number): void {
    const layout = this.layout;
    assert(layout !== null, `Queue ${this.queueIndex}: restore into a queue that is not set up`);
    assert(Number.isInteger(lastAvailIdx) && lastAvailIdx >= 0 && lastAvailIdx <= 0xffff, 'lastAvailIdx is a u16');
    const availIdx = this.rawAvailIdx(layout);
    const pending = (availIdx - lastAvailIdx) & 0xffff;
    if (pending > layout.queueSize) {
      throw new VirtioError(VIRTIO_ERR.MIGRATION_INCONSISTENT,
        `Queue ${this.queueIndex} size ${layout.queueSize}: guest index ${availIdx} inconsistent with host index ${lastAvailIdx} (delta ${pending})`);
    }
    const usedIdx = this.mem.readLe16(layout.usedGpa + RING_IDX_OFFSET) & 0xffff;
    const inUse = (lastAvailIdx - usedIdx) & 0xffff;
    if (inUse > layout.queueSize) {
      throw new VirtioError(VIRTIO_ERR.MIGRATION_INCONSISTENT,
        `Queue ${this.queueIndex} size ${layout.queueSize} < last avail index ${lastAvailIdx} - used index ${usedIdx}`);
    }
    this.lastAvail = lastAvailIdx;
    this.shadowAvailIdx = lastAvailIdx;
    this.usedIdxValue = usedIdx;
    this.inUse = inUse;
    this.inFlight.clear();
    this.signalledUsedValid = false;
  }

  /** Reads avail.idx, refusing a move of more than N past lastAvailIdx (QEMU virtqueue_num_heads). */
  private readAvailIdx(layout: SplitQueueLayout): number {
    const idx = this.rawAvailIdx(layout);
    const heads = (idx - this.lastAvail) & 0xffff;
    if (heads > layout.queueSize) {
      throw new VirtioError(VIRTIO_ERR.AVAIL_IDX_JUMP,
        `Queue ${this.queueIndex}: the guest moved the avail index from ${this.lastAvail} to ${idx}, more than the queue size ${layout.queueSize}`);
    }
    this.shadowAvailIdx = idx;
    return idx;
  }

  private rawAvailIdx(layout: SplitQueueLayout): number {
    return this.mem.readLe16(layout.availGpa + RING_IDX_OFFSET) & 0xffff;
  }

  /** Publishes avail_event while device code wants kicks (QEMU vring_set_avail_event). */
  private writeAvailEvent(layout: SplitQueueLayout, value: number): void {
    if (!this.notificationEnabled) return;
    this.mem.writeLe16(layout.usedGpa + availEventOffset(layout.queueSize), value);
  }
}
