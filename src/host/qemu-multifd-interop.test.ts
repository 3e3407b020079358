// Multifd between QEMU 7.2 and livemig over loopback TCP, both ways, with 2 and 4 channels.
// (i) A QEMU `-M none` source with a pattern memory-backend-file migrates with multifd to
//     `livemig-qemu -incoming defer`; pmemsave over livemig's QMP returns the pattern page for
//     page, and QEMU's multifd-bytes shows the pages went over the channels.
// (j) A livemig VM with a running incrementer vCPU migrates with multifd to a QEMU `-M none`
//     destination; QEMU's pmemsave equals the source's RAM at the stop and passes the
//     incrementer oracle, and livemig's multifd-bytes covers every page it sent in full.
// Both need qemu-system-x86_64 (skipped locally without it, failing in CI: harness/skip.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireQemu } from '../harness/skip.ts';
import { startQemu, type QemuProcess } from '../harness/qemu.ts';
import { mismatchedPages } from '../harness/ram-pattern.ts';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import type { MigrationInfo } from '../harness/qmp-client.ts';
import { BASE_ARGS, listeningUri, startQemuToLivemig } from '../harness/livemig-interop.ts';
import type { MigrationCapabilityStatus } from '../core/capabilities.ts';
import { MiB } from '../lib/units.ts';
import { VCPU_STATE_PAGE } from './vcpu-control.ts';
import { oracleChecks, startVm, waitFor } from './vm.test-util.ts';

const SIZE = 256 * MiB;
const UNCAPPED = 100 * 1024 ** 3;
const MULTIFD: MigrationCapabilityStatus[] = [{ capability: 'events', state: true }, { capability: 'multifd', state: true }];

for (const channels of [2, 4]) {
  test(`(i) QEMU 7.2 → livemig-qemu with multifd, ${channels} channels; pmemsave shows the pattern`, async (t) => {
    if (requireQemu(t) === null) return;
    const dir = makeTempDir('livemig-multifd-interop-');
    const started: QemuProcess[] = [];
    try {
      const { source, dest } = await startQemuToLivemig(dir, SIZE, started);
      for (const q of [dest, source]) {
        await q.qmp.execute('migrate-set-capabilities', { capabilities: MULTIFD });
        await q.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels });
      }
      await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNCAPPED });
      await dest.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
      await source.qmp.execute('migrate', { uri: await listeningUri(dest) });
      const done = await source.qmp.waitMigration(['completed', 'failed', 'cancelled'], 60_000);
      assert.equal(done.status, 'completed', JSON.stringify(done) + source.stderr);
      const landed = await dest.qmp.waitMigration(['completed', 'failed'], 60_000);
      assert.equal(landed.status, 'completed', dest.stderr);
      const info = await source.qmp.execute<MigrationInfo>('query-migrate');
      const ram = info.ram as { 'multifd-bytes': number; normal: number; transferred: number };
      assert.ok(ram['multifd-bytes'] >= ram.normal * 4096 && ram.normal > 0, JSON.stringify(ram));
      const bytes = await dest.pmemsave(0, SIZE);
      assert.deepEqual(mismatchedPages(bytes, 0, 'pattern'), []);
      t.diagnostic(`QEMU → livemig multifd ${channels}: ${info['total-time']} ms, downtime ${info.downtime} ms, multifd-bytes ${ram['multifd-bytes']}`);
    } finally {
      for (const q of started.reverse()) await q.stop();
      removeTempDir(dir);
    }
  });

  test(`(j) livemig → QEMU 7.2 with multifd, ${channels} channels; QEMU pmemsave equals the source RAM`, async (t) => {
    if (requireQemu(t) === null) return;
    let qemu: QemuProcess | null = null;
    const { vm: source } = await startVm(['-M', 'none', '-m', '256M', '--vcpus', '1', '--workload', 'incrementer:64M:128M', '--seed', '9']);
    try {
      qemu = await startQemu({ name: 'qemu-destination', watchdogMs: 120_000, args: ['-M', 'none', '-m', '256M', ...BASE_ARGS, '-incoming', 'defer'] });
      await qemu.qmp.execute('migrate-set-capabilities', { capabilities: MULTIFD });
      await qemu.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels });
      await qemu.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
      source.migrateSetCapabilities({ capabilities: MULTIFD });
      source.migrateSetParameters({ maxBandwidthBytesPerSec: BigInt(UNCAPPED), multifdChannels: BigInt(channels) });
      await waitFor(() => source.machine.backing.readLe32(VCPU_STATE_PAGE * 4096 + 8) >= 1, 10_000, 'a full incrementer pass');
      source.migrate({ uri: await listeningUri(qemu) });
      assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
      const landed = await qemu.qmp.waitMigration(['completed', 'failed'], 60_000);
      assert.equal(landed.status, 'completed', qemu.stderr);
      const bytes = await qemu.pmemsave(0, SIZE);
      assert.ok(Buffer.compare(Buffer.from(bytes), Buffer.from(source.machine.backing.bytes)) === 0, 'QEMU holds the source RAM at the stop');
      for (const check of oracleChecks(source, bytes)) assert.ok(check.ok, check.detail);
      const info = source.queryMigrate();
      assert.ok(info.ram!['multifd-bytes'] >= info.ram!.normal * 4096 && info.ram!.normal > 0, JSON.stringify(info.ram));
      t.diagnostic(`livemig → QEMU multifd ${channels}: ${info['total-time']} ms, downtime ${info.downtime} ms, multifd-bytes ${info.ram?.['multifd-bytes']}`);
    } finally {
      await qemu?.stop();
      await source.close();
    }
  });
}
