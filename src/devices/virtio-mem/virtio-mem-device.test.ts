// virtio-mem: config bytes, property checks, the usable region, the request matrix
// (ACK / NACK / BUSY / ERROR and protocol violations), range views, unplug discards, and
// the migration state both as an object and as vmsd bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, hex } from '../../lib/bytes.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, featureBit } from '../virtio/constants.ts';
import { ElementBuilder, RangeRecorder } from '../test-elements.ts';
import { VirtioMemDevice, type VirtioMemOptions } from './virtio-mem-device.ts';
import { blockStateFromCode, decodeVirtioMemResponse, encodeVirtioMemRequest, type VirtioMemRequest } from './virtio-mem-requests.ts';
import { decodeVirtioMemDevicePayload, encodeVirtioMemDevicePayload } from './virtio-mem-vmstate.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BASE = 4 * GiB;
const B = 2 * MiB;

function setup(options: Partial<VirtioMemOptions> = {}) {
  const discards = new RangeRecorder();
  const memory = new BytesBacking(MiB);
  const device = new VirtioMemDevice({ addrBytes: BASE, regionSizeBytes: GiB, requestedSizeBytes: 64 * MiB, discardSink: discards, ...options });
  device.setNegotiatedFeatures(featureBit(VIRTIO_F_VERSION_1));
  device.setDriverStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  const builder = new ElementBuilder(memory, 0);
  /** Sends one request and decodes the response; null when the element got no response. */
  const send = (request: VirtioMemRequest) => {
    const element = builder.element([encodeVirtioMemRequest(request)], [builder.reserve(10)]);
    const effects = device.handleRequest(memory, element);
    assert.equal(effects.length, 1);
    const effect = effects[0];
    if (effect.kind !== 'push') return null;
    assert.equal(effect.usedLengthBytes, 10);
    const decoded = decodeVirtioMemResponse(memory.read(element.writable[0].gpa, 10));
    assert.ok(decoded !== null);
    return decoded.type === 'ack' && request.type === 'state' ? `ack:${blockStateFromCode(decoded.stateCode)}` : decoded.type;
  };
  const plug = (block: number, n: number) => send({ type: 'plug', addr: BigInt(BASE + block * B), nbBlocks: n });
  const unplug = (block: number, n: number) => send({ type: 'unplug', addr: BigInt(BASE + block * B), nbBlocks: n });
  const state = (block: number, n: number) => send({ type: 'state', addr: BigInt(BASE + block * B), nbBlocks: n });
  return { device, memory, builder, discards, send, plug, unplug, state };
}

test('config is 56 little-endian bytes', () => {
  const { device } = setup({ nodeId: 3 });
  assert.equal(
    hex(device.readConfig()),
    '0000200000000000' + '0300' + '000000000000' + '0000000001000000' + '0000004000000000' +
      '0000001400000000' + '0000000000000000' + '0000000400000000',
  );
});

test('properties are checked like QEMU realize', () => {
  const bad = (o: Partial<VirtioMemOptions>) => assert.throws(() => setup(o), { code: 'VIRTIO_MEM_ERR_BAD_OPTION' });
  bad({ blockSizeBytes: 512 * 1024 });
  bad({ blockSizeBytes: 3 * MiB });
  bad({ regionSizeBytes: GiB + MiB });
  bad({ addrBytes: BASE + MiB });
  bad({ requestedSizeBytes: 3 * MiB });
  bad({ requestedSizeBytes: 2 * GiB });
});

test('the usable region covers requested + 256 MiB, capped, grows without shrinking', () => {
  const { device } = setup();
  assert.equal(device.usableRegionSizeBytes, 320 * MiB);
  assert.equal(setup({ requestedSizeBytes: 0 }).device.usableRegionSizeBytes, 0);
  assert.equal(setup({ requestedSizeBytes: 900 * MiB }).device.usableRegionSizeBytes, GiB);
  assert.equal(device.setRequestedSize(128 * MiB), null);
  assert.equal(device.usableRegionSizeBytes, 384 * MiB);
  assert.equal(device.configInterruptCount, 1);
  device.setRequestedSize(0);
  assert.equal(device.usableRegionSizeBytes, 384 * MiB); // only UNPLUG_ALL shrinks it
  assert.equal(device.setRequestedSize(MiB)?.code, 'VIRTIO_MEM_ERR_BAD_OPTION');
});

test('request matrix: PLUG', () => {
  const { device, plug, send } = setup();
  assert.equal(plug(0, 4), 'ack');
  assert.equal(device.pluggedSizeBytes, 4 * B);
  assert.equal(send({ type: 'plug', addr: BigInt(BASE + MiB), nbBlocks: 1 }), 'error'); // unaligned
  assert.equal(plug(10, 0), 'error'); // zero blocks
  assert.equal(send({ type: 'plug', addr: BigInt(BASE - B), nbBlocks: 1 }), 'error'); // below the region
  assert.equal(plug(160, 1), 'error'); // past the usable region (320 MiB = 160 blocks)
  assert.equal(plug(159, 2), 'error'); // crossing its end
  assert.equal(send({ type: 'plug', addr: 1n << 63n, nbBlocks: 1 }), 'error'); // huge address
  assert.equal(plug(3, 2), 'error'); // partly plugged already
  assert.equal(plug(10, 28), 'ack'); // exactly up to requested (64 MiB = 32 blocks)
  assert.equal(plug(100, 1), 'nack'); // beyond requested
  assert.equal(plug(0, 1), 'nack'); // NACK is decided before the state check
  assert.equal(device.pluggedSizeBytes, 64 * MiB);
});

test('request matrix: UNPLUG discards, ERROR on unplugged blocks', () => {
  const { device, plug, unplug, discards } = setup();
  plug(0, 4);
  assert.equal(unplug(4, 1), 'error');
  assert.equal(unplug(2, 3), 'error'); // block 4 is not plugged
  assert.equal(unplug(1, 2), 'ack');
  assert.deepEqual(discards.ranges, [{ gpa: BASE + B, lengthBytes: 2 * B }]);
  assert.equal(device.pluggedSizeBytes, 2 * B);
  assert.equal(unplug(1, 1), 'error');
});

test('request matrix: BUSY while migrating; STATE still answers', () => {
  const { device, plug, unplug, state, send } = setup();
  plug(0, 2);
  device.migrationBusy = true;
  assert.equal(plug(4, 1), 'busy');
  assert.equal(unplug(0, 1), 'busy');
  assert.equal(send({ type: 'unplug-all' }), 'busy');
  assert.equal(plug(4, 100), 'nack'); // range and size checks still come first
  assert.equal(plug(0, 1), 'error');
  assert.equal(state(0, 2), 'ack:plugged');
  assert.equal(device.pluggedSizeBytes, 2 * B);
});

test('request matrix: STATE plugged / unplugged / mixed / error', () => {
  const { plug, state } = setup();
  plug(2, 2);
  assert.equal(state(2, 2), 'ack:plugged');
  assert.equal(state(4, 3), 'ack:unplugged');
  assert.equal(state(1, 2), 'ack:mixed');
  assert.equal(state(0, 0), 'error');
  assert.equal(state(159, 2), 'error');
});

test('request matrix: UNPLUG_ALL discards the region, empties the bitmap, shrinks usable', () => {
  const { device, plug, send, discards } = setup();
  device.setRequestedSize(256 * MiB);
  device.setRequestedSize(32 * MiB);
  assert.equal(device.usableRegionSizeBytes, 512 * MiB);
  plug(0, 3);
  assert.equal(send({ type: 'unplug-all' }), 'ack');
  assert.deepEqual(discards.ranges, [{ gpa: BASE, lengthBytes: GiB }]);
  assert.equal(device.pluggedSizeBytes, 0);
  assert.equal(device.usableRegionSizeBytes, 288 * MiB);
  assert.equal(send({ type: 'unplug-all' }), 'ack'); // nothing plugged: no discard
  assert.equal(discards.ranges.length, 1);
});

test('protocol violations break the device and detach the element without a response', () => {
  const cases: Array<[string, (s: ReturnType<typeof setup>) => ReturnType<VirtioMemDevice['handleRequest']>]> = [
    ['virtio-mem protocol violation: invalid request size: 24', (s) => s.device.handleRequest(s.memory, s.builder.element([new Uint8Array(20)], [s.builder.reserve(10)]))],
    ['virtio-mem protocol violation: not enough space for response: 8', (s) => s.device.handleRequest(s.memory, s.builder.element([encodeVirtioMemRequest({ type: 'unplug-all' })], [s.builder.reserve(8)]))],
    ['virtio-mem protocol violation: unknown request type: 9', (s) => s.device.handleRequest(s.memory, s.builder.element([encodeVirtioMemRequest({ type: 'unknown', code: 9 })], [s.builder.reserve(10)]))],
  ];
  for (const [message, run] of cases) {
    const s = setup();
    const effects = run(s);
    assert.equal(effects[0].kind, 'detach', message);
    assert.equal(s.device.broken?.message, message);
    assert.equal(s.device.broken?.code, 'VIRTIO_MEM_ERR_PROTOCOL');
    assert.ok(s.device.driverStatus & VIRTIO_CONFIG_S_NEEDS_RESET);
    const next = s.builder.element([encodeVirtioMemRequest({ type: 'unplug-all' })], [s.builder.reserve(10)]);
    assert.equal(s.device.handleRequest(s.memory, next)[0].kind, 'unpop');
    s.device.reset();
    assert.equal(s.device.broken, null);
  }
});

test('range views: isPlugged, pluggedRanges, unpluggedRanges over the whole region', () => {
  const { device, plug } = setup();
  plug(1, 2);
  plug(5, 1);
  assert.deepEqual(device.pluggedRanges().toArray(), [
    { start: BASE + B, end: BASE + 3 * B },
    { start: BASE + 5 * B, end: BASE + 6 * B },
  ]);
  assert.deepEqual(device.unpluggedRanges().toArray(), [
    { start: BASE, end: BASE + B },
    { start: BASE + 3 * B, end: BASE + 5 * B },
    { start: BASE + 6 * B, end: BASE + GiB },
  ]);
  assert.equal(device.isPlugged(BASE + B + 4096), true);
  assert.equal(device.isPlugged(BASE + 4096), false);
  assert.equal(device.isPlugged(0), false);
  assert.equal(device.isPlugged(BASE + GiB), false);
  assert.equal(device.unpluggedRanges().total() + device.pluggedRanges().total(), GiB);
});

test('migration state round-trips as an object and as vmsd bytes; property changes are refused', () => {
  const source = setup();
  source.plug(0, 3);
  source.plug(63, 2); // straddles a 64-bit word
  const bytes = encodeVirtioMemDevicePayload(source.device);
  assert.equal(bytes.length, 8 * 3 + 4 + 8 * 3 + 8 * Math.ceil(512 / 64));
  assert.equal(hex(bytes.subarray(52, 68)), '8000000000000007' + '0000000000000001');
  const destination = setup({ requestedSizeBytes: 0 });
  destination.device.restoreState(decodeVirtioMemDevicePayload(new ByteReader(bytes), destination.device));
  assert.deepEqual(destination.device.captureState(), source.device.captureState());
  assert.deepEqual(destination.device.unpluggedRanges().toArray(), source.device.unpluggedRanges().toArray());
  destination.device.discardUnplugged();
  assert.equal(destination.discards.ranges.reduce((n, r) => n + r.lengthBytes, 0), GiB - 5 * B);
  const other = setup({ blockSizeBytes: 4 * MiB });
  assert.throws(() => decodeVirtioMemDevicePayload(new ByteReader(bytes), other.device), {
    code: 'VIRTIO_MEM_VMSTATE_ERR_PROPERTY_CHANGED',
    message: "Property 'block-size' changed from 0x200000 to 0x400000",
  });
  assert.throws(() => decodeVirtioMemDevicePayload(new ByteReader(bytes.subarray(0, 60)), destination.device), { code: 'VIRTIO_MEM_VMSTATE_ERR_TRUNCATED' });
  const state = source.device.captureState();
  assert.throws(() => destination.device.restoreState({ ...state, pluggedSizeBytes: B }), { code: 'VIRTIO_MEM_ERR_BAD_STATE' });
});
