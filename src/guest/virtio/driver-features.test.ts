/**
 * The driver's initialisation helper against the device core and against fake transports
 * that misbehave: accepted = offered ∩ wanted, VERSION_1 and ACCESS_PLATFORM always taken
 * when offered, FAILED on refusal, queue setup at the device's size, DRIVER_OK.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK, VIRTIO_CONFIG_S_DRIVER as DRIVER, VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED as FAILED, VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, featureSet,
} from '../../devices/virtio/constants.ts';
import { VirtioDeviceCore, type VirtioTransport } from '../../devices/virtio/device-core.ts';
import { VirtioError } from '../../devices/virtio/errors.ts';
import { ArrayGuestMemory } from '../../devices/virtio/test-memory.ts';
import { BumpAllocator } from './bump-allocator.ts';
import { negotiateFeatures, setDriverOk, setUpQueue } from './driver-features.ts';
import { SplitQueueDriver } from './split-queue-driver.ts';

/** A register file that keeps whatever is written, optionally dropping FEATURES_OK. */
function fakeTransport(offered: bigint, dropFeaturesOk: boolean): VirtioTransport & { status: number; features: bigint } {
  return {
    status: 0,
    features: 0n,
    readDeviceFeatures: () => offered,
    writeDriverFeatures(f) { this.features = f; return null; },
    readStatus() { return this.status; },
    writeStatus(s) { this.status = dropFeaturesOk ? s & ~FEATURES_OK : s; return null; },
    queueSizeMax: () => 0,
    configureQueue: () => null,
  };
}

test('negotiation accepts offered ∩ wanted, plus VERSION_1 and ACCESS_PLATFORM', () => {
  const mem = new ArrayGuestMemory(0x10000);
  const offered = featureSet(VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_RING_F_EVENT_IDX, 1, 4);
  const core = new VirtioDeviceCore(mem, { deviceId: 5, offeredFeatures: offered, queueSizesMax: [64, 128] });
  const result = negotiateFeatures(core, featureSet(VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, 1, 2));
  assert.deepEqual(result, { ok: true, features: featureSet(VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_RING_F_EVENT_IDX, 1) });
  assert.equal(core.status, ACK | DRIVER | FEATURES_OK);
  assert.equal(core.negotiatedFeatures, result.ok ? result.features : -1n);

  const allocator = new BumpAllocator(0, 0x10000);
  const q1 = setUpQueue<number>(core, mem, allocator, 1, core.negotiatedFeatures);
  assert.ok(q1 instanceof SplitQueueDriver);
  assert.equal(q1.queueSize, 128, 'the device maximum by default');
  const q0 = setUpQueue<number>(core, mem, allocator, 0, core.negotiatedFeatures, 16);
  assert.ok(q0 instanceof SplitQueueDriver);
  assert.equal(core.queues[0].currentLayout?.queueSize, 16);
  assert.equal((setUpQueue(core, mem, allocator, 2, 0n) as VirtioError).code, 'VIRTIO_ERR_QUEUE_INDEX');
  assert.equal(setDriverOk(core), null);
  assert.equal(core.live, true);
  assert.equal(core.status & DRIVER_OK, DRIVER_OK);
});

test('negotiating again resets the device first', () => {
  const mem = new ArrayGuestMemory(0x1000);
  const core = new VirtioDeviceCore(mem, { deviceId: 5, offeredFeatures: featureSet(VIRTIO_F_VERSION_1), queueSizesMax: [8] });
  assert.ok(negotiateFeatures(core, 0n).ok);
  setDriverOk(core);
  assert.ok(negotiateFeatures(core, 0n).ok);
  assert.equal(core.status, ACK | DRIVER | FEATURES_OK);
});

test('a device without VERSION_1 is refused and marked FAILED', () => {
  const t = fakeTransport(featureSet(VIRTIO_RING_F_EVENT_IDX), false);
  const result = negotiateFeatures(t, featureSet(VIRTIO_RING_F_EVENT_IDX));
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.code, 'VIRTIO_ERR_FEATURES_NO_VERSION_1');
  assert.equal(t.status & FAILED, FAILED);
});

test('a device that does not keep FEATURES_OK fails the negotiation', () => {
  const t = fakeTransport(featureSet(VIRTIO_F_VERSION_1), true);
  const result = negotiateFeatures(t, 0n);
  assert.equal(!result.ok && result.error.code, 'VIRTIO_ERR_FEATURES_REJECTED');
  assert.equal(t.status & FAILED, FAILED);

  const mem = new ArrayGuestMemory(0x1000);
  const veto = new VirtioDeviceCore(mem, {
    deviceId: 5, offeredFeatures: featureSet(VIRTIO_F_VERSION_1, 3), queueSizesMax: [8],
    hooks: { validateFeatures: () => new VirtioError('VIRTIO_ERR_FEATURES_REJECTED', 'No') },
  });
  const vetoed = negotiateFeatures(veto, featureSet(3));
  assert.equal(!vetoed.ok && vetoed.error.code, 'VIRTIO_ERR_FEATURES_REJECTED');
  assert.equal(veto.status & (FAILED | FEATURES_OK), FAILED);
});
