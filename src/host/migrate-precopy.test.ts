// livemig → livemig precopy between two LivemigVm instances in this process, with two
// incrementer vCPUs running on the source throughout. Checks, over TCP and over a unix
// socket: the source completes and ends in postmigrate; the destination (started with -S)
// holds exactly the source's RAM at the stop, page for page; every vCPU region passes the
// incrementer oracle with its edge at the saved cursor; after `cont` the destination's
// vCPUs continue the walk and the oracle still holds. A cancelled migration leaves the
// source running. A killed TCP connection fails the precopy: the source keeps running with
// status failed, the destination never runs the guest, and a retry on a fresh one completes.
// A connection lost after EOF (the destination runs the guest) but before SHUT fails the
// source with its guest kept stopped: no second copy runs (docs/reliability.md, split brain). With auto-converge, a guest that dirties memory faster than the link
// carries is throttled (the vCPU threads sleep their share) until precopy converges, and the
// throttle is lifted at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, startVm, waitFor, oracleChecks, compareRam, portOf, relay } from './vm.test-util.ts';
import type { LivemigVm } from './vm.ts';

const GUEST = ['-m', '128M', '--vcpus', '2', '--workload', 'incrementer:32M:128M', '--seed', '11'];

async function migrateAndCheck(t: { diagnostic(s: string): void }, uriOf: (dest: LivemigVm) => string, incoming: string): Promise<void> {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-S', '-incoming', incoming]);
  try {
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 10n * 1024n ** 3n, downtimeLimitMs: 100n });
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'events', state: true }] });
    const events: string[] = [];
    source.subscribe((e) => events.push(e.event === 'MIGRATION' ? `MIGRATION ${e.data.status}` : e.event));
    await sleep(200); // the guest runs a while first
    source.migrate({ uri: uriOf(dest) });
    const status = await source.outgoing!.whenFinished();
    assert.equal(status, 'completed', source.outgoing!.error?.message);
    await waitFor(() => dest.incoming?.status === 'completed', 10_000, 'the destination to complete');
    assert.equal(source.runState, 'postmigrate');
    assert.equal(dest.runState, 'paused', 'with -S the destination does not start');
    assert.ok(events.includes('STOP') && events.includes('MIGRATION completed') && events.includes('MIGRATION_PASS'), events.join(','));
    const same = compareRam(source.machine.backing, dest.machine.backing);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
    const info = source.queryMigrate();
    t.diagnostic(`${uriOf(dest)}: total ${info['total-time']} ms, downtime ${info.downtime} ms, ${info.ram?.transferred} bytes, passes ${info.ram?.['dirty-sync-count']}`);
    // The destination continues the walk where the source stopped.
    const writesBefore = dest.vcpus!.totalPageWrites();
    dest.cont();
    assert.equal(dest.runState, 'running');
    await sleep(200);
    dest.stop();
    assert.ok(dest.vcpus!.totalPageWrites() > writesBefore, 'the destination vCPUs ran');
    for (const check of oracleChecks(dest)) assert.ok(check.ok, `after cont: ${check.detail}`);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
}

test('precopy over TCP with running incrementer vCPUs', async (t) => {
  await migrateAndCheck(t, (dest) => dest.incoming!.uri, 'tcp:127.0.0.1:0');
});

test('precopy over a unix socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-vm-'));
  try {
    const path = join(dir, 'mig.sock');
    await migrateAndCheck(t, () => `unix:${path}`, `unix:${path}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cancelled precopy leaves the source running', async () => {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-incoming', 'tcp:127.0.0.1:0']);
  try {
    // A slow link (1 MiB/s) keeps the migration in its first pass.
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    await waitFor(() => source.outgoing!.status === 'active', 5000, 'active');
    source.migrateCancel();
    assert.equal(await source.outgoing!.whenFinished(), 'cancelled');
    assert.equal(source.runState, 'running');
    const before = source.vcpus!.totalPageWrites();
    await sleep(100);
    assert.ok(source.vcpus!.totalPageWrites() > before, 'the source guest still runs');
    await waitFor(() => dest.incoming!.status === 'failed', 5000, 'the destination to fail');
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('auto-converge throttles the vCPUs until precopy converges', async (t) => {
  const guest = ['-m', '128M', '--vcpus', '1', '--workload', 'random:256M:32M', '--seed', '2'];
  const { vm: source } = await startVm(guest);
  const { vm: dest } = await startVm([...guest, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  const throttles = new Set<number>();
  const timer = setInterval(() => throttles.add(source.vcpus!.control.throttlePercent), 20);
  try {
    source.migrateSetCapabilities({ capabilities: [{ capability: 'auto-converge', state: true }] });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 64n << 20n, cpuThrottleInitialPct: 50n, cpuThrottleIncrementPct: 20n });
    source.migrate({ uri: dest.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    assert.ok([...throttles].some((pct) => pct >= 50), `throttles seen: ${[...throttles].join(',')}`);
    assert.equal(source.vcpus!.control.throttlePercent, 0, 'the throttle is lifted at the end');
    const info = source.queryMigrate();
    t.diagnostic(`throttles ${[...throttles].join(',')}; passes ${info.ram?.['dirty-sync-count']}; downtime ${info.downtime} ms`);
  } finally {
    clearInterval(timer);
    await Promise.all([source.close(), dest.close()]);
  }
});

test('a destination that goes away mid-stream fails the migration; the source keeps running', async () => {
  const { vm: source, reports } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-incoming', 'tcp:127.0.0.1:0']);
  try {
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n * 1024n * 1024n });
    source.migrate({ uri: dest.incoming!.uri });
    await waitFor(() => (source.queryMigrate().ram?.transferred ?? 0) > 1024 * 1024, 5000, 'a first megabyte');
    await dest.close();
    assert.equal(await source.outgoing!.whenFinished(), 'failed');
    assert.equal(source.runState, 'running');
    assert.ok(reports.some((line) => line.startsWith('livemig: migration failed:')), reports.join('\n'));
    const before = source.vcpus!.totalPageWrites();
    await sleep(100);
    assert.ok(source.vcpus!.totalPageWrites() > before, 'the source guest still runs');
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});

test('a precopy whose TCP connection is killed: source failed and running, destination never runs, a retry completes', async () => {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-incoming', 'tcp:127.0.0.1:0']);
  const { vm: retry } = await startVm([...GUEST, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  const link = await relay(portOf(dest.incoming!.uri));
  try {
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n * 1024n * 1024n });
    source.migrate({ uri: link.uri });
    await waitFor(() => (source.queryMigrate().ram?.transferred ?? 0) > 1024 * 1024, 5000, 'a first megabyte');
    link.cut();
    assert.equal(await source.outgoing!.whenFinished(), 'failed');
    assert.equal(source.queryMigrate().status, 'failed');
    assert.equal(source.runState, 'running');
    const before = source.vcpus!.totalPageWrites();
    await waitFor(() => source.vcpus!.totalPageWrites() > before, 5000, 'the source guest to keep running');
    await waitFor(() => dest.incoming!.status === 'failed', 5000, 'the destination load to fail');
    assert.notEqual(dest.runState, 'running', 'a destination with missing pages never runs the guest');
    assert.ok(dest.incoming!.engine.missingPages() > 0);
    assert.ok((dest.incoming!.engine.lastError?.message ?? '').length > 0, 'the failed load says why');
    // The operator retries on a fresh destination, at full speed.
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 10n * 1024n ** 3n, downtimeLimitMs: 100n });
    source.migrate({ uri: retry.incoming!.uri });
    assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
    await waitFor(() => retry.incoming!.status === 'completed', 10_000, 'the retry destination to complete');
    assert.equal(source.runState, 'postmigrate');
    assert.equal(compareRam(source.machine.backing, retry.machine.backing).mismatchCount, 0);
    for (const check of oracleChecks(retry)) assert.ok(check.ok, check.detail);
  } finally {
    await link.close();
    await Promise.all([source.close(), dest.close(), retry.close()]);
  }
});

test('split brain: a connection lost after EOF, before SHUT, fails the source with the guest kept stopped', async () => {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-incoming', 'tcp:127.0.0.1:0']);
  const link = await relay(portOf(dest.incoming!.uri), { dropReturnPath: true });
  const events: string[] = [];
  source.subscribe((e) => events.push(e.event));
  try {
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'return-path', state: true }] });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 10n * 1024n ** 3n, downtimeLimitMs: 100n });
    source.migrate({ uri: link.uri });
    // The destination has everything and runs the guest; SHUT never reaches the source.
    await waitFor(() => dest.incoming!.status === 'completed' && source.outgoing!.engine.phase === 'awaiting-shut', 20_000, 'EOF at the destination');
    assert.equal(dest.runState, 'running');
    link.cut();
    assert.equal(await source.outgoing!.whenFinished(), 'failed');
    // QEMU 7.2 would run the guest here too: two copies. livemig keeps the source's stopped.
    assert.equal(source.runState, 'postmigrate');
    assert.equal(events.filter((e) => e === 'RESUME').length, 0, events.join(','));
    dest.stop();
    for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
  } finally {
    await link.close();
    await Promise.all([source.close(), dest.close()]);
  }
});
