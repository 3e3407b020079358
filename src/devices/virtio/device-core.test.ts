/**
 * Feature negotiation and the status register of VirtioDeviceCore, driven through raw
 * register writes (the driver-side helper is tested in guest/virtio): FEATURES_OK only for
 * offered features with VERSION_1, the status sequence, reset, virtio_error handling, and
 * save/restore.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../lib/assert.ts';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK, VIRTIO_CONFIG_S_DRIVER as DRIVER, VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET as NEEDS_RESET, VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_DESC_F_NEXT, featureBit, featureSet,
  featuresFromHalves, featuresHigh32, featuresLow32,
} from './constants.ts';
import { VirtioDeviceCore, type VirtioDeviceHooks } from './device-core.ts';
import { VirtioError } from './errors.ts';
import { ArrayGuestMemory } from './test-memory.ts';

const OFFERED = featureSet(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, 1, 3);
const LAYOUT = { queueSize: 8, descGpa: 0x0, availGpa: 0x100, usedGpa: 0x200 };

function makeCore(hooks: VirtioDeviceHooks = {}, offered = OFFERED) {
  const mem = new ArrayGuestMemory(0x4000);
  return { mem, core: new VirtioDeviceCore(mem, { deviceId: 5, offeredFeatures: offered, queueSizesMax: [8, 16], hooks }) };
}

/** Raw handshake up to FEATURES_OK; returns the refusal of the FEATURES_OK write. */
function handshake(core: VirtioDeviceCore, features: bigint): VirtioError | null {
  core.writeStatus(ACK);
  core.writeStatus(ACK | DRIVER);
  assert.equal(core.writeDriverFeatures(features), null);
  return core.writeStatus(ACK | DRIVER | FEATURES_OK);
}

test('FEATURES_OK sticks for a subset of the offered features, and negotiated = accepted', () => {
  const { core } = makeCore();
  assert.equal(core.readDeviceFeatures(), OFFERED);
  const accepted = featureSet(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, 3);
  assert.equal(core.negotiatedFeatures, 0n, 'nothing negotiated before FEATURES_OK');
  assert.equal(handshake(core, accepted), null);
  assert.equal(core.status, ACK | DRIVER | FEATURES_OK);
  assert.equal(core.negotiatedFeatures, accepted & OFFERED);
  assert.equal(core.hasFeature(VIRTIO_RING_F_EVENT_IDX), true);
  assert.equal(core.hasFeature(VIRTIO_RING_F_INDIRECT_DESC), false);
  assert.equal(core.writeStatus(ACK | DRIVER | FEATURES_OK | DRIVER_OK), null);
  assert.equal(core.live, true);
});

test('FEATURES_OK is refused for features the device did not offer', () => {
  const { core } = makeCore();
  const refusal = handshake(core, featureSet(VIRTIO_F_VERSION_1, 2));
  assert.equal(refusal?.code, 'VIRTIO_ERR_FEATURES_NOT_OFFERED');
  assert.equal(core.status & FEATURES_OK, 0);
  assert.equal(core.negotiatedFeatures, 0n);
  assert.equal(core.writeStatus(core.status | DRIVER_OK)?.code, 'VIRTIO_ERR_STATUS_SEQUENCE');
  assert.equal(core.status & DRIVER_OK, 0, 'DRIVER_OK needs FEATURES_OK');
  // The driver may try again with fewer features before FEATURES_OK sticks.
  assert.equal(core.writeDriverFeatures(featureSet(VIRTIO_F_VERSION_1)), null);
  assert.equal(core.writeStatus(core.status | FEATURES_OK), null);
  assert.equal(core.negotiatedFeatures, featureSet(VIRTIO_F_VERSION_1));
});

test('VERSION_1: required by this modern device; features lock at FEATURES_OK', () => {
  assert.throws(() => makeCore({}, featureSet(VIRTIO_RING_F_EVENT_IDX)), AssertionError, 'a device must offer VERSION_1');
  const { core } = makeCore();
  assert.equal(handshake(core, featureSet(VIRTIO_RING_F_EVENT_IDX))?.code, 'VIRTIO_ERR_FEATURES_NO_VERSION_1');
  assert.equal(core.status & FEATURES_OK, 0);
  core.writeStatus(0);
  assert.equal(handshake(core, featureSet(VIRTIO_F_VERSION_1)), null);
  assert.equal(core.writeDriverFeatures(OFFERED)?.code, 'VIRTIO_ERR_FEATURES_LOCKED');
  assert.equal(core.negotiatedFeatures, featureSet(VIRTIO_F_VERSION_1));
});

test('ACCESS_PLATFORM offered must be accepted; the device may veto features', () => {
  const offered = OFFERED | featureBit(VIRTIO_F_ACCESS_PLATFORM);
  const a = makeCore({}, offered).core;
  assert.equal(handshake(a, featureSet(VIRTIO_F_VERSION_1))?.code, 'VIRTIO_ERR_FEATURES_ACCESS_PLATFORM');
  a.writeStatus(0);
  assert.equal(handshake(a, featureSet(VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM)), null);

  const veto = (f: bigint): VirtioError | null => ((f & featureBit(3)) !== 0n && (f & featureBit(1)) === 0n
    ? new VirtioError('VIRTIO_ERR_FEATURES_REJECTED', 'Bit 3 needs bit 1') : null);
  const b = makeCore({ validateFeatures: veto }).core;
  assert.equal(handshake(b, featureSet(VIRTIO_F_VERSION_1, 3))?.code, 'VIRTIO_ERR_FEATURES_REJECTED');
  b.writeStatus(0);
  assert.equal(handshake(b, featureSet(VIRTIO_F_VERSION_1, 1, 3)), null);
});

test('status bits follow the sequence, only accumulate, and NEEDS_RESET is the device\'s', () => {
  const { core } = makeCore();
  assert.equal(core.writeStatus(DRIVER)?.code, 'VIRTIO_ERR_STATUS_SEQUENCE');
  assert.equal(core.status, 0);
  core.writeStatus(ACK);
  assert.equal(core.writeStatus(ACK | FEATURES_OK)?.code, 'VIRTIO_ERR_STATUS_SEQUENCE');
  assert.equal(core.status, ACK);
  assert.equal(handshake(core, featureSet(VIRTIO_F_VERSION_1)), null);
  assert.equal(core.writeStatus(ACK)?.code, 'VIRTIO_ERR_STATUS_CLEAR');
  assert.equal(core.status, ACK | DRIVER | FEATURES_OK, 'bits are not cleared');
  core.writeStatus(core.status | NEEDS_RESET);
  assert.equal(core.status & NEEDS_RESET, 0, 'the driver cannot set NEEDS_RESET');
});

test('queues are configured after FEATURES_OK, within their maximum', () => {
  const { core } = makeCore();
  assert.equal(core.configureQueue(0, LAYOUT)?.code, 'VIRTIO_ERR_STATUS_SEQUENCE');
  handshake(core, featureSet(VIRTIO_F_VERSION_1));
  assert.equal(core.configureQueue(2, LAYOUT)?.code, 'VIRTIO_ERR_QUEUE_INDEX');
  assert.equal(core.configureQueue(0, { ...LAYOUT, queueSize: 16 })?.code, 'VIRTIO_ERR_QUEUE_CONFIG');
  assert.equal(core.configureQueue(0, { ...LAYOUT, availGpa: 0x101 })?.code, 'VIRTIO_ERR_QUEUE_CONFIG');
  assert.equal(core.configureQueue(1, { ...LAYOUT, queueSize: 16, availGpa: 0x100, usedGpa: 0x200 }), null);
  assert.equal(core.queueSizeMax(1), 16);
  assert.equal(core.queueSizeMax(7), 0);
});

test('a broken ring sets NEEDS_RESET, stops every queue, raises a config interrupt; reset clears all', () => {
  const events: string[] = [];
  const { core, mem } = makeCore({
    onError: (e, q) => events.push(`error ${e.code} q${q}`),
    onConfigInterrupt: () => events.push('config'),
    onReset: () => events.push('reset'),
  });
  handshake(core, featureSet(VIRTIO_F_VERSION_1));
  core.configureQueue(0, LAYOUT);
  core.configureQueue(1, { ...LAYOUT, descGpa: 0x1000, availGpa: 0x1100, usedGpa: 0x1200 });
  core.writeStatus(core.status | DRIVER_OK);
  // A one-descriptor loop on queue 0.
  mem.writeLe32(0, 0x2000);
  mem.writeLe32(8, 8);
  mem.writeLe16(12, VIRTQ_DESC_F_NEXT);
  mem.writeLe16(14, 0);
  mem.writeLe16(0x100 + 2, 1);
  assert.equal(core.queues[0].pop(), null);
  assert.deepEqual(events, ['error VIRTIO_ERR_DESC_LOOP q0', 'config']);
  assert.equal(core.status & NEEDS_RESET, NEEDS_RESET);
  assert.equal(core.broken, true);
  assert.equal(core.live, false);
  assert.equal(core.queues[1].broken, true);
  assert.equal(core.configGeneration, 1);

  core.writeStatus(0);
  assert.deepEqual(events.slice(2), ['reset']);
  assert.equal(core.status, 0);
  assert.equal(core.driverFeatures, 0n);
  assert.equal(core.broken, false);
  assert.equal(core.queues[0].ready, false);
  assert.equal(core.queues[0].broken, false);
  assert.equal(core.queues[0].lastAvailIdx, 0);
});

test('notifyQueue and notifyConfigChange go through the hooks', () => {
  const events: string[] = [];
  const { core, mem } = makeCore({ onQueueInterrupt: (q) => events.push(`queue ${q}`), onConfigInterrupt: () => events.push('config') });
  core.notifyConfigChange();
  assert.deepEqual(events, [], 'no config interrupt before DRIVER_OK');
  handshake(core, featureSet(VIRTIO_F_VERSION_1));
  core.configureQueue(0, LAYOUT);
  core.writeStatus(core.status | DRIVER_OK);
  assert.equal(core.notifyQueue(0), true);
  mem.writeLe16(0x100, 1);
  assert.equal(core.notifyQueue(0), false);
  core.notifyConfigChange();
  assert.deepEqual(events, ['queue 0', 'config']);
});

test('save and restore carry status, features and queue indices; bad state is refused', () => {
  const { core, mem } = makeCore();
  handshake(core, featureSet(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX));
  core.configureQueue(0, LAYOUT);
  core.writeStatus(core.status | DRIVER_OK);
  mem.writeLe16(0x100 + 2, 5);
  mem.writeLe16(0x200 + 2, 3);
  core.queues[0].restoreLastAvailIdx(4);
  const state = core.saveState();
  assert.deepEqual(state.queues, [{ layout: LAYOUT, lastAvailIdx: 4 }, null]);

  const other = new VirtioDeviceCore(mem, { deviceId: 5, offeredFeatures: OFFERED, queueSizesMax: [8, 16] });
  assert.equal(other.restoreState(state), null);
  assert.equal(other.status, state.status);
  assert.equal(other.hasFeature(VIRTIO_RING_F_EVENT_IDX), true);
  assert.equal(other.queues[0].lastAvailIdx, 4);
  assert.equal(other.queues[0].inUseCount, 1);

  assert.equal(other.restoreState({ ...state, driverFeatures: state.driverFeatures | featureBit(40) })?.code, 'VIRTIO_ERR_FEATURES_NOT_OFFERED');
  assert.equal(other.restoreState({ ...state, queues: [{ layout: LAYOUT, lastAvailIdx: 0x8000 }] })?.code, 'VIRTIO_ERR_MIGRATION_INCONSISTENT');
  assert.equal(other.status, 0, 'a refused restore leaves the core reset');
});

test('feature halves round-trip through the 32-bit stream fields', () => {
  const f = featureSet(0, 31, 32, 40, 63);
  assert.equal(featuresFromHalves(featuresLow32(f), featuresHigh32(f)), f);
  assert.equal(featuresLow32(f), 0x80000001);
});
