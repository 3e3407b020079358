/**
 * Test helpers for the driver↔device tests: a device core and a driver queue brought up on
 * one guest memory, the way a guest probes a device, plus a small echo "device" that serves
 * a chain by writing a reply into its writable buffers. The device side sees memory through
 * a recorder, so tests can check every byte it wrote; the driver writes the raw memory.
 * Production code never imports this file.
 */
import { assert } from '../../lib/assert.ts';
import { VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, featureBit } from '../../devices/virtio/constants.ts';
import { VirtioDeviceCore } from '../../devices/virtio/device-core.ts';
import { writeToSegments } from '../../devices/virtio/segments.ts';
import type { SplitQueueElement, SplitQueueDevice } from '../../devices/virtio/split-queue.ts';
import { ArrayGuestMemory, RecordingGuestMemory } from '../../devices/virtio/test-memory.ts';
import { BumpAllocator } from './bump-allocator.ts';
import { negotiateFeatures, reattachQueue, setDriverOk, setUpQueue } from './driver-features.ts';
import { SplitQueueDriver } from './split-queue-driver.ts';

export interface RigOptions {
  readonly queueSize: number;
  /** Ring and buffer features the device offers besides VERSION_1. */
  readonly offeredFeatures: bigint;
  /** Features the driver asks for (VERSION_1 is added by the negotiation). */
  readonly driverFeatures: bigint;
  readonly memoryBytes?: number;
  readonly maxChainDescriptors?: number;
  readonly maxTotalLengthBytes?: number;
}

export interface Rig {
  /** Guest memory as the driver writes it. */
  readonly mem: ArrayGuestMemory;
  /** The same memory as the device sees it, recording the device's writes. */
  readonly deviceMem: RecordingGuestMemory;
  readonly core: VirtioDeviceCore;
  readonly queue: SplitQueueDevice;
  readonly driver: SplitQueueDriver<number>;
  /** Allocator for data buffers (rings come from a separate window). */
  readonly data: BumpAllocator;
  /** The negotiated features. */
  readonly features: bigint;
  /** Config interrupts seen. */
  configInterrupts: number;
}

/** Where rings live; data buffers go above. */
const RING_WINDOW_BYTES = 0x8000;

export function bringUp(options: RigOptions): Rig {
  const mem = new ArrayGuestMemory(options.memoryBytes ?? 0x20000);
  const deviceMem = new RecordingGuestMemory(mem);
  const rig = { configInterrupts: 0 } as { configInterrupts: number };
  const core = new VirtioDeviceCore(deviceMem, {
    deviceId: 5,
    offeredFeatures: options.offeredFeatures | featureBit(VIRTIO_F_VERSION_1),
    queueSizesMax: [options.queueSize],
    maxChainDescriptors: options.maxChainDescriptors,
    maxTotalLengthBytes: options.maxTotalLengthBytes,
    hooks: { onConfigInterrupt: () => rig.configInterrupts++ },
  });
  const negotiated = negotiateFeatures(core, options.driverFeatures);
  assert(negotiated.ok, 'negotiation failed');
  const driver = setUpQueue<number>(core, mem, new BumpAllocator(0, RING_WINDOW_BYTES), 0, negotiated.features);
  assert(driver instanceof SplitQueueDriver, 'queue setup failed');
  assert(setDriverOk(core) === null, 'DRIVER_OK refused');
  return Object.assign(rig, {
    mem, deviceMem, core, queue: core.queues[0], driver, features: negotiated.features,
    data: new BumpAllocator(RING_WINDOW_BYTES, mem.sizeBytes),
  });
}

/** What a driver does on NEEDS_RESET: reset the device, renegotiate, re-initialise its queue in place. */
export function recover(rig: Rig): number[] {
  assert((rig.core.status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0, 'the device does not need a reset');
  const negotiated = negotiateFeatures(rig.core, rig.features);
  assert(negotiated.ok && negotiated.features === rig.features, 'renegotiation failed');
  const lost = rig.driver.reset();
  assert(reattachQueue(rig.core, 0, rig.driver) === null, 'queue re-attach failed');
  assert(setDriverOk(rig.core) === null, 'DRIVER_OK refused');
  return lost;
}

/** The reply the echo device writes for a chain: derived from its readable bytes' sum and position. */
export function replyByte(seed: number, offset: number): number {
  return (seed * 13 + offset * 7 + 0x80) & 0xff;
}

/** Writes `count` reply bytes (capped by the writable space) and pushes the element; returns the count. */
export function echo(rig: Rig, element: SplitQueueElement, seed: number, count = element.writableLengthBytes): number {
  const reply = new Uint8Array(Math.min(count, element.writableLengthBytes));
  for (let i = 0; i < reply.length; i++) reply[i] = replyByte(seed, i);
  const written = writeToSegments(rig.deviceMem, element.writable, reply);
  rig.queue.push(element, written);
  return written;
}

/** Allocates a buffer of `lengthBytes` filled with `fill(i)`. */
export function buffer(rig: Rig, lengthBytes: number, fill: (i: number) => number = () => 0): { gpa: number; lengthBytes: number } {
  const gpa = rig.data.allocate(lengthBytes, 8);
  const bytes = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) bytes[i] = fill(i);
  rig.mem.write(gpa, bytes);
  return { gpa, lengthBytes };
}
