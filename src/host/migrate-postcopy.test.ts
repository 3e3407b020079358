// livemig → livemig postcopy with page requests, in this process, without and with
// postcopy-preempt (requested pages on the second connection: both sides' counters agree). The precopy phase is held to
// 4 MiB/s so most pages are still on the source when migrate-start-postcopy switches early;
// the destination's incrementer vCPUs then fault on missing pages, block in Atomics.wait, and
// are woken when the requested page is placed. Checks: both sides complete; the destination
// placed no page twice and has no fault left waiting; faults were served by requests; the
// destination's RAM passes the incrementer oracle after its vCPUs ran on it; fault latencies
// are recorded (reported as diagnostics).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrationCapability } from '../core/capabilities.ts';
import { sleep, startVm, waitFor, oracleChecks } from './vm.test-util.ts';

const GUEST = ['-m', '128M', '--vcpus', '2', '--workload', 'incrementer:48M:64M', '--seed', '3'];

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

for (const preempt of [false, true]) {
  const name = preempt ? 'postcopy-preempt: requested pages come on the preempt channel and the oracle passes' : 'postcopy: vCPU faults are served by page requests and the oracle passes';
  test(name, async (t) => {
    const { vm: source } = await startVm(GUEST);
    const { vm: dest } = await startVm([...GUEST, '-incoming', 'defer']);
    try {
      const names: MigrationCapability[] = ['postcopy-ram', 'events', ...(preempt ? ['postcopy-preempt' as const] : [])];
      const capabilities = names.map((capability) => ({ capability, state: true }));
      for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities });
      await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
      source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n * 1024n * 1024n });
      await sleep(100);
      source.migrate({ uri: dest.incoming!.uri });
      await waitFor(() => source.outgoing!.status === 'active', 5000, 'active');
      await sleep(300);
      source.migrateStartPostcopy();
      await waitFor(() => dest.runState === 'running', 10_000, 'the destination guest to start');
      assert.equal(await source.outgoing!.whenFinished(), 'completed', source.outgoing!.error?.message);
      await waitFor(() => dest.incoming!.status === 'completed', 10_000, 'the destination to complete');
      assert.equal(source.runState, 'postmigrate');
      await sleep(100);
      dest.stop();
      const stats = dest.incoming!.engine.stats();
      assert.equal(stats.placedTwiceAttempts, 0);
      assert.equal(stats.outstandingFaults.length, 0, 'every fault was served');
      assert.equal(stats.missingPages, 0);
      assert.ok(stats.requestsSent > 0, 'faults were served by page requests');
      assert.ok(stats.postcopyPagesPlaced > 0);
      for (const check of oracleChecks(dest)) assert.ok(check.ok, check.detail);
      const latencies = dest.vcpus!.faultLatencies().sort((a, b) => a - b);
      assert.ok(latencies.length > 0, 'vCPUs waited on faults');
      const counters = source.outgoing!.engine.counters();
      const preemptBytes = source.outgoing!.preemptBytesWritten;
      if (preempt) {
        assert.ok(counters.requestedPagesSent > 0, 'the source sent requested pages');
        // Every requested page went on the preempt channel: at least its 8-byte header each.
        assert.ok(preemptBytes >= counters.requestedPagesSent * 8, `${preemptBytes} preempt bytes for ${counters.requestedPagesSent} requested pages`);
        assert.equal(dest.incoming!.preemptBytesReceived, preemptBytes, 'the destination decoded every preempt byte');
      } else {
        assert.equal(preemptBytes, 0);
        assert.equal(dest.incoming!.preemptBytesReceived, 0);
      }
      t.diagnostic(`requests ${stats.requestsSent}, vCPU faults ${latencies.length}, placed after switch ${stats.postcopyPagesPlaced}, source requested pages sent ${counters.requestedPagesSent}, preempt bytes ${preemptBytes}`);
      t.diagnostic(`fault latency: p50 ${(percentile(latencies, 50) / 1e6).toFixed(2)} ms, p99 ${(percentile(latencies, 99) / 1e6).toFixed(2)} ms, max ${(latencies[latencies.length - 1] / 1e6).toFixed(2)} ms`);
    } finally {
      await Promise.all([source.close(), dest.close()]);
    }
  });
}

test('postcopy-preempt: refused on a single-channel transport with QEMU\'s text', async () => {
  const { vm } = await startVm(['-m', '16M']);
  try {
    vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }, { capability: 'postcopy-preempt', state: true }] });
    assert.throws(() => vm.migrate({ uri: 'exec:cat > /dev/null' }), { message: 'Postcopy preempt is not supported as current migration stream does not support multi-channels.' });
  } finally {
    await vm.close();
  }
});

// A measurement, not run by default (LIVEMIG_BENCH=1): postcopy page-request latency as the
// vCPUs see it, with background pages held to 8 MiB/s so most touched pages are requested.
// Both VMs share this process's main thread, so the figures include the source's work too.
test('bench: postcopy fault latency', { skip: process.env.LIVEMIG_BENCH !== '1' }, async (t) => {
  const guest = ['-m', '256M', '--vcpus', '1', '--workload', 'random:256M:128M', '--seed', '3'];
  const { vm: source } = await startVm(guest);
  const { vm: dest } = await startVm([...guest, '-incoming', 'defer']);
  try {
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] });
    await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n << 20n, maxPostcopyBandwidthBytesPerSec: 8n << 20n });
    await sleep(1000);
    source.migrate({ uri: dest.incoming!.uri });
    await sleep(300);
    source.migrateStartPostcopy();
    assert.equal(await source.outgoing!.whenFinished(), 'completed');
    await waitFor(() => dest.incoming!.status === 'completed', 60_000, 'the destination to complete');
    const latencies = dest.vcpus!.faultLatencies().sort((a, b) => a - b);
    const ms = (p: number): string => (percentile(latencies, p) / 1e6).toFixed(2);
    t.diagnostic(`faults ${latencies.length}, requests ${dest.incoming!.engine.stats().requestsSent}: p50 ${ms(50)} ms, p90 ${ms(90)} ms, p99 ${ms(99)} ms, max ${ms(100)} ms`);
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
});
