/**
 * A VirtioPort whose device can be swapped: the port the simulated guest's driver holds. The
 * driver object is part of the guest, which moves from the source to the destination at the
 * switchover; the world then points the port at the destination's device (whose state was
 * loaded from the migrated section) and moves the driver's interrupt handlers there, so the
 * source device can no longer interrupt the guest and the destination device can.
 *
 * What it deliberately doesn't do: copy any device state (the world migrates it through the
 * device sections) or queue interrupts raised while switching (there are none: the guest is
 * stopped then).
 */
import type { DriverInterrupts, VirtioPort } from '../guest/drivers/virtio-port.ts';
import type { SplitQueueLayout } from '../devices/virtio/ring-layout.ts';
import type { VirtioError } from '../devices/virtio/errors.ts';

export class SwitchablePort implements VirtioPort {
  /** The device the driver talks to now. */
  private target: VirtioPort;
  /** The driver's interrupt handlers, once it connected. */
  private interrupts: DriverInterrupts | null = null;

  constructor(target: VirtioPort) {
    this.target = target;
  }

  /** The device the driver talks to now. */
  get current(): VirtioPort {
    return this.target;
  }

  /** Moves the driver to `next`: the old device is disconnected, the new one connected. */
  switchTo(next: VirtioPort): void {
    this.target.connectDriver(null);
    this.target = next;
    next.connectDriver(this.interrupts);
  }

  readDeviceFeatures(): bigint {
    return this.target.readDeviceFeatures();
  }

  writeDriverFeatures(features: bigint): VirtioError | null {
    return this.target.writeDriverFeatures(features);
  }

  readStatus(): number {
    return this.target.readStatus();
  }

  writeStatus(status: number): VirtioError | null {
    return this.target.writeStatus(status);
  }

  queueSizeMax(queueIndex: number): number {
    return this.target.queueSizeMax(queueIndex);
  }

  configureQueue(queueIndex: number, layout: SplitQueueLayout): VirtioError | null {
    return this.target.configureQueue(queueIndex, layout);
  }

  readConfig(offsetBytes: number, lengthBytes: number): number {
    return this.target.readConfig(offsetBytes, lengthBytes);
  }

  writeConfig(offsetBytes: number, lengthBytes: number, value: number): void {
    this.target.writeConfig(offsetBytes, lengthBytes, value);
  }

  notify(queueIndex: number, nowNs: number): void {
    this.target.notify(queueIndex, nowNs);
  }

  connectDriver(interrupts: DriverInterrupts | null): void {
    this.interrupts = interrupts;
    this.target.connectDriver(interrupts);
  }
}
