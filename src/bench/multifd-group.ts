/**
 * The `multifd` benchmark group: livemig → livemig precopy with multifd, 2 and 4 channels,
 * between two `livemig-qemu` processes driven by the same harness as the QEMU pairs
 * (harness/qemu-migrate.ts measurePrecopy with qemuPath = bin/livemig-qemu.js), each beside
 * QEMU → QEMU with the same channel count (the `qemu` group's multifd baselines when it ran
 * first with the same size, else measured here). The source RAM is a non-zero pattern file;
 * the destination is spot-checked with pmemsave after each run (a bad page fails the row).
 * GB/s = RAM bytes / (migrate command → destination `completed` event). 2 GiB, median of 3
 * (--quick: 256 MiB, 1 run).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measurePrecopy } from '../harness/qemu-migrate.ts';
import { writePatternFile } from '../harness/ram-pattern.ts';
import { removeTempDir } from '../harness/ram-image.ts';
import { GiB, MiB } from '../lib/units.ts';
import { lastQemuBaselines, qemuBaselines, type QemuBaselines, type QemuMode } from './qemu-group.ts';
import { benchSettleMs, type BenchContext, type BenchGroup } from './registry.ts';
import { median, type BenchRow } from './table.ts';

const LIVEMIG_QEMU = fileURLToPath(new URL('../../bin/livemig-qemu.js', import.meta.url));
const CHANNEL_COUNTS = [2, 4] as const;

export function makeMultifdGroup(full = { sizeBytes: 2 * GiB, runs: 3 }, quick = { sizeBytes: 256 * MiB, runs: 1 }): BenchGroup {
  return {
    name: 'multifd',
    description: 'real mode livemig → livemig precopy with multifd (2 and 4 channels) against QEMU → QEMU with the same channels',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const { sizeBytes, runs } = ctx.quick ? quick : full;
      const note = ctx.note ?? ctx.progress;
      const size = sizeBytes >= GiB ? `${sizeBytes / GiB} GiB` : `${sizeBytes / MiB} MiB`;
      const patternPath = join('/dev/shm', `livemig-bench-multifd-${process.pid}.ram`);
      const rows: BenchRow[] = [];
      try {
        ctx.progress(`multifd: writing ${size} of pattern RAM`);
        writePatternFile(patternPath, sizeBytes);
        let qemu: QemuBaselines | null = lastQemuBaselines !== null && lastQemuBaselines.sizeBytes === sizeBytes ? lastQemuBaselines : null;
        if (qemu === null) {
          ctx.progress('multifd: QEMU baselines (the qemu group did not run first at this size)');
          qemu = await qemuBaselines({ sizeBytes, runs, modes: ['multifd-2', 'multifd-4'] satisfies QemuMode[], progress: ctx.progress, clockNs: ctx.clockNs });
        }
        if (qemu.skipped !== null) note(`QEMU multifd baselines: ${qemu.skipped}`);
        for (const channels of CHANNEL_COUNTS) {
          const gbs: number[] = [];
          const downtimes: number[] = [];
          for (let rep = 1; rep <= runs; rep++) {
            ctx.progress(`multifd: livemig → livemig, ${channels} channels, ${size}, run ${rep}/${runs}`);
            try {
              const r = await measurePrecopy({ sizeBytes, source: { kind: 'file', path: patternPath }, multifdChannels: channels, qemuPath: LIVEMIG_QEMU, clockNs: ctx.clockNs, settleMs: benchSettleMs() });
              if (r.badPages.length > 0) throw new Error(`destination pages differ from the source: ${r.badPages.slice(0, 8).join(', ')}`);
              gbs.push(sizeBytes / (r.endToEndMs * 1e6));
              if (r.downtimeMs !== null) downtimes.push(r.downtimeMs);
            } catch (error) {
              note(`livemig multifd ${channels} run ${rep}: ${(error as Error).message}`);
            }
          }
          if (gbs.length === 0) continue;
          const baseline = qemu.modes[`multifd-${channels}` as QemuMode];
          rows.push({
            group: 'multifd', name: `livemig → livemig multifd ${channels} channels, non-zero RAM, ${size}`, value: median(gbs), unit: 'GB/s', samples: gbs,
            versus: baseline?.kind === 'precopy' ? { name: 'QEMU→QEMU', value: baseline.medianGbPerSec } : undefined,
            note: `median of ${gbs.length}; end to end (migrate → destination completed); downtime ${downtimes.length > 0 ? `${median(downtimes)} ms` : 'not reported'}`,
          });
        }
        return rows;
      } finally {
        removeTempDir(patternPath);
      }
    },
  };
}
