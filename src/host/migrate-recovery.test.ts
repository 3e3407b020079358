// Postcopy recovery in real mode, livemig → livemig in this process. The migration channel
// runs through a TCP relay owned by the test; mid-postcopy the relay resets both of its
// sockets (a killed connection, as a dying network path would). Checks: both sides reach
// postcopy-paused with the source guest stopped; `migrate-recover` on the destination and
// `migrate` with resume on the source bring both back (RECV_BITMAP, RESUME, RESUME_ACK on the
// new connection) and the migration completes; no page was placed twice, none is missing,
// every vCPU fault was served, and the destination's RAM passes the incrementer oracle.
// A second test pauses with QMP migrate-pause on the source and checks the refusals QEMU gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmCommandError } from './vm-types.ts';
import { oracleChecks, portOf, relay, startVm, waitFor } from './vm.test-util.ts';
import type { LivemigVm } from './vm.ts';

const GUEST = ['-m', '64M', '--vcpus', '2', '--workload', 'incrementer:24M:48M', '--seed', '5'];

/** Two VMs with postcopy on, the destination listening, the source held to a slow link. */
async function pair(): Promise<{ source: LivemigVm; dest: LivemigVm }> {
  const { vm: source } = await startVm(GUEST);
  const { vm: dest } = await startVm([...GUEST, '-incoming', 'defer']);
  for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }, { capability: 'events', state: true }] });
  await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
  source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n << 20n, maxPostcopyBandwidthBytesPerSec: 8n << 20n });
  return { source, dest };
}

/** Starts postcopy and waits until the destination runs and has placed pages after the switch. */
async function intoPostcopy(source: LivemigVm, dest: LivemigVm, uri: string): Promise<void> {
  source.migrate({ uri });
  await waitFor(() => (source.queryMigrate().ram?.transferred ?? 0) > 1 << 20, 10_000, 'a first megabyte');
  source.migrateStartPostcopy();
  await waitFor(() => dest.runState === 'running' && dest.incoming!.engine.stats().postcopyPagesPlaced > 64, 20_000, 'postcopy pages on the destination');
}

/** Recovers a paused pair and checks the completed migration. */
async function recoverAndCheck(source: LivemigVm, dest: LivemigVm): Promise<void> {
  await dest.migrateRecover({ uri: 'tcp:127.0.0.1:0' });
  assert.equal(dest.incoming!.status, 'postcopy-paused', 'migrate-recover alone does not resume');
  source.migrate({ uri: dest.incoming!.uri, resume: true });
  assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
  await waitFor(() => dest.incoming!.status === 'completed', 20_000, 'the destination to complete');
  assert.equal(source.outgoing!.engine.recoveries, 1);
  assert.equal(source.runState, 'postmigrate');
  assert.equal(dest.runState, 'running');
  dest.stop();
  const stats = dest.incoming!.engine.stats();
  assert.equal(stats.placedTwiceAttempts, 0);
  assert.equal(stats.missingPages, 0);
  assert.equal(stats.outstandingFaults.length, 0, 'every fault was served');
  for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
}

test('postcopy recovery after the TCP connection is killed mid-postcopy', { timeout: 60_000 }, async (t) => {
  const { source, dest } = await pair();
  const link = await relay(portOf(dest.incoming!.uri));
  const events: string[] = [];
  dest.subscribe((e) => {
    if (e.event === 'MIGRATION') events.push(e.data.status);
  });
  try {
    await intoPostcopy(source, dest, link.uri);
    const placedBeforeCut = dest.incoming!.engine.stats().postcopyPagesPlaced;
    link.cut();
    assert.equal(await source.outgoing!.whenFinished(), 'postcopy-paused');
    await waitFor(() => dest.incoming!.status === 'postcopy-paused', 10_000, 'the destination to pause');
    assert.equal(source.runState, 'finish-migrate', 'the source guest stays stopped while paused');
    assert.ok(dest.incoming!.engine.missingPages() > 0, 'pages were still missing at the cut');
    await recoverAndCheck(source, dest);
    assert.deepEqual(events.slice(events.indexOf('postcopy-paused')), ['postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed']);
    t.diagnostic(`placed after the switch before the cut: ${placedBeforeCut}; after: ${dest.incoming!.engine.stats().postcopyPagesPlaced}`);
  } finally {
    await link.close();
    await Promise.all([source.close(), dest.close()]);
  }
});

test('migrate-pause on the source pauses both sides; recovery refusals use QEMU texts', { timeout: 60_000 }, async () => {
  const { source, dest } = await pair();
  const refused = (f: () => unknown, text: string): void => assert.throws(f, (e: unknown) => e instanceof VmCommandError && e.desc === text);
  try {
    refused(() => source.migrate({ uri: dest.incoming!.uri, resume: true }), 'Cannot resume if there is no paused migration');
    refused(() => source.migratePause(), 'migrate-pause is currently only supported during postcopy-active state');
    await intoPostcopy(source, dest, dest.incoming!.uri);
    await assert.rejects(dest.migrateRecover({ uri: 'tcp:127.0.0.1:0' }), (e: unknown) => e instanceof VmCommandError && e.desc === 'Migrate recover can only be run when postcopy is paused.');
    source.migratePause();
    assert.equal(source.outgoing!.status, 'postcopy-paused');
    await waitFor(() => dest.incoming!.status === 'postcopy-paused', 10_000, 'the destination to pause');
    refused(() => source.migratePause(), 'migrate-pause is currently only supported during postcopy-active state');
    await recoverAndCheck(source, dest);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});
