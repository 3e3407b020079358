/**
 * The `limits` benchmark group: what this machine can move at all, to read the other figures
 * against. Rows:
 *   - loopback TCP by iperf3 (one stream over 127.0.0.1, `-t 3`, receiver's figure), when
 *     iperf3 is installed (a failed run is retried, up to 3 failures); otherwise a row-less
 *     note says why;
 *   - loopback TCP by a Node socket pump (src/transport/loopback.ts: one Node sender, the
 *     receiver in a worker thread) with 1 MiB writes, and with 4 KiB writes against it: the
 *     ceiling of a Node migration stream on one connection.
 * memcpy is measured by the `codec` group (its memcpy rows); it is not repeated here.
 * Medians of 3 (--quick: 1 iperf3 run, 256 MiB pumps).
 */
import { measureIperf3BytesPerSec, measureLoopbackBytesPerSec } from '../transport/loopback.ts';
import { searchPath } from '../harness/qemu-binary.ts';
import { formatBytes, KiB, MiB } from '../lib/units.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

export interface LimitsSizes {
  /** iperf3 runs (each `-t iperf3Seconds`). */
  readonly iperf3Runs: number;
  readonly iperf3Seconds: number;
  /** Node pump runs and bytes per run. */
  readonly pumpRuns: number;
  readonly pumpBytes: number;
}

/** Loopback measurements the group uses; injectable for tests. */
export interface LimitsProbes {
  iperf3Installed(): boolean;
  iperf3BytesPerSec(durationS: number): Promise<number | null>;
  pumpBytesPerSec(sizeBytes: number, writeSizeBytes: number): Promise<number>;
}

const IPERF3_ATTEMPTS = 3;

const realProbes: LimitsProbes = {
  iperf3Installed: () => searchPath('iperf3') !== null,
  iperf3BytesPerSec: (durationS) => measureIperf3BytesPerSec(durationS),
  pumpBytesPerSec: (sizeBytes, writeSizeBytes) => measureLoopbackBytesPerSec(sizeBytes, writeSizeBytes),
};

function gb(bytesPerSec: number): number {
  return bytesPerSec / 1e9;
}

export function makeLimitsGroup(
  full: LimitsSizes = { iperf3Runs: 3, iperf3Seconds: 3, pumpRuns: 3, pumpBytes: 512 * MiB },
  quick: LimitsSizes = { iperf3Runs: 1, iperf3Seconds: 3, pumpRuns: 1, pumpBytes: 256 * MiB },
  probes: LimitsProbes = realProbes,
): BenchGroup {
  return {
    name: 'limits',
    description: "this machine's limits: loopback TCP (iperf3, Node socket pump); memcpy is in the codec group",
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const sizes = ctx.quick ? quick : full;
      const note = ctx.note ?? ctx.progress;
      const rows: BenchRow[] = [];

      const iperf: number[] = [];
      const installed = probes.iperf3Installed();
      let failures = 0;
      // A run can fail on a busy machine (the one-shot server gone before the client got in): retry twice.
      while (installed && iperf.length < sizes.iperf3Runs && failures < IPERF3_ATTEMPTS) {
        ctx.progress(`limits: iperf3 over 127.0.0.1, ${sizes.iperf3Seconds} s, run ${iperf.length + 1}/${sizes.iperf3Runs}`);
        const bytesPerSec = await probes.iperf3BytesPerSec(sizes.iperf3Seconds);
        if (bytesPerSec === null) failures++;
        else iperf.push(gb(bytesPerSec));
      }
      if (iperf.length > 0) {
        rows.push({
          group: 'limits',
          name: 'loopback TCP, iperf3 1 stream',
          value: median(iperf),
          unit: 'GB/s',
          samples: iperf,
          note: `iperf3 -c 127.0.0.1 -t ${sizes.iperf3Seconds} -J, receiver bits_per_second / 8; median of ${iperf.length}` +
            (failures > 0 ? ` (${failures} failed run(s) retried)` : ''),
        });
      } else {
        note(installed
          ? `loopback TCP by iperf3: not measured, iperf3 failed ${failures} times; the Node pump rows stand in`
          : 'loopback TCP by iperf3: not measured, iperf3 is not installed (apt-get install iperf3); the Node pump rows stand in');
      }

      const pumpSize = formatBytes(sizes.pumpBytes).replace('.00 ', ' ');
      const pump = async (writeBytes: number): Promise<number[]> => {
        const samples: number[] = [];
        for (let i = 0; i < sizes.pumpRuns; i++) {
          ctx.progress(`limits: Node socket pump, ${pumpSize} in ${formatBytes(writeBytes)} writes, run ${i + 1}/${sizes.pumpRuns}`);
          samples.push(gb(await probes.pumpBytesPerSec(sizes.pumpBytes, writeBytes)));
        }
        return samples;
      };
      const large = await pump(MiB);
      const small = await pump(4 * KiB);
      const pumpNote = `${pumpSize} per run, sender on the main thread, receiver in a worker thread; median of ${sizes.pumpRuns}`;
      rows.push(
        { group: 'limits', name: 'loopback TCP, Node socket pump, 1 MiB writes', value: median(large), unit: 'GB/s', samples: large, note: pumpNote },
        {
          group: 'limits',
          name: 'loopback TCP, Node socket pump, 4 KiB writes',
          value: median(small),
          unit: 'GB/s',
          samples: small,
          versus: { name: '1 MiB writes', value: median(large) },
          note: pumpNote,
        },
      );
      note('memcpy: measured by the codec group (rows "memcpy Buffer.copy" and "memcpy Uint8Array.set"); run --only limits,codec to see both');
      return rows;
    },
  };
}
