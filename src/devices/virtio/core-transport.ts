/**
 * The transport half that every device wiring shares: the guest driver's register accesses
 * (features, status, queue setup, config reads) go straight to the device's VirtioDeviceCore,
 * and a status write is followed by the device-specific hooks that copy the new status and
 * features into the device logic and deliver the events that caused. Balloon and virtio-mem
 * extend this and add their queues and config writes.
 */
import type { SplitQueueLayout } from './ring-layout.ts';
import type { VirtioDeviceCore, VirtioTransport } from './device-core.ts';
import type { VirtioError } from './errors.ts';

export abstract class CoreBackedTransport implements VirtioTransport {
  /** Status, features and the split queues. */
  abstract readonly core: VirtioDeviceCore;

  /** Tells the device logic the status and features the core now holds. */
  protected abstract syncDevice(): void;

  /** Delivers pending device events (interrupts) to the driver. */
  abstract deliverEvents(): void;

  readDeviceFeatures(): bigint {
    return this.core.readDeviceFeatures();
  }

  writeDriverFeatures(features: bigint): VirtioError | null {
    return this.core.writeDriverFeatures(features);
  }

  readStatus(): number {
    return this.core.readStatus();
  }

  writeStatus(status: number): VirtioError | null {
    const result = this.core.writeStatus(status);
    this.syncDevice();
    this.deliverEvents();
    return result;
  }

  queueSizeMax(queueIndex: number): number {
    return this.core.queueSizeMax(queueIndex);
  }

  configureQueue(queueIndex: number, layout: SplitQueueLayout): VirtioError | null {
    return this.core.configureQueue(queueIndex, layout);
  }

  readConfig(offsetBytes: number, lengthBytes: number): number {
    return this.core.readConfig(offsetBytes, lengthBytes);
  }
}
