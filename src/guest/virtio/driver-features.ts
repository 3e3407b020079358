/**
 * The driver's half of device initialisation (virtio 1.2 §3.1.1, Linux virtio_dev_probe /
 * virtio_features_ok): reset, ACKNOWLEDGE, DRIVER, accept features, FEATURES_OK and check
 * that it stuck, set up queues, DRIVER_OK. It talks to any `VirtioTransport`.
 *
 * Accepted features = offered ∩ (the driver's device-specific and ring features ∪ the
 * transport features Linux always keeps: VERSION_1 and ACCESS_PLATFORM). A device that does
 * not offer VERSION_1 is refused, as Linux refuses a modern device without it.
 */
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1, featureBit, hasFeature,
} from '../../devices/virtio/constants.ts';
import type { VirtioTransport } from '../../devices/virtio/device-core.ts';
import { VIRTIO_ERR, VirtioError } from '../../devices/virtio/errors.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { GpaAllocator } from './bump-allocator.ts';
import { SplitQueueDriver } from './split-queue-driver.ts';

export type NegotiationResult =
  | { readonly ok: true; readonly features: bigint }
  | { readonly ok: false; readonly error: VirtioError };

/** Features a driver accepts whenever the device offers them, on top of its own. */
export const TRANSPORT_FEATURES_ALWAYS = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_ACCESS_PLATFORM);

/**
 * Resets the device and negotiates features up to FEATURES_OK. On failure the driver sets
 * FAILED, as Linux does, and the result says why.
 */
export function negotiateFeatures(transport: VirtioTransport, driverFeatures: bigint): NegotiationResult {
  transport.writeStatus(0);
  transport.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  transport.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  const offered = transport.readDeviceFeatures();
  const features = offered & (driverFeatures | TRANSPORT_FEATURES_ALWAYS);
  const fail = (error: VirtioError): NegotiationResult => {
    transport.writeStatus(transport.readStatus() | VIRTIO_CONFIG_S_FAILED);
    return { ok: false, error };
  };
  if (!hasFeature(features, VIRTIO_F_VERSION_1)) {
    return fail(new VirtioError(VIRTIO_ERR.FEATURES_NO_VERSION_1, 'The device does not offer VERSION_1'));
  }
  const written = transport.writeDriverFeatures(features);
  if (written !== null) return fail(written);
  const refusal = transport.writeStatus(transport.readStatus() | VIRTIO_CONFIG_S_FEATURES_OK);
  if ((transport.readStatus() & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
    return fail(refusal ?? new VirtioError(VIRTIO_ERR.FEATURES_REJECTED, 'The device did not keep FEATURES_OK'));
  }
  return { ok: true, features };
}

/** Lays out queue `queueIndex` at the device's maximum size (or `queueSize`) and tells the device. */
export function setUpQueue<T>(
  transport: VirtioTransport,
  mem: GuestMemory,
  allocator: GpaAllocator,
  queueIndex: number,
  features: bigint,
  queueSize?: number,
): SplitQueueDriver<T> | VirtioError {
  const sizeMax = transport.queueSizeMax(queueIndex);
  if (sizeMax === 0) return new VirtioError(VIRTIO_ERR.QUEUE_INDEX, `The device has no queue ${queueIndex}`);
  const driver = new SplitQueueDriver<T>(mem, allocator, { queueSize: Math.min(queueSize ?? sizeMax, sizeMax), features });
  return transport.configureQueue(queueIndex, driver.layout) ?? driver;
}

/** Re-points queue `queueIndex` at an existing driver's rings (after a reset and `driver.reset()`). */
export function reattachQueue(transport: VirtioTransport, queueIndex: number, driver: SplitQueueDriver<unknown>): VirtioError | null {
  return transport.configureQueue(queueIndex, driver.layout);
}

/** Sets DRIVER_OK; returns the refusal, if any. */
export function setDriverOk(transport: VirtioTransport): VirtioError | null {
  return transport.writeStatus(transport.readStatus() | VIRTIO_CONFIG_S_DRIVER_OK);
}
