// The balloon driver and BalloonVirtio outside hinting: probe and negotiation (validate's
// PAGE_POISON rule, dense queue numbers, poison_val, a too-small free page queue),
// inflate/deflate towards QMP `balloon` (allocator, actual, BALLOON_CHANGE, discards, out of
// memory), statistics, the device wiring (deferred kicks, a broken device, reset) and remove.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as B from '../../devices/balloon/constants.ts';
import { PrecopyNotifyReason as R } from '../../devices/balloon/free-page-hint.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_NEEDS_RESET, hasFeature } from '../../devices/virtio/constants.ts';
import { MiB, NS_PER_MS } from '../../lib/units.ts';
import { auditBuddy } from '../allocator/audit.ts';
import { TestHost, type TestHostOptions } from './test-host.ts';
import type { VirtioPort } from './virtio-port.ts';

const PAGES_PER_MIB = 256;

function host(options: Partial<TestHostOptions> = {}) {
  const h = new TestHost({ memoryBytes: 64 * MiB, ...options });
  return { h, balloon: h.balloon!, driver: h.guest.balloon, allocator: h.guest.allocator };
}

test('probe negotiates Linux\'s features: PAGE_POISON only with page poisoning, queues dense', () => {
  const { balloon, driver } = host();
  assert.ok(driver !== null);
  for (const bit of [B.VIRTIO_BALLOON_F_STATS_VQ, B.VIRTIO_BALLOON_F_FREE_PAGE_HINT]) assert.ok(driver.has(bit));
  assert.ok(!driver.has(B.VIRTIO_BALLOON_F_PAGE_POISON), 'no poisoning in the guest: PAGE_POISON refused');
  assert.deepEqual(driver.queueIndex, { inflate: 0, deflate: 1, stats: 2, freePage: 3, reporting: -1 });
  assert.equal(balloon.device.negotiatedFeatures, balloon.core.negotiatedFeatures);
  assert.ok(balloon.device.driverStatus & VIRTIO_CONFIG_S_DRIVER_OK);

  const poisoned = host({ guest: { balloon: { pagePoisoning: 'poison', freePageReporting: true, deflateOnOom: true } }, balloon: { freePageHint: false, freePageReporting: true, deflateOnOom: true } });
  const d = poisoned.driver!;
  assert.ok(d.has(B.VIRTIO_BALLOON_F_PAGE_POISON) && d.has(B.VIRTIO_BALLOON_F_REPORTING) && d.has(B.VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
  assert.deepEqual(d.queueIndex, { inflate: 0, deflate: 1, stats: 2, freePage: -1, reporting: 3 });
  assert.equal(poisoned.balloon.device.poisonVal, 0xaaaaaaaa);
  assert.equal(host({ guest: { balloon: { pagePoisoning: 'init-on-free' } } }).balloon.device.poisonVal, 0);

  // Poisoning in the guest but no PAGE_POISON offered: REPORTING is dropped as well.
  const noPoison = host({ guest: { balloon: { pagePoisoning: 'poison', freePageReporting: true } }, balloon: { pagePoison: false, freePageReporting: true } }).driver!;
  assert.ok(!noPoison.has(B.VIRTIO_BALLOON_F_REPORTING));
});

test('a free page queue of fewer than 2 entries fails the probe and leaves the device FAILED', () => {
  const { h } = host({
    prepare: (t) => {
      const port = t.balloon!;
      const original = port.queueSizeMax.bind(port);
      port.queueSizeMax = (i: number) => (i === 3 ? 1 : original(i));
    },
  });
  assert.equal(h.guest.balloon, null);
  assert.equal(h.guest.probeErrors[0]?.code, 'DRIVER_ERR_QUEUE');
  assert.ok(h.balloon!.readStatus() & VIRTIO_CONFIG_S_FAILED);
});

test('inflate and deflate towards QMP balloon: allocator, actual and BALLOON_CHANGE follow', () => {
  const { h, balloon, driver, allocator } = host();
  const free = allocator.freePages;
  balloon.takeEvents();
  balloon.balloon(48 * MiB); // 16 MiB into the balloon.
  h.settle();
  assert.equal(driver!.numPages, 16 * PAGES_PER_MIB);
  assert.equal(allocator.freePages, free - 16 * PAGES_PER_MIB);
  assert.equal(balloon.device.actualPages, 16 * PAGES_PER_MIB);
  const changes = balloon.takeEvents().filter((e) => e.kind === 'balloon-change');
  assert.equal(changes.length, 16); // One actual write per 256-page batch.
  assert.deepEqual(changes.at(-1), { kind: 'balloon-change', actualBytes: 48 * MiB });
  assert.equal(h.discards.total(), 16 * MiB); // The host discarded every inflated page.
  for (const r of h.discards) assert.ok(h.guest.pageIsInBalloon(r.start / 4096) && !h.guest.pageIsFreeInGuest(r.start / 4096));

  balloon.balloon(56 * MiB); // Deflate by 8 MiB.
  h.settle();
  assert.equal(driver!.numPages, 8 * PAGES_PER_MIB);
  assert.equal(allocator.freePages, free - 8 * PAGES_PER_MIB);
  assert.deepEqual(balloon.takeEvents().filter((e) => e.kind === 'balloon-change').at(-1), { kind: 'balloon-change', actualBytes: 56 * MiB });
  balloon.balloon(64 * MiB);
  h.settle();
  assert.equal(allocator.freePages, free);
  assert.equal(balloon.device.actualPages, 0);
  assert.deepEqual(auditBuddy(allocator), []);
});

test('inflating past free memory takes what exists and retries 200 ms later', () => {
  const { h, balloon, driver, allocator } = host({ guest: { workload: { kind: 'hot-set', sizeBytes: 40 * MiB, rateBytesPerS: MiB } } });
  const free = allocator.freePages;
  balloon.balloon(8 * MiB); // Asks for 56 MiB; about 20 MiB is free.
  const failures = () => driver!.sizeStats().allocationFailures;
  while (failures() === 0) h.tick();
  const failedAtNs = h.nowNs;
  assert.equal(driver!.numPages, free);
  assert.equal(allocator.freePages, 0);
  assert.equal(balloon.device.actualPages, free);
  while (h.nowNs < failedAtNs + 199 * NS_PER_MS) h.tick();
  assert.equal(failures(), 1, 'no new attempt within 200 ms');
  h.tick(2 * NS_PER_MS);
  assert.equal(failures(), 2, 'the work retried after 200 ms');
  assert.ok(driver!.busy, 'the work stays queued while the target is not reached');
});

test('statistics: the device holds the buffer, a poll brings fresh numbers', () => {
  const { h, balloon, allocator } = host();
  const tag = (name: (typeof B.BALLOON_STAT_NAMES)[number]) => B.BALLOON_STAT_NAMES.indexOf(name);
  assert.equal(balloon.device.stats[tag('stat-free-memory')], BigInt(allocator.freePages * 4096));
  allocator.alloc(10);
  balloon.pollStats();
  h.tick(5 * NS_PER_MS);
  assert.equal(balloon.device.stats[tag('stat-free-memory')], BigInt(allocator.freePages * 4096));
  assert.equal(balloon.device.stats[tag('stat-total-memory')], BigInt((allocator.freePages + allocator.allocatedPages) * 4096));
  assert.equal(balloon.device.statsLastUpdateNs, 5 * NS_PER_MS);
  assert.equal(h.guest.balloon!.statsSent, 2);
});

test('deferred kicks: the device works only at the host poll', () => {
  const { h, balloon, driver } = host({ kickMode: 'deferred' });
  balloon.balloon(60 * MiB);
  h.guest.step(1);
  assert.equal(balloon.device.actualPages, 0);
  assert.ok(driver!.busy);
  h.settle();
  assert.equal(balloon.device.actualPages, 4 * PAGES_PER_MIB);
});

test('a guest protocol violation: one config interrupt, NEEDS_RESET, no further elements consumed', () => {
  const { h, balloon, driver } = host();
  const port: VirtioPort = balloon;
  const interrupts = driver!.configInterrupts;
  balloon.precopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: false });
  assert.equal(driver!.configInterrupts, interrupts + 1);
  // A rogue 2-byte command id on the free page queue, written through the raw ring.
  const q = balloon.core.queues[3];
  const ring = q.currentLayout!;
  const gpa = h.guest.kernelMemory.allocate(16, 16);
  h.guest.memory.write(gpa, new Uint8Array([1, 0]));
  const slot = q.lastAvailIdx;
  h.guest.memory.writeLe32(ring.descGpa + 16 * 5, gpa);
  h.guest.memory.writeLe32(ring.descGpa + 16 * 5 + 4, 0);
  h.guest.memory.writeLe32(ring.descGpa + 16 * 5 + 8, 2);
  h.guest.memory.writeLe16(ring.descGpa + 16 * 5 + 12, 0);
  h.guest.memory.writeLe16(ring.availGpa + 4 + 2 * (slot % ring.queueSize), 5);
  h.guest.memory.writeLe16(ring.availGpa + 2, slot + 1);
  port.notify(3, 0);
  assert.equal(balloon.device.broken?.code, 'BALLOON_ERR_BAD_CMD_ID');
  assert.ok(balloon.core.status & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.ok(balloon.core.broken);
  assert.equal(driver!.configInterrupts, interrupts + 2, 'exactly one interrupt for the error');
  // The driver's round goes nowhere: the device no longer consumes buffers.
  h.settle(20);
  assert.equal(h.hints.total(), 0);
});

test('a device reset through the status register resets the balloon device too', () => {
  const { balloon } = host();
  balloon.precopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: false });
  balloon.writeStatus(0);
  assert.equal(balloon.device.negotiatedFeatures, 0n);
  assert.equal(balloon.device.driverStatus, 0);
  assert.ok(!hasFeature(balloon.core.negotiatedFeatures, B.VIRTIO_BALLOON_F_FREE_PAGE_HINT));
});

test('remove empties the balloon, releases held hints and resets the device', () => {
  const { h, balloon, driver, allocator } = host();
  const free = allocator.freePages;
  balloon.balloon(56 * MiB);
  h.settle();
  balloon.precopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: false });
  h.settle();
  assert.ok(driver!.heldHintBlocks > 0);
  const returned = driver!.remove();
  assert.equal(returned, free);
  assert.equal(allocator.freePages, free);
  assert.equal(balloon.device.actualPages, 0);
  assert.equal(balloon.readStatus(), 0);
  assert.deepEqual(auditBuddy(allocator), []);
});
