// Free page hinting through the device: the precopy notifier sequence of §4.1, the free
// page queue (ids, stale ids, stop after start, hints only in START, short ids), the
// postcopy policies and the seed patch's refusal, and the 'track' migration hooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, featureBit } from '../virtio/constants.ts';
import { ElementBuilder, RangeRecorder, le32s } from '../test-elements.ts';
import { BalloonDevice } from './balloon-device.ts';
import type { BalloonOptions } from './balloon-types.ts';
import { HintStatus, PostcopyNotifyReason, PrecopyNotifyReason as R } from './free-page-hint.ts';
import type { FreePageHintPostcopyPolicy } from './postcopy-policy.ts';

const MiB = 1024 * 1024;
const RAM = 16 * MiB;
const RUNNING = { vmRunning: true, postcopyRam: false };
const STOPPED = { vmRunning: false, postcopyRam: false };

function setup(options: Partial<BalloonOptions> = {}) {
  const hints = new RangeRecorder();
  const memory = new BytesBacking(RAM);
  const device = new BalloonDevice({ ramSizeBytes: RAM, freePageHint: true, hintSink: hints, ...options });
  device.setNegotiatedFeatures(device.offeredFeatures | featureBit(VIRTIO_F_VERSION_1));
  device.setDriverStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  const builder = new ElementBuilder(memory, 12 * MiB);
  /** A free page queue element: optional command id, then writable hint ranges. */
  const freePage = (cmdId: number | null, ...ranges: Array<[number, number]>) =>
    device.handleFreePage(memory, builder.element(cmdId === null ? [] : [le32s(cmdId)], ranges.map(([gpa, lengthBytes]) => ({ gpa, lengthBytes }))));
  const cmdIdConfig = () => new DataView(device.readConfig().buffer).getUint32(8, true);
  return { device, memory, builder, hints, freePage, cmdIdConfig };
}

test('a successful precopy: statuses, ids, config values and interrupts at every notifier', () => {
  const { device, freePage, hints, cmdIdConfig } = setup();
  const seen: Array<[string, number, number, number]> = [];
  const note = (label: string) => seen.push([label, device.hint.status, cmdIdConfig(), device.configInterruptCount]);

  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING); note('BEFORE (setup sync)');
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); note('AFTER (setup sync)');
  device.onPrecopyNotify(R.Setup, RUNNING); note('SETUP');
  freePage(0x80000001); note('guest echoes id 1');
  freePage(null, [4 * MiB, 4 * MiB]); note('guest hints 4 MiB');
  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING); note('BEFORE 1');
  freePage(0); note('guest STOP of round 1 (stale)');
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); note('AFTER 1');
  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING); note('BEFORE 2');
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); note('AFTER 2');
  device.onPrecopyNotify(R.Complete, STOPPED); note('COMPLETE');
  device.onPrecopyNotify(R.BeforeBitmapSync, STOPPED); note('BEFORE (final)');
  device.onPrecopyNotify(R.AfterBitmapSync, STOPPED); note('AFTER (vm stopped)');
  device.onPrecopyNotify(R.Cleanup, STOPPED); note('CLEANUP');

  const { Stop, Requested, Start, Done } = HintStatus;
  assert.deepEqual(seen, [
    ['BEFORE (setup sync)', Stop, 0, 0],
    ['AFTER (setup sync)', Requested, 0x80000001, 1],
    ['SETUP', Requested, 0x80000001, 1],
    ['guest echoes id 1', Start, 0, 1],
    ['guest hints 4 MiB', Start, 0, 1],
    ['BEFORE 1', Stop, 0, 2],
    ['guest STOP of round 1 (stale)', Stop, 0, 2],
    ['AFTER 1', Requested, 0x80000002, 3],
    ['BEFORE 2', Stop, 0, 4],
    ['AFTER 2', Requested, 0x80000003, 5],
    ['COMPLETE', Requested, 0x80000003, 5],
    ['BEFORE (final)', Stop, 0, 6],
    ['AFTER (vm stopped)', Done, 1, 7],
    ['CLEANUP', Done, 1, 7],
  ]);
  assert.deepEqual(hints.ranges, [{ gpa: 4 * MiB, lengthBytes: 4 * MiB, cmdId: 0x80000001 }]);
  assert.deepEqual(device.takeEvents().map((e) => e.kind), new Array(7).fill('config-change'));
});

test('hints outside START are ignored; the element is still returned with used length 0', () => {
  const { device, freePage, hints } = setup();
  assert.deepEqual(freePage(null, [0, 4096]).map((e) => e.kind === 'push' && e.usedLengthBytes), [0]); // STOP
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  freePage(null, [4096, 4096]); // REQUESTED
  freePage(0x80000001, [8192, 4096]); // the echo starts the round: its own ranges count
  freePage(0, [12288, 4096]); // the stop ends it: its ranges do not
  device.onPrecopyNotify(R.Cleanup, STOPPED);
  freePage(null, [16384, 4096]); // DONE
  assert.deepEqual(hints.ranges, [{ gpa: 8192, lengthBytes: 4096, cmdId: 0x80000001 }]);
});

test('a stale id while REQUESTED is ignored, and a stop counts only after a start', () => {
  const { device, freePage } = setup();
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING);
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); // round 2 requested
  freePage(0x80000001); // the echo of round 1 arrives late
  assert.equal(device.hint.status, HintStatus.Requested);
  freePage(0); // the STOP of round 1 arrives late
  assert.equal(device.hint.status, HintStatus.Requested);
  freePage(0x80000002);
  assert.equal(device.hint.status, HintStatus.Start);
  freePage(0);
  assert.equal(device.hint.status, HintStatus.Stop);
});

test('design rule: hints of a stale command id are dropped; no hint of a round is applied after the BEFORE_BITMAP_SYNC that ends it', () => {
  const { device, freePage, hints } = setup();
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); // round 1 requested
  freePage(0x80000001, [4 * MiB, 4 * MiB]); // echo + first block: applied
  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING); // the sync that ends round 1
  freePage(null, [8 * MiB, 4 * MiB]); // round 1's block, popped after BEFORE: dropped
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING); // round 2 requested
  freePage(null, [9 * MiB, 1 * MiB]); // still round 1's (queue order): dropped
  freePage(0x80000001, [10 * MiB, 1 * MiB]); // round 1's id again, with a range: dropped
  freePage(0x80000002, [11 * MiB, 1 * MiB]); // round 2 starts: applied, tagged with its id
  assert.deepEqual(hints.ranges, [
    { gpa: 4 * MiB, lengthBytes: 4 * MiB, cmdId: 0x80000001 },
    { gpa: 11 * MiB, lengthBytes: 1 * MiB, cmdId: 0x80000002 },
  ]);
});

test('a command id shorter than 4 bytes breaks the device; later elements are not consumed', () => {
  const { device, memory, builder, cmdIdConfig } = setup();
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  const before = device.configInterruptCount;
  const element = builder.element([new Uint8Array([1, 0])]);
  assert.deepEqual(device.handleFreePage(memory, element), [{ kind: 'push', element, usedLengthBytes: 0 }]);
  assert.equal(device.broken?.code, 'BALLOON_ERR_BAD_CMD_ID');
  assert.equal(device.broken?.message, 'received an incorrect cmd id');
  assert.ok(device.driverStatus & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.equal(device.configInterruptCount, before + 1);
  const next = builder.element([le32s(0x80000001)]);
  assert.deepEqual(device.handleFreePage(memory, next), [{ kind: 'unpop', element: next }]);
  assert.equal(cmdIdConfig(), 0x80000001);
  device.reset();
  assert.equal(device.broken, null);
});

test('an unknown notifier reason breaks the device with QEMU\'s message', () => {
  const { device } = setup();
  device.onPrecopyNotify(7, RUNNING);
  assert.equal(device.broken?.code, 'BALLOON_ERR_UNKNOWN_REASON');
  assert.equal(device.broken?.message, 'virtio_balloon_free_page_hint_notify: 7 reason unknown');
});

test('without FREE_PAGE_HINT negotiated the notifier does nothing', () => {
  const { device } = setup();
  device.setNegotiatedFeatures(featureBit(VIRTIO_F_VERSION_1));
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  device.onPrecopyNotify(99, RUNNING);
  assert.equal(device.hint.status, HintStatus.Stop);
  assert.equal(device.broken, null);
  assert.equal(device.configInterruptCount, 0);
});

test('postcopy-ram on: overrule and refuse do nothing; legacy, ignore-after-switch and track hint', () => {
  const postcopy = { vmRunning: true, postcopyRam: true };
  const expected: Record<FreePageHintPostcopyPolicy, HintStatus> = {
    refuse: HintStatus.Stop,
    overrule: HintStatus.Stop,
    legacy: HintStatus.Requested,
    'ignore-after-switch': HintStatus.Requested,
    track: HintStatus.Requested,
  };
  for (const [policy, status] of Object.entries(expected) as Array<[FreePageHintPostcopyPolicy, HintStatus]>) {
    const { device } = setup({ freePageHintPostcopy: policy });
    device.onPrecopyNotify(R.BeforeBitmapSync, postcopy);
    device.onPrecopyNotify(R.AfterBitmapSync, postcopy);
    device.onPrecopyNotify(9, postcopy); // even an unknown reason is not looked at when skipped
    assert.equal(device.hint.status, status, policy);
    assert.equal(device.broken !== null, status !== HintStatus.Stop, policy);
    // The same device with postcopy-ram off hints normally whatever the policy.
    const fresh = setup({ freePageHintPostcopy: policy }).device;
    fresh.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
    assert.equal(fresh.hint.status, HintStatus.Requested, policy);
  }
});

test('refuse vetoes the destination postcopy notifier with the seed patch\'s exact string', () => {
  const { device } = setup();
  assert.equal(device.freePageHintPostcopy, 'refuse');
  const error = device.onPostcopyNotify(PostcopyNotifyReason.Probe);
  assert.equal(error?.message, "virtio-balloon: 'free-page-hint' does not support postcopy");
  assert.equal(error?.code, 'BALLOON_ERR_POSTCOPY_REFUSED');
  for (const policy of ['overrule', 'legacy', 'ignore-after-switch', 'track'] as const) {
    assert.equal(setup({ freePageHintPostcopy: policy }).device.onPostcopyNotify(PostcopyNotifyReason.Probe), null, policy);
  }
  assert.equal(setup({ freePageHint: false }).device.onPostcopyNotify(PostcopyNotifyReason.Probe), null);
});

test('free page polling stays active only while START', () => {
  const { device, freePage } = setup();
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  assert.equal(device.freePagePollingActive(), false);
  freePage(0x80000001);
  assert.equal(device.freePagePollingActive(), true);
  device.onPrecopyNotify(R.BeforeBitmapSync, RUNNING);
  assert.equal(device.freePagePollingActive(), false);
});

test('reset stops hinting without an interrupt (status is 0 first) and clears features', () => {
  const { device, freePage } = setup();
  device.onPrecopyNotify(R.AfterBitmapSync, RUNNING);
  freePage(0x80000001);
  const interrupts = device.configInterruptCount;
  device.reset();
  assert.equal(device.hint.status, HintStatus.Stop);
  assert.equal(device.hint.cmdId, 0x80000001);
  assert.equal(device.configInterruptCount, interrupts);
  assert.equal(device.negotiatedFeatures, 0n);
});

test('track: preSave sets DONE mid-round and postLoad raises a config interrupt for it', () => {
  const { device, freePage } = setup({ freePageHintPostcopy: 'track' });
  device.onPrecopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: true });
  freePage(0x80000001);
  device.preSave();
  assert.equal(device.hint.status, HintStatus.Done);
  const destination = setup({ freePageHintPostcopy: 'track' }).device;
  destination.restoreFields(device.captureFields());
  destination.postLoad();
  assert.equal(destination.configInterruptCount, 1);
  assert.equal(new DataView(destination.readConfig().buffer).getUint32(8, true), 1);
  // Other policies leave the round as it was: the 2021 bug 1.
  const legacy = setup({ freePageHintPostcopy: 'legacy' });
  legacy.device.onPrecopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: true });
  legacy.freePage(0x80000001);
  legacy.device.preSave();
  assert.equal(legacy.device.hint.status, HintStatus.Start);
});
