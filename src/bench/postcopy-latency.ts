/**
 * Postcopy page-request latency in real mode: two livemig VMs in this process (LivemigVm, as
 * host/migrate-postcopy.test.ts), connected over loopback TCP. The source's precopy is held
 * to 4 MiB/s, so when `migrate-start-postcopy` switches 300 ms in nearly every page is still
 * on the source; the destination's vCPU then touches random pages of its RAM (workload
 * `random`), faults on missing ones, blocks, and is woken when the requested page is placed.
 * The background push runs meanwhile, uncapped by default (max-postcopy-bandwidth 0). The latency of a
 * fault is what the vCPU measured: from its fault to its wake-up (vcpus.faultLatencies).
 *
 * Both VMs share this process's event loop, so a request waits behind the source's own work
 * too; two processes would see less. The figure is an upper bound for the engine's path.
 */
import { tokenizeQemuArgs, LIVEMIG_VM_OPTIONS } from '../host/qemu-args.ts';
import { interpretVmArgs } from '../host/vm-args.ts';
import { LivemigVm } from '../host/vm.ts';

export interface PostcopyLatencyRun {
  /** Every fault's latency, ns, sorted. */
  readonly latenciesNs: readonly number[];
  readonly requestsSent: number;
  readonly pagesPlacedAfterSwitch: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = process.hrtime.bigint() + BigInt(timeoutMs) * 1_000_000n;
  while (!condition()) {
    if (process.hrtime.bigint() > deadline) throw new Error(`postcopy latency: timed out waiting for ${what}`);
    await sleep(2);
  }
}

/**
 * One postcopy migration of a `sizeMiB` guest; see the file comment. `postcopyBytesPerSec`:
 * the source's max-postcopy-bandwidth (0, QEMU's default, is unlimited).
 */
export async function measurePostcopyLatency(sizeMiB: number, postcopyBytesPerSec = 0): Promise<PostcopyLatencyRun> {
  const guest = ['-m', `${sizeMiB}M`, '--vcpus', '1', '--workload', `random:${sizeMiB}M:${sizeMiB / 2}M`, '--seed', '3'];
  const start = (args: string[]): Promise<LivemigVm> => LivemigVm.start(interpretVmArgs(tokenizeQemuArgs(args, LIVEMIG_VM_OPTIONS)), { report: () => undefined });
  const source = await start(guest);
  const dest = await start([...guest, '-incoming', 'defer']);
  try {
    for (const vm of [source, dest]) vm.migrateSetCapabilities({ capabilities: [{ capability: 'postcopy-ram', state: true }] });
    await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n << 20n, maxPostcopyBandwidthBytesPerSec: BigInt(postcopyBytesPerSec) });
    await sleep(500);
    source.migrate({ uri: dest.incoming!.uri });
    await until(() => source.outgoing?.status === 'active', 10_000, 'the source to be active');
    await sleep(300);
    source.migrateStartPostcopy();
    const status = await source.outgoing!.whenFinished();
    if (status !== 'completed') throw new Error(`postcopy latency: the source ended ${status}: ${source.outgoing!.error?.message ?? ''}`);
    await until(() => dest.incoming!.status === 'completed', 60_000, 'the destination to complete');
    const stats = dest.incoming!.engine.stats();
    return {
      latenciesNs: dest.vcpus!.faultLatencies().sort((a, b) => a - b),
      requestsSent: stats.requestsSent,
      pagesPlacedAfterSwitch: stats.postcopyPagesPlaced,
    };
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
}

/** The p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
