// livemig → livemig with a virtio-mem device in real mode. The guest model's virtio-mem driver
// runs on the source's main thread and plugs blocks up to requested-size (half the region).
// The test then writes a page-stamped pattern into every page of the region, plugged or not
// (QEMU lets the device, not the guest, change unplugged memory; here the stamps stand for
// content that must not travel), and migrates:
// (1) precopy: no unplugged page is sent (the destination never received one and they stay
//     zero there), every plugged page equals the source's, the device state (plugged bitmap,
//     requested and plugged size) arrived, and the incrementer oracle passes;
// (2) postcopy: unplugged pages the destination touches are placed as local zero pages, never
//     requested from the source;
// (3) a new requested-size (what QMP qom-set does) is plugged by the driver, and bad sizes are
//     refused with QEMU 7.2's qom-set texts;
// (4) a destination with another block-size refuses the device section with QEMU's text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { RangeTable } from '../lib/range-table.ts';
import type { LivemigVm } from './vm.ts';
import { compareRam, oracleChecks, startVm, waitFor } from './vm.test-util.ts';

const MiB = 1024 * 1024;
const BOOT_BYTES = 128 * MiB;
const REGION_BYTES = 256 * MiB;
const REQUESTED_BYTES = 128 * MiB;
const GUEST = ['-m', '128M,maxmem=1G', '--vcpus', '1', '--workload', 'incrementer:16M:8M', '--seed', '5', '-object', 'memory-backend-ram,id=mem1,size=256M'];
const vmem = (extra = ''): string[] => ['-device', `virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=128M${extra}`];
const DEST = ['-S', '-incoming', 'tcp:127.0.0.1:0'];

/** Waits for the driver to plug requested-size, then stamps every region page with its index. */
async function plugAndStamp(vm: LivemigVm): Promise<{ plugged: RangeTable; unplugged: RangeTable }> {
  const device = vm.machine.devices.virtioMem!.device;
  await waitFor(() => device.pluggedSizeBytes === REQUESTED_BYTES, 10_000, 'the driver to plug requested-size');
  // Through the dirty-logged memory, as a guest or device write: the migration must see it.
  const memory = vm.machine.memory;
  const stamp = new Uint8Array(4);
  const view = new DataView(stamp.buffer);
  for (let page = BOOT_BYTES / TARGET_PAGE_SIZE; page < vm.machine.backing.pageCount; page++) {
    view.setUint32(0, page ^ 0x5a5a0000, true);
    memory.write(page * TARGET_PAGE_SIZE, stamp);
  }
  const pages = (bytes: RangeTable): RangeTable => {
    const out = new RangeTable();
    for (const r of bytes) out.add(r.start / TARGET_PAGE_SIZE, r.end / TARGET_PAGE_SIZE);
    return out;
  };
  return { plugged: pages(device.pluggedRanges()), unplugged: pages(device.unpluggedRanges()) };
}

/** Pages of `ranges` for which `predicate` holds. */
function countPages(ranges: RangeTable, predicate: (page: number) => boolean): number {
  let n = 0;
  for (const r of ranges) for (let page = r.start; page < r.end; page++) if (predicate(page)) n++;
  return n;
}

function pageCountOf(ranges: RangeTable): number {
  return countPages(ranges, () => true);
}

test('precopy skips unplugged blocks and carries the plugged bitmap', async (t) => {
  const { vm: source } = await startVm([...GUEST, ...vmem()]);
  const { vm: dest } = await startVm([...GUEST, ...vmem(), ...DEST]);
  try {
    const { plugged, unplugged } = await plugAndStamp(source);
    assert.equal(pageCountOf(plugged) * TARGET_PAGE_SIZE, REQUESTED_BYTES);
    assert.equal(pageCountOf(unplugged) * TARGET_PAGE_SIZE, REGION_BYTES - REQUESTED_BYTES);
    source.migrate({ uri: dest.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 10_000, 'the destination to complete');
    const ram = source.queryMigrate().ram!;
    t.diagnostic(`transferred ${ram.transferred} bytes, ${ram.normal} normal pages, ${ram.duplicate} zero pages; RAM ${BOOT_BYTES + REGION_BYTES} bytes`);
    // The stamped pages are plugged + unplugged; only the plugged ones (and boot RAM) travel.
    assert.ok(ram.normal >= pageCountOf(plugged), `normal pages ${ram.normal} cover the stamped plugged pages`);
    assert.ok(ram.normal < pageCountOf(plugged) + pageCountOf(unplugged), `normal pages ${ram.normal}`);
    assert.ok(ram.transferred < BOOT_BYTES + REQUESTED_BYTES, `transferred ${ram.transferred}`);
    // At EOF the destination zero-fills the unplugged pages it has not received: all of them.
    assert.equal(dest.incoming!.engine.stats().localZeroPages, pageCountOf(unplugged), 'unplugged pages filled locally');
    assert.equal(countPages(unplugged, (p) => !dest.machine.backing.isZeroPage(p)), 0, 'unplugged pages not zero on the destination');
    assert.equal(countPages(unplugged, (p) => source.machine.backing.isZeroPage(p)), 0, 'the stamps are on the source');
    const same = compareRam(source.machine.backing, dest.machine.backing, unplugged);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    assert.equal(countPages(plugged, (p) => !source.machine.backing.pageEquals(dest.machine.backing, p)), 0);
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
    assert.deepEqual(dest.machine.devices.virtioMemInfo(), {
      id: 'vmem0', memaddr: BOOT_BYTES, 'requested-size': REQUESTED_BYTES, size: REQUESTED_BYTES, 'max-size': REGION_BYTES, 'block-size': 2 * MiB, node: 0, memdev: '/objects/mem1',
    });
    assert.deepEqual(dest.machine.devices.virtioMemInfo(), source.machine.devices.virtioMemInfo());
    const [sourceState, destState] = [source, dest].map((vm) => vm.machine.devices.virtioMem!.device.captureState());
    assert.deepEqual(destState, sourceState);
    assert.equal(destState.pluggedSizeBytes, REQUESTED_BYTES);
    assert.equal(source.machine.devices.virtioMem!.device.migrationBusy, false, 'the source device is idle again');
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('postcopy places unplugged pages locally instead of requesting them', async () => {
  const { vm: source } = await startVm([...GUEST, ...vmem()]);
  const { vm: dest } = await startVm([...GUEST, ...vmem(), '-S', '-incoming', 'defer']);
  try {
    const { unplugged } = await plugAndStamp(source);
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] });
    await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 16n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    source.migrateStartPostcopy();
    await waitFor(() => dest.incoming!.status === 'postcopy-active', 10_000, 'the destination to enter postcopy');
    // The guest touches every 512th unplugged page (as pmemsave's fault-in does).
    const first = [...unplugged].flatMap((r) => Array.from({ length: Math.ceil((r.end - r.start) / 512) }, (_, i) => r.start + i * 512));
    for (const page of first) dest.incoming!.onGuestFault(0, page);
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 20_000, 'the destination to complete');
    const stats = dest.incoming!.engine.stats();
    assert.ok(stats.localZeroPages >= first.length, `local zero pages ${stats.localZeroPages} of ${first.length} faults`);
    assert.equal(countPages(unplugged, (p) => !dest.machine.backing.isZeroPage(p)), 0, 'unplugged pages not zero on the destination');
    // -S: no vCPU runs on the destination, so the only faults are the ones above.
    assert.equal(source.outgoing!.engine.counters().requestsReceived, 0, 'page requests reached the source');
    const same = compareRam(source.machine.backing, dest.machine.backing, unplugged);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('a new requested-size is plugged by the driver; bad sizes get QEMU 7.2 qom-set texts', async () => {
  const { vm } = await startVm([...GUEST, ...vmem()]);
  try {
    const devices = vm.machine.devices;
    const device = devices.virtioMem!.device;
    await waitFor(() => device.pluggedSizeBytes === REQUESTED_BYTES, 10_000, 'the driver to plug requested-size');
    assert.equal(devices.setVirtioMemRequestedSize(3 * MiB), "'requested-size' has to be multiples of 'block-size' (0x200000)");
    assert.equal(devices.setVirtioMemRequestedSize(512 * MiB), "'requested-size' cannot exceed the memory backend size(0x10000000)");
    assert.equal(devices.setVirtioMemRequestedSize(REGION_BYTES), null);
    await waitFor(() => device.pluggedSizeBytes === REGION_BYTES, 10_000, 'the driver to plug the whole region');
    assert.equal(devices.virtioMemInfo()?.size, REGION_BYTES);
    assert.equal(device.unpluggedRanges().isEmpty(), true);
  } finally {
    await vm.close();
  }
});

test('a destination with another block-size refuses the virtio-mem state', async () => {
  const { vm: source } = await startVm([...GUEST, ...vmem()]);
  const { vm: dest, reports } = await startVm([...GUEST, ...vmem(',block-size=4M'), ...DEST]);
  try {
    await plugAndStamp(source);
    source.migrate({ uri: dest.incoming!.uri });
    await waitFor(() => dest.incoming!.status === 'failed', 20_000, 'the destination to fail');
    const text = "Property 'block-size' changed from 0x200000 to 0x400000";
    assert.ok(reports.some((line) => line.includes(text)), reports.join('\n'));
    assert.equal(dest.machine.devices.virtioMem!.device.pluggedSizeBytes, 0, 'nothing was loaded');
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});
