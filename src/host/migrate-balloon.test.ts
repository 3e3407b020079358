// livemig → livemig with virtio-balloon free page hinting in real mode. The guest model's
// balloon driver runs on the source's main thread and hints its free memory while precopy
// runs (the link is held to 64 MiB/s so hints land before the pages are sent).
// (1) precopy with free-page-hint=on: pages are hinted and skipped (fewer bytes than RAM), the
//     destination equals the source except hinted pages, and the incrementer oracle passes.
// (2) postcopy under the `track` policy: switched early, faults on hinted pages are answered,
//     everything completes and the oracle passes.
// (3) the `refuse` policy: the destination refuses postcopy-ram with QEMU's two texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmCommandError } from './vm-types.ts';
import { compareRam, oracleChecks, sleep, startVm, waitFor } from './vm.test-util.ts';

const GUEST = ['-m', '256M', '--vcpus', '1', '--workload', 'incrementer:32M:8M', '--seed', '8'];
const balloon = (policy: string): string[] => ['-device', `virtio-balloon,free-page-hint=on,free-page-hint-postcopy=${policy}`];

test('precopy with free page hinting skips hinted pages', async (t) => {
  const { vm: source } = await startVm([...GUEST, ...balloon('track')]);
  const { vm: dest } = await startVm([...GUEST, ...balloon('track'), '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 64n * 1024n * 1024n });
    await sleep(100);
    source.migrate({ uri: dest.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 10_000, 'the destination to complete');
    const counters = source.outgoing!.engine.counters();
    const info = source.queryMigrate();
    t.diagnostic(`hinted ${counters.hintedPages} pages; transferred ${info.ram?.transferred} bytes of ${256 * 1024 * 1024}`);
    assert.ok(counters.hintedPages > 10_000, `hinted pages: ${counters.hintedPages}`);
    const same = compareRam(source.machine.backing, dest.machine.backing, source.hintedPages);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
    assert.deepEqual(dest.queryBalloon(), source.queryBalloon());
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('postcopy with hinting under `track` completes and the oracle passes', async (t) => {
  const { vm: source } = await startVm([...GUEST, ...balloon('track')]);
  const { vm: dest } = await startVm([...GUEST, ...balloon('track'), '-incoming', 'defer']);
  try {
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] });
    await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 32n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    await waitFor(() => source.outgoing!.engine.counters().hintedPages > 0, 5000, 'hints');
    source.migrateStartPostcopy();
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 10_000, 'the destination to complete');
    await sleep(100);
    dest.stop();
    const stats = dest.incoming!.engine.stats();
    assert.equal(stats.placedTwiceAttempts, 0);
    assert.equal(stats.outstandingFaults.length, 0);
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
    const counters = source.outgoing!.engine.counters();
    t.diagnostic(`hinted ${counters.hintedPages}, hinted never sent ${counters.hintedNeverSentPages}, answered with zero ${counters.hintedZeroPagesSent}, requests ${stats.requestsSent}`);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('the refuse policy refuses postcopy on the destination with both texts', async () => {
  const { vm: dest, reports } = await startVm(['-m', '64M', ...balloon('refuse'), '-incoming', 'defer']);
  try {
    assert.throws(
      () => dest.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] }),
      (error: unknown) => error instanceof VmCommandError && error.desc === 'Postcopy is not supported' && error.reports[0] === "virtio-balloon: 'free-page-hint' does not support postcopy",
    );
    assert.deepEqual(reports, ["virtio-balloon: 'free-page-hint' does not support postcopy"]);
  } finally {
    await dest.close();
  }
});
