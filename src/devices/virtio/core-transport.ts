/**
 * The transport half that every device wiring shares: the guest driver's register accesses
 * (features, status, queue setup, config reads) go straight to the device's VirtioDeviceCore,
 * and a status write is followed by the device-specific hooks that copy the new status and
 * features into the device logic and deliver the events that caused. Balloon and virtio-mem
 * extend this and add their queues and config writes.
 */
import type { SplitQueueLayout } from './ring-layout.ts';
import type { VirtioDeviceCore, VirtioTransport } from './device-core.ts';
import { VIRTIO_ERR, VirtioError } from './errors.ts';

/** What the transport needs of a device's logic. */
export interface DeviceLogic<E extends { readonly kind: string }> {
  takeEvents(): E[];
  setDriverStatus(status: number): void;
  setNegotiatedFeatures(features: bigint): void;
}

/**
 * Turns a device 'broken' event into the core's virtio_error. Returns true when the event
 * after it is the config change the device raised for the same error, which the core raises
 * itself and must not be raised twice.
 */
export function forwardBroken(core: VirtioDeviceCore, message: string, next: { kind: string } | undefined): boolean {
  core.virtioError(new VirtioError(VIRTIO_ERR.DEVICE_PROTOCOL, message));
  return next?.kind === 'config-change';
}

export abstract class CoreBackedTransport<E extends { readonly kind: string } = { readonly kind: string }> implements VirtioTransport {
  /** Status, features and the split queues. */
  abstract readonly core: VirtioDeviceCore;
  /** The device logic. */
  abstract readonly device: DeviceLogic<E>;
  /** Device events not yet taken by the host. */
  private events: E[] = [];

  /** Tells the device logic the status and features the core now holds. */
  protected syncDevice(): void {
    this.device.setDriverStatus(this.core.status);
    this.device.setNegotiatedFeatures(this.core.negotiatedFeatures);
  }

  /** Moves the device's pending events to the core (interrupts, errors) and the host's list. */
  deliverEvents(): void {
    const events = this.device.takeEvents();
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      this.events.push(event);
      if (event.kind === 'config-change') {
        this.core.notifyConfigChange();
      } else if (event.kind === 'broken') {
        const message = (event as unknown as { readonly error: { readonly message: string } }).error.message;
        if (forwardBroken(this.core, message, events[i + 1])) this.events.push(events[++i]);
        this.syncDevice();
      }
    }
  }

  /** Removes and returns the device events seen since the last call (all kinds). */
  takeEvents(): E[] {
    this.deliverEvents();
    const out = this.events;
    this.events = [];
    return out;
  }

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
