/**
 * The balloon on real split queues: `BalloonVirtio` puts a VirtioDeviceCore (status register,
 * feature negotiation, the queues QEMU creates) in front of a queue-agnostic BalloonDevice,
 * pops each queue when it is processed, hands every element to the device's handler for
 * that queue and carries out the returned ElementEffects. `QueueEffectRunner`, the part that
 * carries out effects, is shared with virtio-mem (virtio-mem-queues.ts).
 *
 * Element shapes: the split queue yields SplitQueueElement (`headIndex`, plus lengths and a
 * pop serial); the device handlers take QueueElement (`head`). The runner adapts each popped
 * element and keeps the original in a WeakMap, so an effect naming the adapted element (also
 * much later, like the held stats buffer) finds the element the queue must be given back.
 *
 * Effects: push → used ring plus a used-buffer notification when the driver wants one;
 * hold → nothing (the device keeps the element); detach → dropped without a used entry (the
 * device is broken, and the driver's reset discards it); unpop → kept by the runner and
 * handled again, before any newer element, the next time the queue is processed.
 *
 * Kicks and polling: with kickMode 'immediate' (default) a driver kick processes the queue
 * at once, inside the kick; with 'deferred' it is only recorded and `poll(nowNs)` processes
 * it, so a host can interleave device work with guest steps. The free page queue is handled
 * as QEMU's bottom half does: notifications off while it runs, and while the device is in
 * START it keeps polling (each `poll()` drains the queue again) without waiting for kicks.
 *
 * Device events (config changes, BALLOON_CHANGE, broken) are taken from the device after
 * every operation: a config change becomes a config interrupt through the core, a broken
 * device becomes the core's virtio_error (NEEDS_RESET, every queue stopped), and every event
 * is kept for the host's `takeEvents()`. A host that calls the BalloonDevice directly calls
 * `deliverEvents()` afterwards; the wrappers below do it themselves.
 */
import { CoreBackedTransport } from '../virtio/core-transport.ts';
import { assert } from '../../lib/assert.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { ElementEffect, QueueElement } from '../element-io.ts';
import { VirtioDeviceCore } from '../virtio/device-core.ts';
import { VIRTIO_ERR, VirtioError } from '../virtio/errors.ts';
import type { SplitQueueElement } from '../virtio/split-queue.ts';
import type { BalloonDevice } from './balloon-device.ts';
import type { BalloonEvent, PrecopyNotifyContext } from './balloon-types.ts';
import { QEMU_72_BALLOON_TRANSPORT_FEATURES, VIRTIO_ID_BALLOON } from './constants.ts';

/** The guest driver's interrupt handlers, as a device delivers interrupts to them. */
export interface DriverInterrupts {
  /** A configuration-change interrupt. */
  onConfigChange(): void;
  /** A used-buffer interrupt for queue `queueIndex`. */
  onQueueInterrupt(queueIndex: number): void;
}

/** When a driver kick is processed: inside the kick, or at the host's next poll(). */
export type KickMode = 'immediate' | 'deferred';

/** One device handler: one element in, effects out. */
export type ElementHandler = (memory: GuestMemory, element: QueueElement) => ElementEffect[];

/**
 * Carries out device effects on a core's split queues (see the header). One per device.
 */
export class QueueEffectRunner {
  /** The split queue element behind each adapted element the device may still name. */
  private readonly sources = new WeakMap<QueueElement, SplitQueueElement>();
  /** Per queue: elements the device unpopped, handled again first. */
  private readonly unpopped: QueueElement[][];

  constructor(
    /** The core whose queues are served. */
    private readonly core: VirtioDeviceCore,
    /** Guest memory the handlers read and write. */
    private readonly memory: GuestMemory,
  ) {
    this.unpopped = core.queues.map(() => []);
  }

  /**
   * Handles up to `maxElements` elements of queue `queueIndex` (unpopped ones first), then
   * stops at an empty queue or an unpop. `afterEach` runs after each handler call (the
   * device's events must reach the core before the next pop). Returns the number handled.
   */
  drain(queueIndex: number, handler: ElementHandler, afterEach: () => void, maxElements = Number.POSITIVE_INFINITY): number {
    const queue = this.core.queues[queueIndex];
    assert(queue !== undefined, `no queue ${queueIndex}`);
    const retry = this.unpopped[queueIndex];
    let handled = 0;
    while (handled < maxElements) {
      let element = retry.shift();
      if (element === undefined) {
        const popped = queue.pop();
        if (popped === null) break;
        element = this.adapt(popped);
      }
      handled++;
      const effects = handler(this.memory, element);
      afterEach();
      if (this.apply(queueIndex, effects)) break;
    }
    return handled;
  }

  /** Carries out `effects` on queue `queueIndex`; returns true if one was an unpop. */
  apply(queueIndex: number, effects: readonly ElementEffect[]): boolean {
    const queue = this.core.queues[queueIndex];
    let pushed = false;
    let unpopped = false;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'push': {
          const source = this.sources.get(effect.element);
          assert(source !== undefined, `queue ${queueIndex}: push of an element this runner did not pop`);
          this.sources.delete(effect.element);
          queue.push(source, effect.usedLengthBytes);
          pushed = true;
          break;
        }
        case 'hold':
          break;
        case 'detach':
          // QEMU virtqueue_detach_element: no used entry. The chain stays counted in use
          // until the driver resets the (now broken) device.
          this.sources.delete(effect.element);
          break;
        case 'unpop':
          this.unpopped[queueIndex].push(effect.element);
          unpopped = true;
          break;
      }
    }
    if (pushed) this.core.notifyQueue(queueIndex);
    return unpopped;
  }

  /** Forgets unpopped elements (device reset: the queues were reset too). */
  reset(): void {
    for (const list of this.unpopped) list.length = 0;
  }

  private adapt(element: SplitQueueElement): QueueElement {
    const adapted: QueueElement = { head: element.headIndex, readable: element.readable, writable: element.writable };
    this.sources.set(adapted, element);
    return adapted;
  }
}

/** Little-endian read of `lengthBytes` (1, 2 or 4) at `offsetBytes` of a config image; 0 past its end. */
export function readConfigLe(config: Uint8Array, offsetBytes: number, lengthBytes: number): number {
  if (offsetBytes < 0 || offsetBytes + lengthBytes > config.length) return 0;
  let value = 0;
  for (let i = lengthBytes - 1; i >= 0; i--) value = value * 256 + config[offsetBytes + i];
  return value;
}

/** `value` as `lengthBytes` little-endian bytes. */
export function leBytes(value: number, lengthBytes: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  let v = value >>> 0;
  for (let i = 0; i < lengthBytes; i++) {
    bytes[i] = v & 0xff;
    v >>>= 8;
  }
  return bytes;
}

export interface BalloonVirtioOptions {
  /** When kicks are processed; default 'immediate'. */
  readonly kickMode?: KickMode;
  /** Device-independent features offered besides the balloon's; default QEMU 7.2's virtio-pci set. */
  readonly transportFeatures?: bigint;
}

export class BalloonVirtio extends CoreBackedTransport<BalloonEvent> {
  /** The balloon's device logic. */
  override readonly device: BalloonDevice;
  /** Status, features and the split queues. */
  override readonly core: VirtioDeviceCore;
  /** When kicks are processed. */
  readonly kickMode: KickMode;
  /** Carries out effects on the queues. */
  private readonly runner: QueueEffectRunner;
  /** Index of the free page queue, or -1. */
  private readonly freePageQueue: number;
  /** The connected driver's interrupt handlers, or null. */
  private driver: DriverInterrupts | null = null;
  /** Per queue: a kick not yet processed (deferred mode). */
  private readonly pendingKicks: boolean[];
  /** Whether the free page queue is being busy-polled (device in START). */
  private freePagePolling = false;
  /** The latest time the host or driver gave (stats timestamps). */
  private nowNs = 0;
  /** Elements handled, all queues. */
  elementsHandled = 0;
  /** Kicks received. */
  kicks = 0;

  constructor(memory: GuestMemory, device: BalloonDevice, options: BalloonVirtioOptions = {}) {
    super();
    this.device = device;
    this.kickMode = options.kickMode ?? 'immediate';
    this.core = new VirtioDeviceCore(memory, {
      deviceId: VIRTIO_ID_BALLOON,
      offeredFeatures: device.offeredFeatures | (options.transportFeatures ?? QEMU_72_BALLOON_TRANSPORT_FEATURES),
      queueSizesMax: device.queues.map((q) => q.sizeEntries),
      hooks: {
        onReset: () => {
          // The core reset its queues first, so effects naming old elements are stale.
          device.reset();
          this.runner.reset();
          this.pendingKicks.fill(false);
          this.freePagePolling = false;
        },
        readConfig: (offsetBytes, lengthBytes) => readConfigLe(device.readConfig(), offsetBytes, lengthBytes),
        writeConfig: (offsetBytes, lengthBytes, value) => device.writeConfig(offsetBytes, leBytes(value, lengthBytes)),
        onQueueInterrupt: (queueIndex) => this.driver?.onQueueInterrupt(queueIndex),
        onConfigInterrupt: () => this.driver?.onConfigChange(),
      },
    });
    this.runner = new QueueEffectRunner(this.core, memory);
    this.freePageQueue = device.queueIndex('free-page') ?? -1;
    this.pendingKicks = device.queues.map(() => false);
  }

  // ---- the transport, as the guest driver sees it ----------------------------------------


  writeConfig(offsetBytes: number, lengthBytes: number, value: number): void {
    this.core.writeConfig(offsetBytes, lengthBytes, value);
    this.deliverEvents();
  }

  /** Connects (or, with null, disconnects) the driver's interrupt handlers. */
  connectDriver(interrupts: DriverInterrupts | null): void {
    this.driver = interrupts;
  }

  /** The driver kicked queue `queueIndex` at `nowNs`. */
  notify(queueIndex: number, nowNs: number = this.nowNs): void {
    if (queueIndex < 0 || queueIndex >= this.pendingKicks.length) return; // A kick of no queue is ignored.
    this.kicks++;
    this.nowNs = Math.max(this.nowNs, nowNs);
    if (this.kickMode === 'immediate') this.process(queueIndex);
    else this.pendingKicks[queueIndex] = true;
  }

  // ---- the host side ----------------------------------------------------------------------

  /**
   * Device work due at `nowNs`: deferred kicks, then the free page queue while it is being
   * polled. Returns the number of elements handled.
   */
  poll(nowNs: number): number {
    this.nowNs = Math.max(this.nowNs, nowNs);
    let handled = 0;
    for (let q = 0; q < this.pendingKicks.length; q++) {
      if (!this.pendingKicks[q]) continue;
      this.pendingKicks[q] = false;
      handled += this.process(q);
    }
    if (this.freePagePolling) handled += this.process(this.freePageQueue);
    this.deliverEvents();
    return handled;
  }

  /** Whether the free page queue is being busy-polled. */
  get polling(): boolean {
    return this.freePagePolling;
  }

  /** The source's precopy notifier (BalloonDevice.onPrecopyNotify) with its interrupts delivered. */
  precopyNotify(reason: number, context: PrecopyNotifyContext): void {
    this.device.onPrecopyNotify(reason, context);
    this.deliverEvents();
  }

  /** QMP `balloon value=targetBytes`. */
  balloon(targetBytes: number): void {
    this.device.balloon(targetBytes);
    this.deliverEvents();
  }

  /** The stats timer fired: the held stats buffer goes back so the guest refreshes it. */
  pollStats(): void {
    const effect = this.device.pollStats();
    const statsQueue = this.device.queueIndex('stats');
    if (effect !== null && statsQueue !== null) this.runner.apply(statsQueue, [effect]);
  }

  /** BalloonDevice.preSave with its interrupts delivered. */
  preSave(): void {
    this.device.preSave();
    this.deliverEvents();
  }

  /** BalloonDevice.postLoad with its interrupts delivered. */
  postLoad(): void {
    this.device.postLoad();
    this.deliverEvents();
  }



  // ---- internals --------------------------------------------------------------------------


  /** Handles what queue `queueIndex` holds; returns the number of elements handled. */
  private process(queueIndex: number): number {
    const handled = queueIndex === this.freePageQueue ? this.processFreePage() : this.runner.drain(queueIndex, this.handlerFor(queueIndex), () => this.deliverEvents());
    this.elementsHandled += handled;
    return handled;
  }

  /**
   * QEMU's free page bottom half: notifications off, pop until empty; while hinting is in
   * START keep polling (notifications stay off and the next poll() continues); otherwise
   * turn notifications back on and drain once more for a buffer that raced the switch.
   */
  private processFreePage(): number {
    const queue = this.core.queues[this.freePageQueue];
    const handler = this.handlerFor(this.freePageQueue);
    const after = (): void => this.deliverEvents();
    queue.setNotification(false);
    let handled = this.runner.drain(this.freePageQueue, handler, after);
    this.freePagePolling = this.device.freePagePollingActive() && this.core.live;
    if (!this.freePagePolling) {
      queue.setNotification(true);
      handled += this.runner.drain(this.freePageQueue, handler, after);
    }
    return handled;
  }

  private handlerFor(queueIndex: number): ElementHandler {
    const device = this.device;
    const name = device.queues[queueIndex]?.name;
    switch (name) {
      case 'inflate': return (m, e) => device.handleInflate(m, e);
      case 'deflate': return (m, e) => device.handleDeflate(m, e);
      case 'stats': return (m, e) => device.handleStats(m, e, this.nowNs);
      case 'free-page': return (m, e) => device.handleFreePage(m, e);
      case 'reporting': return (m, e) => device.handleReporting(m, e);
      default: throw new VirtioError(VIRTIO_ERR.QUEUE_INDEX, `The balloon has no queue ${queueIndex}`);
    }
  }
}
