/**
 * Driver ↔ device round trip, property-tested: random sequences of add / pop / push /
 * getUsed / kick / needsNotify over rings the driver laid out, with mixed readable and
 * writable segments, indirect tables on and off, EVENT_IDX on and off. Checked against a
 * model: the device sees exactly the chains the driver added, in order and with the
 * driver's bytes; the driver gets tokens back in the order the device used them, with the
 * device's bytes intact; free-descriptor accounting matches; kicks and interrupts are
 * never missed (and, with EVENT_IDX, suppressed exactly when the other side is busy); and
 * the device writes nothing but the used ring and the writable buffers it was lent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, featureSet, vringNeedEvent } from '../../devices/virtio/constants.ts';
import type { Segment } from '../../devices/virtio/descriptor-chain.ts';
import { usedRingSizeBytes } from '../../devices/virtio/ring-layout.ts';
import { readFromSegments } from '../../devices/virtio/segments.ts';
import type { SplitQueueElement } from '../../devices/virtio/split-queue.ts';
import { insideAny, type AccessRecord } from '../../devices/virtio/test-memory.ts';
import { bringUp, buffer, echo, replyByte } from './test-rig.ts';

type Op =
  | { kind: 'add'; outLens: number[]; inLens: number[] }
  | { kind: 'pop' }
  | { kind: 'push'; pick: number; fraction: number }
  | { kind: 'get' }
  | { kind: 'kick' }
  | { kind: 'notify' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), outLens: fc.array(fc.integer({ min: 1, max: 48 }), { maxLength: 3 }), inLens: fc.array(fc.integer({ min: 1, max: 48 }), { maxLength: 3 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'pop' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('push' as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'get' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'kick' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'notify' as const }) },
);

const outByte = (token: number, i: number): number => (token * 31 + i * 7 + 1) & 0xff;

interface Added {
  token: number;
  outBufs: Segment[];
  inBufs: Segment[];
  descsUsed: number;
}

function run(queueSizeLog2: number, indirect: boolean, eventIdx: boolean, ops: Op[]): void {
  const ringFeatures = (indirect ? featureSet(VIRTIO_RING_F_INDIRECT_DESC) : 0n) | (eventIdx ? featureSet(VIRTIO_RING_F_EVENT_IDX) : 0n);
  const queueSize = 1 << queueSizeLog2;
  const rig = bringUp({ queueSize, offeredFeatures: featureSet(VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX), driverFeatures: ringFeatures });
  const { driver, queue } = rig;
  const allowedWrites: AccessRecord[] = [{ gpa: driver.layout.usedGpa, lengthBytes: usedRingSizeBytes(queueSize) }];
  rig.deviceMem.clear();

  const byToken = new Map<number, Added>();
  const availOrder: number[] = [];
  const held: Array<{ element: SplitQueueElement; token: number }> = [];
  const usedOrder: Array<{ token: number; written: number }> = [];
  let nextToken = 1;
  let freeModel = queueSize;
  let publishedIdx = 0;
  let kickedIdx = 0;
  let pushedIdx = 0;
  let consumedIdx = 0;
  let signalledIdx: number | null = null;

  const pop = (): void => {
    const element = queue.pop();
    if (availOrder.length === 0) {
      assert.equal(element, null);
      return;
    }
    assert.ok(element !== null, `pop failed: ${queue.error?.message}`);
    const token = availOrder.shift()!;
    const added = byToken.get(token)!;
    assert.deepEqual(element.readable, added.outBufs);
    assert.deepEqual(element.writable, added.inBufs);
    assert.equal(element.indirect, added.descsUsed === 1 && added.outBufs.length + added.inBufs.length > 1);
    const seen = readFromSegments(rig.deviceMem, element.readable, element.readableLengthBytes);
    seen.forEach((b, i) => assert.equal(b, outByte(token, i)));
    allowedWrites.push(...element.writable);
    held.push({ element, token });
  };
  const push = (pick: number, fraction: number): void => {
    if (held.length === 0) return;
    const [{ element, token }] = held.splice(pick % held.length, 1);
    const written = echo(rig, element, token, Math.floor(fraction * element.writableLengthBytes));
    usedOrder.push({ token, written });
    pushedIdx = (pushedIdx + 1) & 0xffff;
  };
  const get = (): void => {
    const used = driver.getUsed();
    const expected = usedOrder.shift();
    if (expected === undefined) {
      assert.equal(used, null);
      return;
    }
    assert.ok(used !== null, `getUsed failed: ${driver.error?.message}`);
    assert.equal(used.token, expected.token, 'tokens come back in the order used');
    assert.equal(used.usedLengthBytes, expected.written);
    const added = byToken.get(used.token)!;
    const reply = readFromSegments(rig.mem, added.inBufs, used.usedLengthBytes);
    reply.forEach((b, i) => assert.equal(b, replyByte(used.token, i)));
    freeModel += added.descsUsed;
    byToken.delete(used.token);
    consumedIdx = (consumedIdx + 1) & 0xffff;
  };

  for (const op of ops) {
    switch (op.kind) {
      case 'add': {
        const outLens = op.outLens.length + op.inLens.length === 0 ? [1] : op.outLens;
        const total = outLens.length + op.inLens.length;
        const token = nextToken++;
        let k = 0;
        const outBufs = outLens.map((len) => buffer(rig, len, () => outByte(token, k++)));
        const inBufs = op.inLens.map((len) => buffer(rig, len));
        const descsUsed = indirect && total > 1 ? 1 : total;
        if (total > queueSize) break; // Never fits (the spec caps chains at N); the driver asserts on it.
        const ok = driver.add(outBufs, inBufs, token);
        assert.equal(ok, descsUsed <= freeModel);
        if (!ok) break;
        freeModel -= descsUsed;
        byToken.set(token, { token, outBufs, inBufs, descsUsed });
        availOrder.push(token);
        publishedIdx = (publishedIdx + 1) & 0xffff;
        break;
      }
      case 'pop': pop(); break;
      case 'push': push(op.pick, op.fraction); break;
      case 'get': get(); break;
      case 'kick': {
        // The device publishes lastAvailIdx as avail_event on every pop; kick iff it lies in the batch.
        const expected = eventIdx ? vringNeedEvent(queue.lastAvailIdx, publishedIdx, kickedIdx) : true;
        assert.equal(driver.kick(), expected);
        if (eventIdx && queue.lastAvailIdx === kickedIdx && publishedIdx !== kickedIdx) assert.ok(expected, 'an idle device is always kicked');
        kickedIdx = publishedIdx;
        break;
      }
      case 'notify': {
        // The driver publishes its consumed index as used_event; notify iff it lies in the new pushes.
        const expected: boolean = !eventIdx || signalledIdx === null || vringNeedEvent(consumedIdx, pushedIdx, signalledIdx);
        assert.equal(queue.needsNotify(), expected);
        if (eventIdx) signalledIdx = pushedIdx;
        break;
      }
    }
    assert.equal(driver.numFreeDescriptors, freeModel);
  }

  // Drain: everything added comes back exactly once.
  while (availOrder.length > 0) pop();
  while (held.length > 0) push(0, 1);
  while (usedOrder.length > 0) get();
  assert.equal(driver.getUsed(), null);
  assert.equal(byToken.size, 0);
  assert.equal(driver.numFreeDescriptors, queueSize);
  assert.equal(queue.inUseCount, 0);
  assert.equal(queue.broken, false);
  for (const w of rig.deviceMem.writes) {
    assert.ok(insideAny(w.gpa, w.lengthBytes, allowedWrites), `device wrote 0x${w.gpa.toString(16)} outside the used ring and lent buffers`);
  }
}

test('driver-laid rings are consumed correctly by the device (random op sequences)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 5 }), fc.boolean(), fc.boolean(), fc.array(opArb, { minLength: 10, maxLength: 100, size: 'max' }), run),
    { numRuns: 300 },
  );
});

test('a long run wraps the 16-bit indices', () => {
  const rig = bringUp({ queueSize: 4, offeredFeatures: featureSet(VIRTIO_RING_F_EVENT_IDX), driverFeatures: featureSet(VIRTIO_RING_F_EVENT_IDX) });
  rig.deviceMem.recording = false;
  // One buffer reused for every request keeps the data window small.
  const inBuf = buffer(rig, 4);
  for (let i = 0; i < 70_000; i++) {
    assert.ok(rig.driver.add([], [inBuf], i));
    assert.equal(rig.driver.kick(), true, 'the device was idle');
    const element = rig.queue.pop();
    assert.ok(element !== null);
    echo(rig, element, i);
    assert.equal(rig.queue.needsNotify(), true, 'the driver was idle');
    const used = rig.driver.getUsed();
    assert.equal(used?.token, i);
  }
  assert.equal(rig.queue.lastAvailIdx, 70_000 & 0xffff);
  assert.equal(rig.driver.numFreeDescriptors, 4);
});
