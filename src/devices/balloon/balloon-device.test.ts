// The balloon outside hinting: identity and features, queue numbering, config space bytes
// and driver writes, QMP balloon clamping, inflate/deflate, stats, free page reporting with
// and without poison, and buffers outside guest memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex } from '../../lib/bytes.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_F_VERSION_1, featureBit } from '../virtio/constants.ts';
import { ElementBuilder, RangeRecorder, le32s } from '../test-elements.ts';
import { BalloonDevice } from './balloon-device.ts';
import type { BalloonOptions } from './balloon-types.ts';
import { BALLOON_STAT_UNSET, VIRTIO_BALLOON_F_PAGE_POISON } from './constants.ts';

const MiB = 1024 * 1024;
const RAM = 16 * MiB;

function setup(options: Partial<BalloonOptions> = {}, negotiate = true) {
  const discards = new RangeRecorder();
  const memory = new BytesBacking(RAM);
  const device = new BalloonDevice({ ramSizeBytes: RAM, discardSink: discards, ...options });
  if (negotiate) device.setNegotiatedFeatures(device.offeredFeatures | featureBit(VIRTIO_F_VERSION_1));
  device.setDriverStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  return { device, memory, discards, builder: new ElementBuilder(memory, 12 * MiB) };
}

test('features: STATS_VQ always, page-poison on by default, the others by property', () => {
  assert.equal(setup().device.offeredFeatures, 0b010010n);
  assert.equal(setup({ pagePoison: false }).device.offeredFeatures, 0b000010n);
  const all = setup({ freePageHint: true, freePageReporting: true, deflateOnOom: true }).device;
  assert.equal(all.offeredFeatures, 0b111110n);
});

test('config size: 16 with page-poison or qemu-4-0-config-size, 12 with only hinting, else 8', () => {
  assert.equal(setup().device.configSizeBytes, 16);
  assert.equal(setup({ pagePoison: false, freePageHint: true }).device.configSizeBytes, 12);
  assert.equal(setup({ pagePoison: false }).device.configSizeBytes, 8);
  assert.equal(setup({ pagePoison: false, qemu40ConfigSize: true }).device.configSizeBytes, 16);
});

test('queues are numbered densely with QEMU\'s sizes', () => {
  const layout = (o: Partial<BalloonOptions>) => setup(o).device.queues.map((q) => `${q.index}:${q.name}:${q.sizeEntries}`);
  assert.deepEqual(layout({}), ['0:inflate:128', '1:deflate:128', '2:stats:128']);
  assert.deepEqual(layout({ freePageHint: true }), ['0:inflate:128', '1:deflate:128', '2:stats:128', '3:free-page:1024']);
  assert.deepEqual(layout({ freePageReporting: true }), ['0:inflate:128', '1:deflate:128', '2:stats:128', '3:reporting:32']);
  assert.deepEqual(layout({ freePageHint: true, freePageReporting: true }).slice(3), ['3:free-page:1024', '4:reporting:32']);
  assert.equal(setup().device.queueIndex('free-page'), null);
});

test('config space is little-endian: num_pages, actual, cmd id, poison_val', () => {
  const { device } = setup({ freePageHint: true });
  device.numPages = 0x01020304;
  device.actualPages = 0x0a0b0c0d;
  device.poisonVal = 0xaabbccdd;
  assert.equal(hex(device.readConfig()), '04030201' + '0d0c0b0a' + '00000000' + 'ddccbbaa');
  const small = setup({ pagePoison: false }).device;
  small.numPages = 5;
  assert.equal(hex(small.readConfig()), '05000000' + '00000000');
});

test('a driver write of actual emits BALLOON_CHANGE with ram − actual × 4 KiB, once per change', () => {
  const { device } = setup();
  device.readConfig();
  device.writeConfig(4, le32s(256));
  assert.equal(device.actualPages, 256);
  assert.deepEqual(device.takeEvents(), [{ kind: 'balloon-change', actualBytes: RAM - MiB }]);
  device.writeConfig(4, le32s(256));
  assert.deepEqual(device.takeEvents(), []);
  assert.equal(device.actualBytes(), RAM - MiB);
  device.writeConfig(14, new Uint8Array(4)); // runs past the 16-byte config: ignored
  assert.equal(device.actualPages, 256);
});

test('poison_val is stored only with PAGE_POISON negotiated', () => {
  const { device } = setup();
  device.readConfig();
  device.writeConfig(12, le32s(0xaaaaaaaa));
  assert.equal(device.poisonVal, 0xaaaaaaaa);
  const other = setup();
  other.device.setNegotiatedFeatures(other.device.offeredFeatures & ~featureBit(VIRTIO_BALLOON_F_PAGE_POISON));
  other.device.writeConfig(12, le32s(0xaaaaaaaa));
  assert.equal(other.device.poisonVal, 0);
  device.reset();
  assert.equal(device.poisonVal, 0);
});

test('QMP balloon: num_pages = (ram − target) / 4 KiB, target clamped to RAM, config interrupt', () => {
  const { device } = setup();
  device.balloon(12 * MiB);
  assert.equal(device.numPages, 1024);
  assert.equal(device.configInterruptCount, 1);
  device.balloon(64 * MiB);
  assert.equal(device.numPages, 0);
  device.balloon(0);
  assert.equal(device.configInterruptCount, 2);
  device.balloon(12 * MiB + 100);
  assert.equal(device.numPages, 1023); // rounded down
  const silent = setup().device;
  silent.setDriverStatus(0);
  silent.balloon(8 * MiB);
  assert.equal(silent.configInterruptCount, 0); // no interrupt before DRIVER_OK
  assert.equal(silent.numPages, 2048);
});

test('inflate discards each RAM PFN; non-RAM PFNs and a trailing fragment are skipped', () => {
  const { device, memory, discards, builder } = setup();
  const pfns = le32s(1, 0x10, RAM / 4096, 0xffffffff);
  const element = builder.element([pfns.subarray(0, 6), pfns.subarray(6), new Uint8Array([7, 7])]);
  assert.deepEqual(device.handleInflate(memory, element), [{ kind: 'push', element, usedLengthBytes: 0 }]);
  assert.deepEqual(discards.ranges, [{ gpa: 4096, lengthBytes: 4096 }, { gpa: 0x10000, lengthBytes: 4096 }]);
});

test('inflate with discards inhibited and deflate discard nothing but return the buffer', () => {
  const { device, memory, discards, builder } = setup();
  device.discardInhibited = true;
  const a = builder.element([le32s(1, 2)]);
  assert.deepEqual(device.handleInflate(memory, a), [{ kind: 'push', element: a, usedLengthBytes: 0 }]);
  device.discardInhibited = false;
  const b = builder.element([le32s(1, 2)]);
  assert.deepEqual(device.handleDeflate(memory, b), [{ kind: 'push', element: b, usedLengthBytes: 0 }]);
  assert.deepEqual(discards.ranges, []);
});

test('stats: entries stored by tag, the element held, the previous one returned, poll returns it', () => {
  const { device, memory, builder } = setup();
  const entry = (tag: number, value: bigint) => {
    const b = new Uint8Array(10);
    new DataView(b.buffer).setUint16(0, tag, true);
    new DataView(b.buffer).setBigUint64(2, value, true);
    return b;
  };
  const first = builder.element([entry(4, 123456789n), entry(5, 0xfedcba9876543210n), entry(42, 1n), new Uint8Array(3)]);
  assert.deepEqual(device.handleStats(memory, first, 1_000), [{ kind: 'hold', element: first }]);
  assert.equal(device.stats[4], 123456789n);
  assert.equal(device.stats[5], 0xfedcba9876543210n);
  assert.equal(device.stats[0], BALLOON_STAT_UNSET);
  assert.equal(device.statsLastUpdateNs, 1_000);
  const second = builder.element([entry(0, 7n)]);
  assert.deepEqual(device.handleStats(memory, second, 2_000), [
    { kind: 'push', element: first, usedLengthBytes: 0 },
    { kind: 'hold', element: second },
  ]);
  assert.equal(device.stats[4], BALLOON_STAT_UNSET); // stale values are reset
  assert.equal(device.stats[0], 7n);
  assert.deepEqual(device.pollStats(), { kind: 'push', element: second, usedLengthBytes: 0 });
  assert.equal(device.pollStats(), null);
  const third = builder.element([entry(1, 1n)]);
  device.handleStats(memory, third, 3_000);
  assert.deepEqual(device.reset(), [{ kind: 'unpop', element: third }]);
});

test('reporting without poison discards aligned in-RAM ranges and returns the buffer with 0', () => {
  const { device, memory, discards, builder } = setup({ freePageReporting: true });
  const element = builder.element([], [
    { gpa: 2 * MiB, lengthBytes: 2 * MiB },
    { gpa: 4096 + 512, lengthBytes: 4096 }, // unaligned start
    { gpa: 8192, lengthBytes: 1000 }, // unaligned length
    { gpa: RAM - 4096, lengthBytes: 8192 }, // overruns RAM
    { gpa: 4 * MiB, lengthBytes: 4096 },
  ]);
  assert.deepEqual(device.handleReporting(memory, element), [{ kind: 'push', element, usedLengthBytes: 0 }]);
  assert.deepEqual(discards.ranges, [{ gpa: 2 * MiB, lengthBytes: 2 * MiB }, { gpa: 4 * MiB, lengthBytes: 4096 }]);
});

test('reporting with a non-zero poison_val or with discards inhibited discards nothing', () => {
  const { device, memory, discards, builder } = setup({ freePageReporting: true });
  device.writeConfig(12, le32s(0xaa));
  const element = builder.element([], [{ gpa: 2 * MiB, lengthBytes: 2 * MiB }]);
  assert.deepEqual(device.handleReporting(memory, element), [{ kind: 'push', element, usedLengthBytes: 0 }]);
  device.writeConfig(12, le32s(0));
  device.discardInhibited = true;
  device.handleReporting(memory, element);
  assert.deepEqual(discards.ranges, []);
  device.discardInhibited = false;
  device.handleReporting(memory, element); // poison negotiated but zero: discards
  assert.deepEqual(discards.ranges, [{ gpa: 2 * MiB, lengthBytes: 2 * MiB }]);
});

test('a buffer outside guest memory breaks the device and detaches the element', () => {
  const { device, memory } = setup();
  const element = { head: 3, readable: [{ gpa: RAM - 2, lengthBytes: 8 }], writable: [] };
  assert.deepEqual(device.handleInflate(memory, element), [{ kind: 'detach', element }]);
  assert.equal(device.broken?.code, 'BALLOON_ERR_BAD_BUFFER');
});

test('a RAM size that is not whole 4 KiB pages is refused', () => {
  assert.throws(() => new BalloonDevice({ ramSizeBytes: 4097 }), { code: 'BALLOON_ERR_BAD_OPTION' });
});
