/**
 * What a guest driver sees of a virtio device: the transport registers (features, status,
 * queues), config space, the queue notify register (a kick), and the interrupts the device
 * raises (config change, used buffer). The host hands the guest one port per device; the
 * device-side classes (BalloonVirtio, VirtioMemVirtio) implement it directly.
 *
 * Interrupts are delivered synchronously to `DriverInterrupts`; like Linux's interrupt
 * handlers, the drivers only record them and do the work in their next `step()`, the way
 * Linux queues work items.
 *
 * Also here: the drivers' typed error, and config helpers for 64-bit fields (virtio config
 * is read at most 32 bits at a time through the port).
 */
import type { DriverInterrupts } from '../../devices/balloon/balloon-queues.ts';
import type { VirtioTransport } from '../../devices/virtio/device-core.ts';

export type { DriverInterrupts } from '../../devices/balloon/balloon-queues.ts';

export interface VirtioPort extends VirtioTransport {
  /** Reads `lengthBytes` (1, 2 or 4) of config space, little-endian. */
  readConfig(offsetBytes: number, lengthBytes: number): number;
  writeConfig(offsetBytes: number, lengthBytes: number, value: number): void;
  /** Notifies (kicks) queue `queueIndex`; `nowNs` is the guest's time. */
  notify(queueIndex: number, nowNs: number): void;
  /** Connects the driver's interrupt handlers (null disconnects). */
  connectDriver(interrupts: DriverInterrupts | null): void;
}

export type DriverErrorCode =
  /** Feature negotiation or DRIVER_OK failed. */
  | 'DRIVER_ERR_NEGOTIATION'
  /** A queue could not be set up (missing, refused, too small). */
  | 'DRIVER_ERR_QUEUE'
  /** The device's config space holds values the driver cannot use. */
  | 'DRIVER_ERR_BAD_CONFIG'
  /** The device answered in a way the protocol does not allow. */
  | 'DRIVER_ERR_DEVICE';

/** A driver could not probe a device, or gave up on it. */
export class DriverError extends Error {
  override name = 'DriverError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: DriverErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const TWO_32 = 4294967296;

/** Reads a le64 config field as two 32-bit halves (exact up to 2^53). */
export function readConfigLe64(port: VirtioPort, offsetBytes: number): number {
  const low = port.readConfig(offsetBytes, 4) >>> 0;
  const high = port.readConfig(offsetBytes + 4, 4) >>> 0;
  return high * TWO_32 + low;
}
