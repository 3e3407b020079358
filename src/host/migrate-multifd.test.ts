// livemig → livemig with multifd in real mode: two VMs in this process, the main connection
// plus multifd-channels extra tcp (or unix) connections. The source runs the incrementer on
// two vCPUs, so pages are re-sent over several passes across different channels. Oracles:
// the destination's RAM equals the source's at the stop (page by page), the incrementer oracle
// per vCPU, multifd-bytes covers every normal page, and the destination completed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { VmCommandError } from './vm-types.ts';
import { compareRam, oracleChecks, startVm, waitFor } from './vm.test-util.ts';

const GUEST = ['-m', '128M', '--vcpus', '2', '--workload', 'incrementer:32M:64M', '--seed', '11'];

async function migrateMultifd(channels: number, uri: (dir: string) => string): Promise<{ multifdBytes: number; normal: number; passes: number }> {
  const dir = makeTempDir('livemig-multifd-');
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-S', '-incoming', 'defer']);
  try {
    for (const vm of [source, dest]) {
      vm.migrateSetCapabilities({ capabilities: [{ capability: 'multifd', state: true }] });
      vm.migrateSetParameters({ multifdChannels: BigInt(channels) });
    }
    await dest.migrateIncoming({ uri: uri(dir) });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 256n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming!.status === 'completed', 20_000, 'the destination to complete');
    const same = compareRam(source.machine.backing, dest.machine.backing);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
    const ram = source.queryMigrate().ram!;
    assert.ok(ram['multifd-bytes'] >= ram.normal * 4096, `multifd-bytes ${ram['multifd-bytes']} for ${ram.normal} normal pages`);
    return { multifdBytes: ram['multifd-bytes'], normal: ram.normal, passes: ram['dirty-sync-count'] };
  } finally {
    await Promise.all([source.close(), dest.close()]);
    removeTempDir(dir);
  }
}

for (const channels of [2, 4]) {
  test(`multifd over tcp with ${channels} channels: RAM equal, incrementer oracle ok`, async (t) => {
    const r = await migrateMultifd(channels, () => 'tcp:127.0.0.1:0');
    t.diagnostic(`multifd-bytes ${r.multifdBytes}, normal pages ${r.normal}, dirty syncs ${r.passes}`);
  });
}

test('multifd over a unix socket with 3 channels', async () => {
  await migrateMultifd(3, (dir) => `unix:${join(dir, 'mig.sock')}`);
});

test('multifd with exec: is refused', async () => {
  const { vm } = await startVm(['-m', '16M']);
  try {
    vm.migrateSetCapabilities({ capabilities: [{ capability: 'multifd', state: true }] });
    assert.throws(() => vm.migrate({ uri: 'exec:cat > /dev/null' }), (e: unknown) => e instanceof VmCommandError && e.desc === 'multifd is not supported by the exec: migration URI');
  } finally {
    await vm.close();
  }
});
