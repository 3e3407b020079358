// The device side of the queue wiring, with rings written by hand (the real driver is
// exercised in guest/drivers): QueueEffectRunner's push / hold / detach / unpop, the balloon's
// config space through the transport, device errors becoming the core's virtio_error with a
// single interrupt, and virtio-mem's UNPLUGGED_INACCESSIBLE feature check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { ElementEffect, QueueElement } from '../element-io.ts';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, featureBit,
} from '../virtio/constants.ts';
import { VirtioDeviceCore, type VirtioTransport } from '../virtio/device-core.ts';
import { ArrayGuestMemory } from '../virtio/test-memory.ts';
import { VirtioMemDevice } from '../virtio-mem/virtio-mem-device.ts';
import { VirtioMemVirtio } from '../virtio-mem/virtio-mem-queues.ts';
import { BalloonDevice } from './balloon-device.ts';
import { BalloonVirtio, QueueEffectRunner } from './balloon-queues.ts';
import { VIRTIO_BALLOON_F_STATS_VQ } from './constants.ts';

const MiB = 1024 * 1024;
const QUEUE_SIZE = 8;

/** Brings a transport up to DRIVER_OK with `features`, queue q's rings at 0x1000 * (q + 1). */
function bringUp(transport: VirtioTransport, features: bigint, queues: number): Array<{ descGpa: number; availGpa: number; usedGpa: number }> {
  transport.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  transport.writeDriverFeatures(features | featureBit(VIRTIO_F_VERSION_1));
  transport.writeStatus(transport.readStatus() | VIRTIO_CONFIG_S_FEATURES_OK);
  const layouts = [];
  for (let q = 0; q < queues; q++) {
    const base = 0x1000 * (q + 1);
    const layout = { queueSize: QUEUE_SIZE, descGpa: base, availGpa: base + 0x200, usedGpa: base + 0x400 };
    assert.equal(transport.configureQueue(q, layout), null);
    layouts.push(layout);
  }
  transport.writeStatus(transport.readStatus() | VIRTIO_CONFIG_S_DRIVER_OK);
  return layouts;
}

/** Makes one single-descriptor buffer available (descriptor = avail slot = n). */
function offer(mem: GuestMemory, layout: { descGpa: number; availGpa: number }, n: number, gpa: number, lengthBytes: number, writable = false): void {
  const d = layout.descGpa + 16 * n;
  mem.writeLe32(d, gpa);
  mem.writeLe32(d + 4, 0);
  mem.writeLe32(d + 8, lengthBytes);
  mem.writeLe16(d + 12, writable ? 2 : 0);
  mem.writeLe16(d + 14, 0);
  mem.writeLe16(layout.availGpa + 4 + 2 * n, n);
  mem.writeLe16(layout.availGpa + 2, n + 1);
}

const usedIdx = (mem: GuestMemory, layout: { usedGpa: number }) => mem.readLe16(layout.usedGpa + 2);

test('the effect runner: unpop retries first, hold keeps, detach drops, push returns with a notification', () => {
  const mem = new ArrayGuestMemory(64 * 1024);
  const interrupts: number[] = [];
  const core = new VirtioDeviceCore(mem, { deviceId: 5, offeredFeatures: featureBit(VIRTIO_F_VERSION_1), queueSizesMax: [QUEUE_SIZE], hooks: { onQueueInterrupt: (q) => interrupts.push(q) } });
  const [layout] = bringUp(core, 0n, 1);
  const runner = new QueueEffectRunner(core, mem);
  for (let n = 0; n < 4; n++) offer(mem, layout, n, 0x8000 + 16 * n, 4);
  const seen: number[] = [];
  let held: QueueElement | null = null;
  let unpopOnce = true;
  const handler = (_m: GuestMemory, e: QueueElement): ElementEffect[] => {
    seen.push(e.head);
    if (e.head === 0 && unpopOnce) { unpopOnce = false; return [{ kind: 'unpop', element: e }]; }
    if (e.head === 1) { held = e; return [{ kind: 'hold', element: e }]; }
    if (e.head === 2) return [{ kind: 'detach', element: e }];
    return [{ kind: 'push', element: e, usedLengthBytes: 0 }];
  };
  assert.equal(runner.drain(0, handler, () => {}), 1); // The unpop stops the drain.
  assert.equal(runner.drain(0, handler, () => {}), 4);
  assert.deepEqual(seen, [0, 0, 1, 2, 3]);
  assert.equal(usedIdx(mem, layout), 2); // 0 and 3 pushed; 1 held; 2 detached.
  assert.deepEqual(interrupts, [0, 0]);
  runner.apply(0, [{ kind: 'push', element: held!, usedLengthBytes: 0 }]);
  assert.equal(usedIdx(mem, layout), 3);
  assert.equal(mem.readLe32(layout.usedGpa + 4 + 8 * 2), 1, 'the held element went back under its own head');
  assert.throws(() => runner.apply(0, [{ kind: 'push', element: held!, usedLengthBytes: 0 }]), /did not pop/);
});

test('balloon config through the transport; a device error becomes virtio_error with one interrupt', () => {
  const mem = new ArrayGuestMemory(64 * 1024);
  const device = new BalloonDevice({ ramSizeBytes: 16 * MiB, freePageHint: true });
  const balloon = new BalloonVirtio(mem, device);
  let configInterrupts = 0;
  balloon.connectDriver({ onConfigChange: () => configInterrupts++, onQueueInterrupt: () => {} });
  assert.deepEqual(balloon.core.queues.map((q) => q.queueSizeMax), [128, 128, 128, 1024]);
  const layouts = bringUp(balloon, device.offeredFeatures, 4);
  assert.ok(device.negotiated(VIRTIO_BALLOON_F_STATS_VQ) && device.driverStatus & VIRTIO_CONFIG_S_DRIVER_OK);
  balloon.balloon(12 * MiB);
  assert.equal(balloon.readConfig(0, 4), 1024);
  assert.equal(configInterrupts, 1);
  balloon.writeConfig(4, 4, 1024);
  assert.deepEqual(balloon.takeEvents().map((e) => e.kind), ['config-change', 'balloon-change']);
  balloon.precopyNotify(2, { vmRunning: true, postcopyRam: false });
  assert.equal(configInterrupts, 2);
  mem.write(0x9000, new Uint8Array([1, 0]));
  offer(mem, layouts[3], 0, 0x9000, 2); // A 2-byte command id.
  balloon.notify(3, 0);
  assert.equal(device.broken?.message, 'received an incorrect cmd id');
  assert.ok(balloon.core.broken && balloon.readStatus() & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.equal(configInterrupts, 3);
  assert.deepEqual(balloon.takeEvents().map((e) => e.kind), ['config-change', 'broken', 'config-change']);
  assert.equal(usedIdx(mem, layouts[3]), 1, 'QEMU returns the bad element with used length 0');
  balloon.writeStatus(0);
  assert.equal(device.broken, null);
  assert.ok(!balloon.core.broken);
});

test('deferred kicks wait for poll(); the free page queue is polled while START', () => {
  const mem = new ArrayGuestMemory(64 * 1024);
  const device = new BalloonDevice({ ramSizeBytes: 16 * MiB, freePageHint: true });
  const balloon = new BalloonVirtio(mem, device, { kickMode: 'deferred' });
  const layouts = bringUp(balloon, device.offeredFeatures, 4);
  balloon.precopyNotify(2, { vmRunning: true, postcopyRam: false });
  mem.writeLe32(0x9000, device.hint.cmdId);
  offer(mem, layouts[3], 0, 0x9000, 4);
  balloon.notify(3, 0);
  assert.equal(usedIdx(mem, layouts[3]), 0);
  assert.equal(balloon.poll(1), 1);
  assert.ok(balloon.polling && device.freePagePollingActive());
  offer(mem, layouts[3], 1, 0x4000, 0x1000, true); // A hint, no kick.
  assert.equal(balloon.poll(2), 1);
  assert.equal(usedIdx(mem, layouts[3]), 2);
  balloon.precopyNotify(1, { vmRunning: true, postcopyRam: false }); // BEFORE_BITMAP_SYNC: STOP.
  balloon.poll(3);
  assert.ok(!balloon.polling);
});

test('virtio-mem: UNPLUGGED_INACCESSIBLE offered must be accepted; config is read-only', () => {
  const mem = new ArrayGuestMemory(64 * 1024);
  const device = new VirtioMemDevice({ addrBytes: 0, regionSizeBytes: 64 * MiB, unpluggedInaccessible: true, requestedSizeBytes: 4 * MiB });
  const virtioMem = new VirtioMemVirtio(mem, device);
  virtioMem.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  virtioMem.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  assert.match(virtioMem.writeStatus(virtioMem.readStatus() | VIRTIO_CONFIG_S_FEATURES_OK)?.message ?? '', /UNPLUGGED_INACCESSIBLE/);
  assert.equal(virtioMem.readStatus() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
  virtioMem.writeStatus(0);
  bringUp(virtioMem, device.offeredFeatures, 1);
  assert.equal(virtioMem.readConfig(48, 4), 4 * MiB);
  virtioMem.writeConfig(48, 4, 0);
  assert.equal(virtioMem.readConfig(48, 4), 4 * MiB);
});
