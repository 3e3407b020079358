/**
 * virtio-mem on a real split queue: `VirtioMemVirtio` puts a VirtioDeviceCore (device id 24,
 * one guest-request queue of 128 entries) in front of a queue-agnostic VirtioMemDevice, in
 * the same way and with the same effect runner as the balloon (see balloon-queues.ts for the
 * element adapter, the effects and the kick modes).
 *
 * Config space is read-only for the driver; writes are dropped. Device events become core
 * actions: a config change → config interrupt, broken → virtio_error; every event (also
 * size changes, QMP MEMORY_DEVICE_SIZE_CHANGE) is kept for the host's `takeEvents()`.
 *
 * Feature check (QEMU 7.2 virtio_mem_validate_features): when the device offers
 * UNPLUGGED_INACCESSIBLE the driver must accept it, or FEATURES_OK is refused.
 */
import { CoreBackedTransport } from '../virtio/core-transport.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  QueueEffectRunner, readConfigLe, type DriverInterrupts, type ElementHandler, type KickMode,
} from '../balloon/balloon-queues.ts';
import { QEMU_72_BALLOON_TRANSPORT_FEATURES } from '../balloon/constants.ts';
import { hasFeature } from '../virtio/constants.ts';
import { VirtioDeviceCore } from '../virtio/device-core.ts';
import { VIRTIO_ERR, VirtioError } from '../virtio/errors.ts';
import { VIRTIO_ID_MEM, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, VIRTIO_MEM_QUEUE_SIZE } from './constants.ts';
import type { VirtioMemDevice, VirtioMemEvent } from './virtio-mem-device.ts';

export interface VirtioMemVirtioOptions {
  /** When kicks are processed; default 'immediate'. */
  readonly kickMode?: KickMode;
  /**
   * Device-independent features offered besides virtio-mem's own; default the virtio-pci
   * set QEMU 7.2 offered on the balloon (the same generic transport).
   */
  readonly transportFeatures?: bigint;
}

/** The only queue: guest requests. */
const REQUEST_QUEUE = 0;

export class VirtioMemVirtio extends CoreBackedTransport<VirtioMemEvent> {
  /** The device logic. */
  override readonly device: VirtioMemDevice;
  /** Status, features and the queue. */
  override readonly core: VirtioDeviceCore;
  /** When kicks are processed. */
  readonly kickMode: KickMode;
  /** Carries out effects on the queue. */
  private readonly runner: QueueEffectRunner;
  /** The connected driver's interrupt handlers, or null. */
  private driver: DriverInterrupts | null = null;
  /** A kick not yet processed (deferred mode). */
  private pendingKick = false;
  /** Requests handled. */
  elementsHandled = 0;

  constructor(memory: GuestMemory, device: VirtioMemDevice, options: VirtioMemVirtioOptions = {}) {
    super();
    this.device = device;
    this.kickMode = options.kickMode ?? 'immediate';
    this.core = new VirtioDeviceCore(memory, {
      deviceId: VIRTIO_ID_MEM,
      offeredFeatures: device.offeredFeatures | (options.transportFeatures ?? QEMU_72_BALLOON_TRANSPORT_FEATURES),
      queueSizesMax: [VIRTIO_MEM_QUEUE_SIZE],
      hooks: {
        validateFeatures: (features) => {
          const bit = VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE;
          if (hasFeature(device.offeredFeatures, bit) && !hasFeature(features, bit)) {
            return new VirtioError(VIRTIO_ERR.FEATURES_REJECTED, 'The driver did not accept VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE');
          }
          return null;
        },
        onReset: () => {
          device.reset();
          this.runner.reset();
          this.pendingKick = false;
        },
        readConfig: (offsetBytes, lengthBytes) => readConfigLe(device.readConfig(), offsetBytes, lengthBytes),
        onQueueInterrupt: (queueIndex) => this.driver?.onQueueInterrupt(queueIndex),
        onConfigInterrupt: () => this.driver?.onConfigChange(),
      },
    });
    this.runner = new QueueEffectRunner(this.core, memory);
  }

  // ---- the transport, as the guest driver sees it ----------------------------------------


  /** The config space is read-only; a write is dropped. */
  writeConfig(_offsetBytes: number, _lengthBytes: number, _value: number): void {}

  connectDriver(interrupts: DriverInterrupts | null): void {
    this.driver = interrupts;
  }

  /** The driver kicked queue `queueIndex`. */
  notify(queueIndex: number, _nowNs?: number): void {
    if (queueIndex !== REQUEST_QUEUE) return;
    if (this.kickMode === 'immediate') this.process();
    else this.pendingKick = true;
  }

  // ---- the host side ----------------------------------------------------------------------

  /** Processes a deferred kick; returns the number of requests handled. */
  poll(_nowNs: number): number {
    let handled = 0;
    if (this.pendingKick) {
      this.pendingKick = false;
      handled = this.process();
    }
    this.deliverEvents();
    return handled;
  }

  /** The host changes 'requested-size' (QMP qom-set); the driver gets a config interrupt. */
  setRequestedSize(bytes: number): ReturnType<VirtioMemDevice['setRequestedSize']> {
    const error = this.device.setRequestedSize(bytes);
    this.deliverEvents();
    return error;
  }




  private process(): number {
    const handler: ElementHandler = (m, e) => this.device.handleRequest(m, e);
    const handled = this.runner.drain(REQUEST_QUEUE, handler, () => this.deliverEvents());
    this.elementsHandled += handled;
    return handled;
  }
}
