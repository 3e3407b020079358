// livemig → livemig with the kernel-build workload (allocator churn) in the vCPU threads and the
// balloon's free page hinting on the source's main thread: the vCPUs allocate and free through
// their page caches, so hinting sees memory they freed. The oracle is kernel-build-oracle.ts:
// RAM equal except hinted free pages, and every page a vCPU holds written equal with no
// exemption (including pages hinted earlier and written again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HintStatus } from '../devices/balloon/free-page-hint.ts';
import { checkKernelBuildMigration } from './kernel-build-oracle.ts';
import { startVm, waitFor } from './vm.test-util.ts';

const GUEST = ['-m', '256M', '--vcpus', '2', '--workload', 'kernel-build:96M:64M', '--seed', '5',
  '-device', 'virtio-balloon,free-page-hint=on,free-page-hint-postcopy=track'];

test('precopy of a kernel-build guest: hinted pages skipped, every written live page equal', async (t) => {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    const caches = source.machine.pageCaches!;
    await waitFor(() => caches.blocksFreed > 200, 20_000, 'the guest to free blocks');
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 128n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 10_000, 'the destination to complete');
    const counters = source.outgoing!.engine.counters();
    t.diagnostic(`blocks refilled ${caches.blocksRefilled}, freed ${caches.blocksFreed}; hinted ${counters.hintedPages} pages`);
    assert.ok(counters.hintedPages > 0, 'the balloon hinted pages');
    const verdicts = checkKernelBuildMigration(source, dest);
    assert.deepEqual(verdicts.map((v) => v.name), ['memory-equality', 'kernel-build vCPU 0', 'kernel-build vCPU 1']);
    for (const v of verdicts) {
      t.diagnostic(`${v.name}: ${v.detail}`);
      assert.ok(v.ok, `${v.name}: ${v.detail}`);
    }
    assert.equal(dest.machine.devices.balloon?.device.hint.status, source.machine.devices.balloon?.device.hint.status);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('the oracle catches a written live page that differs', async () => {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    const caches = source.machine.pageCaches!;
    await waitFor(() => caches.blocksRefilled > 100, 20_000, 'the guest to allocate');
    source.stop();
    let page = -1;
    for (let p = 0; p < source.machine.backing.pageCount && page < 0; p++) if (caches.writtenBy(1, p)) page = p;
    assert.ok(page >= 0, 'vCPU 1 wrote a page');
    dest.machine.backing.bytes.set(source.machine.backing.bytes);
    dest.machine.backing.bytes[page * 4096 + 17] ^= 0x5a;
    const verdicts = checkKernelBuildMigration(source, dest);
    assert.equal(verdicts[0].ok, false);
    assert.equal(verdicts[2].ok, false);
    assert.match(verdicts[2].detail, new RegExp(`1 differ \\(first: ${page}\\)$`));
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('postcopy of a kernel-build guest under `track`: completes, DONE loaded, the oracle passes', async (t) => {
  const { vm: source } = await startVm(GUEST);
  // -S: the destination guest stays stopped (its guest model does not travel, see docs/real-mode.md).
  const { vm: dest } = await startVm([...GUEST, '-S', '-incoming', 'defer']);
  try {
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] });
    await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    const caches = source.machine.pageCaches!;
    await waitFor(() => caches.blocksFreed > 200, 20_000, 'the guest to free blocks');
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 32n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    await waitFor(() => source.outgoing!.engine.counters().hintedPages > 0, 10_000, 'hints');
    source.migrateStartPostcopy();
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 20_000, 'the destination to complete');
    const counters = source.outgoing!.engine.counters();
    t.diagnostic(`hinted ${counters.hintedPages}, hinted never sent ${counters.hintedNeverSentPages}`);
    for (const v of checkKernelBuildMigration(source, dest)) {
      t.diagnostic(`${v.name}: ${v.detail}`);
      assert.ok(v.ok, `${v.name}: ${v.detail}`);
    }
    assert.equal(dest.machine.devices.balloon?.device.hint.status, HintStatus.Done);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});
