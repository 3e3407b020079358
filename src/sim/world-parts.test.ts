// Tests of the world's parts: the device section decoder measures a balloon section exactly
// (a short read for every cut before its end), the audited store reports reads, writes and
// zeroings and keeps the compact fast path, the hooked backing follows a retarget and reports
// page spans, the memory audit allows only pages hinted and free at the switch, and the
// switchable port moves the driver's interrupts to the new device.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BalloonDevice } from '../devices/balloon/balloon-device.ts';
import { saveBalloonState } from '../devices/balloon/balloon-vmstate.ts';
import { encodeVirtioBalloonSection } from '../devices/balloon/virtio-section.ts';
import { VIRTIO_BALLOON_F_FREE_PAGE_HINT, VIRTIO_BALLOON_F_PAGE_POISON } from '../devices/balloon/constants.ts';
import { VIRTIO_F_VERSION_1, featureBit } from '../devices/virtio/constants.ts';
import { ByteReader, ShortReadError } from '../lib/bytes.ts';
import { RangeTable } from '../lib/range-table.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { CompactBacking } from '../memory/compact-backing.ts';
import { transferPage } from '../memory/page-store.ts';
import type { DriverInterrupts, VirtioPort } from '../guest/drivers/virtio-port.ts';
import { AuditedPageStore } from './audited-store.ts';
import { measureBalloonSection } from './device-sections.ts';
import { HookedBacking } from './hooked-backing.ts';
import { MemoryAudit } from './memory-audit.ts';
import { SwitchablePort } from './switchable-port.ts';

test('a balloon section is measured exactly; every shorter cut is a short read', () => {
  const device = new BalloonDevice({ ramSizeBytes: 1 << 24, freePageHint: true });
  device.setNegotiatedFeatures(featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_BALLOON_F_FREE_PAGE_HINT) | featureBit(VIRTIO_BALLOON_F_PAGE_POISON));
  const state = saveBalloonState(device, device.queues.map((_, i) => i + 7));
  const payload = encodeVirtioBalloonSection(device, state, { status: 15, isr: 0, queueSel: 0, descGpa: device.queues.map(() => 0x1000) });
  const stream = new Uint8Array(payload.length + 1);
  stream.set(payload);
  stream[payload.length] = 0x7e; // the section footer follows
  const reader = new ByteReader(stream);
  measureBalloonSection(reader);
  assert.equal(reader.pos, payload.length);
  for (let cut = 0; cut < payload.length; cut++) {
    assert.throws(() => measureBalloonSection(new ByteReader(stream, 0, cut)), ShortReadError, `cut at ${cut}`);
  }
});

test('the audited store reports accesses and keeps the compact fast path', () => {
  const inner = new CompactBacking(16);
  const store = new AuditedPageStore(inner);
  const log: string[] = [];
  store.onRead = (p) => log.push(`r${p}`);
  store.onWrite = (p) => log.push(`w${p}`);
  store.onZero = (p) => log.push(`z${p}`);
  assert.equal(store.kind, 'compact');
  store.setVersion(3, 9);
  assert.equal(store.pageVersion(3), 9);
  store.zeroPage(4);
  assert.equal(store.isZeroPage(4), true);
  const target = new CompactBacking(16);
  transferPage(store, target, 3, new Uint8Array(4096));
  assert.equal(target.pageVersion(3), 9);
  assert.deepEqual(log, ['w3', 'r3', 'z4', 'r4', 'r3']);
  const bytes = new AuditedPageStore(new BytesBacking(4 * 4096));
  assert.equal(bytes.kind, 'bytes');
  assert.throws(() => bytes.pageVersion(0), /not a compact store/);
});

test('the hooked backing follows a retarget and reports the pages an access spans', () => {
  const a = new BytesBacking(4 * 4096);
  const b = new BytesBacking(4 * 4096);
  const memory = new HookedBacking(a);
  const spans: string[] = [];
  memory.beforeAccess = (first, last, write) => spans.push(`${write ? 'w' : 'r'}${first}-${last}`);
  memory.writeLe32(4094, 0x01020304); // crosses from page 0 into page 1
  memory.retarget(b);
  memory.writeU8(3 * 4096, 7);
  assert.equal(a.readLe32(4094), 0x01020304);
  assert.equal(b.readU8(3 * 4096), 7);
  assert.equal(memory.readU8(3 * 4096), 7);
  assert.deepEqual(spans, ['w0-1', 'w3-3', 'r3-3']);
  assert.throws(() => memory.retarget(new BytesBacking(4096)), /retarget/);
});

test('the memory audit allows pages hinted and free at the switch, and unplugged ones', () => {
  const audit = new MemoryAudit(64);
  audit.setUnplugged(RangeTable.of([{ start: 60, end: 64 }]));
  audit.onHint(8, 8);
  audit.snapshotAtSwitch((p) => p !== 9); // page 9 was given back and reused before the switch
  assert.equal(audit.hintedPageCount(), 8);
  assert.ok(audit.allowedToDiffer.has(8));
  assert.ok(!audit.allowedToDiffer.has(9));
  assert.ok(!audit.allowedToDiffer.has(20));
  assert.ok(audit.allowedToDiffer.has(61));
  const source = new BytesBacking(64 * 4096);
  const destination = new BytesBacking(64 * 4096);
  source.writeU8(5 * 4096, 1);
  audit.startDestinationAudit(source, destination);
  audit.beforeDestinationWrite(4, 5);
  audit.beforeDestinationWrite(5, 5); // only the first write of a page is audited
  assert.ok(audit.firstWriteMismatch!.test(5));
  assert.ok(!audit.firstWriteMismatch!.test(4));
  audit.onGuestAccess(59, 61);
  assert.equal(audit.guestUnpluggedAccesses.count, 2);
});

test('the memory audit allows hinted pages the guest freed after their last write', () => {
  const audit = new MemoryAudit(64);
  audit.startSourceAudit((visit) => visit(16, 8)); // pages 16..23 are free when migration starts
  audit.onSourceWrite(30, 31); // page 30 is written ...
  audit.onGuestFree(30, 2); // ... and freed: its content is given up
  audit.onHint(16, 16);
  audit.onSourceWrite(18, 18); // the shrinker gave the block back and the guest wrote page 18
  audit.snapshotAtSwitch(() => false); // every hinted page is allocated again at the switch
  assert.ok(audit.allowedToDiffer.has(16), 'allocated but never written since it was free');
  assert.ok(!audit.allowedToDiffer.has(18), 'written after it was free: must arrive');
  assert.ok(audit.hintedFreeAtSwitch(30));
  assert.ok(!audit.hintedFreeAtSwitch(24), 'hinted while in use and never freed');
});

test('the switchable port moves the driver and its interrupts to the new device', () => {
  const connected: Array<[string, DriverInterrupts | null]> = [];
  const fake = (name: string): VirtioPort => ({
    readDeviceFeatures: () => 0n,
    writeDriverFeatures: () => null,
    readStatus: () => (name === 'a' ? 1 : 2),
    writeStatus: () => null,
    queueSizeMax: () => 0,
    configureQueue: () => null,
    readConfig: () => 0,
    writeConfig: () => {},
    notify: () => {},
    connectDriver: (interrupts) => connected.push([name, interrupts]),
  });
  const driver: DriverInterrupts = { onConfigChange: () => {}, onQueueInterrupt: () => {} };
  const port = new SwitchablePort(fake('a'));
  port.connectDriver(driver);
  assert.equal(port.readStatus(), 1);
  port.switchTo(fake('b'));
  assert.equal(port.readStatus(), 2);
  assert.deepEqual(connected, [['a', driver], ['a', null], ['b', driver]]);
});
