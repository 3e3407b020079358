/**
 * Hostile rings, one per rule, written with the driver's raw writers (as rust-vmm's
 * MockSplitQueue is used). For each: the device reports its own typed error code, no
 * exception escapes, the device writes nothing for the bad chain, DEVICE_NEEDS_RESET is set
 * and the driver is told; then the driver resets the device, sets it up again, and
 * well-formed requests (direct and indirect) are served correctly: "the device stays sane".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_DESC_F_INDIRECT as INDIRECT,
  VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE, featureSet,
} from '../../devices/virtio/constants.ts';
import { readFromSegments } from '../../devices/virtio/segments.ts';
import { type Rig, bringUp, buffer, echo, recover, replyByte } from './test-rig.ts';

const N = 8;
const BOTH = featureSet(VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX);

interface HostileCase {
  readonly name: string;
  readonly code: string;
  /** Ring features the driver negotiates (default: indirect and event idx). */
  readonly driverFeatures?: bigint;
  readonly maxChainDescriptors?: number;
  readonly maxTotalLengthBytes?: number;
  /** Writes the hostile ring through the driver's raw writers. */
  build(rig: Rig, data: number): void;
}

const cases: HostileCase[] = [
  {
    name: 'descriptor loop', code: 'VIRTIO_ERR_DESC_LOOP',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 8, flags: NEXT, next: 6 });
      r.driver.writeDescriptor(6, { addr: data, len: 8, flags: NEXT, next: 5 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'address beyond guest memory', code: 'VIRTIO_ERR_ADDR_RANGE',
    build: (r) => {
      r.driver.writeDescriptor(5, { addr: r.mem.sizeBytes - 4, len: 8, flags: WRITE, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'address near 2^64', code: 'VIRTIO_ERR_ADDR_RANGE',
    build: (r) => {
      r.driver.writeDescriptor(5, { addr: 0xfffffffffffffff0n, len: 0x20, flags: 0, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'readable after writable', code: 'VIRTIO_ERR_WRONG_DIRECTION',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 8, flags: WRITE | NEXT, next: 7 });
      r.driver.writeDescriptor(7, { addr: data + 8, len: 8, flags: 0, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'chain longer than the configured maximum', code: 'VIRTIO_ERR_CHAIN_TOO_LONG', maxChainDescriptors: 2,
    build: (r, data) => {
      for (let i = 4; i < 7; i++) r.driver.writeDescriptor(i, { addr: data, len: 8, flags: i < 6 ? NEXT : 0, next: i + 1 });
      r.driver.publishRawHead(4);
    },
  },
  {
    name: 'indirect chain longer than the queue size', code: 'VIRTIO_ERR_CHAIN_TOO_LONG',
    build: (r, data) => {
      const table = r.data.allocate(16 * (N + 1), 16);
      for (let k = 0; k <= N; k++) r.driver.ring.writeDescriptorAt(table + 16 * k, { addr: data, len: 8, flags: k < N ? NEXT : 0, next: k + 1 });
      r.driver.writeDescriptor(5, { addr: table, len: 16 * (N + 1), flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'chain larger than the configured total length', code: 'VIRTIO_ERR_CHAIN_TOO_LARGE', maxTotalLengthBytes: 100,
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 64, flags: NEXT, next: 6 });
      r.driver.writeDescriptor(6, { addr: data, len: 64, flags: WRITE, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'zero-length buffer', code: 'VIRTIO_ERR_ZERO_LENGTH',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 0, flags: WRITE, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'next index beyond the table', code: 'VIRTIO_ERR_NEXT_INDEX',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 8, flags: NEXT, next: N });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'head index beyond the queue', code: 'VIRTIO_ERR_HEAD_INDEX',
    build: (r) => r.driver.publishRawHead(N + 3),
  },
  {
    name: 'avail index jumps more than N ahead', code: 'VIRTIO_ERR_AVAIL_IDX_JUMP',
    build: (r) => r.driver.setAvailIdx(r.driver.ring.readAvailIdx() + N + 1),
  },
  {
    name: 'avail index moves backwards', code: 'VIRTIO_ERR_AVAIL_IDX_JUMP',
    build: (r) => r.driver.setAvailIdx(r.driver.ring.readAvailIdx() - 1),
  },
  {
    name: 'indirect without the feature', code: 'VIRTIO_ERR_INDIRECT_NOT_NEGOTIATED', driverFeatures: 0n,
    build: (r, data) => {
      r.driver.ring.writeDescriptorAt(data, { addr: data + 64, len: 8, flags: 0, next: 0 });
      r.driver.writeDescriptor(5, { addr: data, len: 16, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'indirect table length not a multiple of 16', code: 'VIRTIO_ERR_INDIRECT_BAD_LENGTH',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 24, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'indirect table of length 0', code: 'VIRTIO_ERR_INDIRECT_BAD_LENGTH',
    build: (r, data) => {
      r.driver.writeDescriptor(5, { addr: data, len: 0, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'nested indirect table', code: 'VIRTIO_ERR_INDIRECT_NESTED',
    build: (r, data) => {
      r.driver.ring.writeDescriptorAt(data, { addr: data + 64, len: 16, flags: INDIRECT, next: 0 });
      r.driver.writeDescriptor(5, { addr: data, len: 16, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'INDIRECT together with NEXT', code: 'VIRTIO_ERR_INDIRECT_WITH_NEXT',
    build: (r, data) => {
      r.driver.ring.writeDescriptorAt(data, { addr: data + 64, len: 8, flags: 0, next: 0 });
      r.driver.writeDescriptor(5, { addr: data, len: 16, flags: INDIRECT | NEXT, next: 6 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'INDIRECT on a non-head descriptor', code: 'VIRTIO_ERR_INDIRECT_MISPLACED',
    build: (r, data) => {
      r.driver.ring.writeDescriptorAt(data, { addr: data + 64, len: 8, flags: 0, next: 0 });
      r.driver.writeDescriptor(5, { addr: data + 32, len: 8, flags: NEXT, next: 6 });
      r.driver.writeDescriptor(6, { addr: data, len: 16, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'indirect table beyond guest memory', code: 'VIRTIO_ERR_ADDR_RANGE',
    build: (r) => {
      r.driver.writeDescriptor(5, { addr: r.mem.sizeBytes - 16, len: 32, flags: INDIRECT, next: 0 });
      r.driver.publishRawHead(5);
    },
  },
  {
    name: 'more chains in use than the queue holds', code: 'VIRTIO_ERR_QUEUE_OVERRUN',
    build: (r, data) => {
      // The device already holds one chain; N more heads follow and it takes N - 1 of them.
      for (let i = 0; i < N; i++) {
        r.driver.writeDescriptor(i, { addr: data, len: 8, flags: WRITE, next: 0 });
        r.driver.publishRawHead(i);
      }
      for (let i = 1; i < N; i++) assert.ok(r.queue.pop() !== null);
    },
  },
];

/** Sends one well-formed request with `outCount` readable and `inCount` writable buffers and serves it. */
function roundTrip(rig: Rig, token: number, outCount: number, inCount: number): void {
  const outBufs = Array.from({ length: outCount }, (_, i) => buffer(rig, 8, (k) => token + i + k));
  const inBufs = Array.from({ length: inCount }, () => buffer(rig, 12));
  assert.ok(rig.driver.add(outBufs, inBufs, token));
  const element = rig.queue.pop();
  assert.ok(element !== null, `the device did not serve: ${rig.queue.error?.message}`);
  assert.deepEqual(element.readable, outBufs);
  assert.deepEqual(element.writable, inBufs);
  const written = echo(rig, element, token);
  const used = rig.driver.getUsed();
  assert.deepEqual(used, { token, usedLengthBytes: written });
  const reply = readFromSegments(rig.mem, inBufs, written);
  reply.forEach((b, i) => assert.equal(b, replyByte(token, i)));
}

for (const c of cases) {
  test(`hostile ring: ${c.name} → ${c.code}, then the device serves again after reset`, () => {
    const rig = bringUp({
      queueSize: N, offeredFeatures: BOTH, driverFeatures: c.driverFeatures ?? BOTH,
      maxChainDescriptors: c.maxChainDescriptors, maxTotalLengthBytes: c.maxTotalLengthBytes,
    });
    roundTrip(rig, 1, 1, 1);
    const data = rig.data.allocate(256, 16);
    const before = rig.deviceMem.writes.length;

    // A request in flight when the ring breaks; driver.reset() hands it back as unused.
    const pendingBuf = buffer(rig, 4);
    assert.ok(rig.driver.add([], [pendingBuf], 2));
    const pending = rig.queue.pop();
    assert.ok(pending !== null);

    c.build(rig, data);
    const writesAfterBuild = rig.deviceMem.writes.length;
    let popped = 0;
    for (let i = 0; i < 2 * N && rig.queue.pop() !== null; i++) popped++;
    assert.equal(popped, 0, 'nothing more is served from the hostile ring');
    assert.equal(rig.queue.error?.code, c.code);
    assert.equal(rig.core.error?.code, c.code);
    assert.ok((rig.core.status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0, 'DEVICE_NEEDS_RESET is set');
    assert.equal(rig.configInterrupts, 1, 'the driver was told');
    assert.equal(rig.deviceMem.writes.length, writesAfterBuild, 'the device wrote nothing for the bad chain');
    assert.ok(before <= writesAfterBuild);
    assert.deepEqual(rig.deviceMem.outOfRange, []);
    assert.equal(rig.queue.isEmpty(), true, 'a broken queue reports nothing available');

    // The driver resets the device and sets it up again; the device serves normally.
    const lost = recover(rig);
    assert.ok(lost.includes(2), 'the request in flight at reset comes back to the driver as unused');
    assert.equal(rig.core.live, true);
    assert.equal(rig.core.broken, false);
    const requests: Array<[number, number]> = [[1, 1], [2, 3], [0, 1], [3, 0]];
    let token = 10;
    for (const [outCount, inCount] of requests) {
      if (outCount + inCount <= (c.maxChainDescriptors ?? N)) roundTrip(rig, token++, outCount, inCount);
    }
    assert.ok(token >= 12);
    assert.equal(rig.driver.numFreeDescriptors, N);
  });
}
