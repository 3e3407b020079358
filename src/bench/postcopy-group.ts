/**
 * The `postcopy` benchmark group: postcopy page-request latency p50/p99 on loopback, as the
 * destination's vCPU sees it (fault → wake-up), background push running (postcopy-latency.ts),
 * against QEMU 7.2's forced-fault latency (the qemu group's `postcopy-fault` mode). Variants:
 *   - both VMs in the bench process (the first rounds' layout; the source's work and the
 *     destination's share one event loop);
 *   - each VM in its own process, without postcopy-preempt (requests answered on the main
 *     channel, behind queued background pages);
 *   - each VM in its own process, with postcopy-preempt (requested pages on their own channel);
 *   - the same with the background push capped at 32 MiB/s (max-postcopy-bandwidth).
 * Each row's samples are every fault of every run; its note gives the runs' CPU time per
 * process and the machine's load average (os.loadavg) before and after, since the machine is
 * shared. 256 MiB guest, 3 runs per variant (--quick: 1). LIVEMIG_BENCH_CPU_PROF=DIR makes each
 * child process write a `--cpu-prof` profile.
 */
import { loadavg } from 'node:os';
import { MiB } from '../lib/units.ts';
import { measurePostcopyLatency, percentile, type LatencyLayout, type PostcopyLatencyRun } from './postcopy-latency.ts';
import { lastQemuBaselines, qemuBaselines, type QemuBaselines } from './qemu-group.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { median, type BenchRow } from './table.ts';

/** Guest size of the runs (the fault count, not the size, matters). */
const GUEST_MIB = 256;
/** max-postcopy-bandwidth of the capped variant. */
const CAPPED_BYTES_PER_SEC = 32 * MiB;

interface Variant {
  readonly layout: LatencyLayout;
  readonly preempt: boolean;
  /** The source's max-postcopy-bandwidth; 0 is unlimited. */
  readonly postcopyBytesPerSec: number;
  readonly label: string;
}

const VARIANTS: readonly Variant[] = [
  { layout: 'in-process', preempt: false, postcopyBytesPerSec: 0, label: 'one process' },
  { layout: 'processes', preempt: false, postcopyBytesPerSec: 0, label: 'two processes' },
  { layout: 'processes', preempt: true, postcopyBytesPerSec: 0, label: 'two processes, postcopy-preempt' },
  { layout: 'processes', preempt: true, postcopyBytesPerSec: CAPPED_BYTES_PER_SEC, label: 'two processes, postcopy-preempt, push 32 MiB/s' },
];

function load(): string {
  return loadavg().map((x) => x.toFixed(2)).join(' ');
}

function cpuNote(runs: readonly PostcopyLatencyRun[]): string {
  const fmt = (xs: number[]): string => (xs.every(Number.isNaN) ? 'n/a (shared process)' : `${median(xs).toFixed(0)} ms`);
  const cpu = `CPU per run (median): source ${fmt(runs.map((r) => r.sourceCpuMs))}, destination ${fmt(runs.map((r) => r.cpuMs))}`;
  // How long each VM's main thread was runnable but waiting for a CPU (Linux schedstat).
  const waitMs = (threads: PostcopyLatencyRun['threads']): number => (threads?.find((t) => t.name === 'main')?.runQueueWaitNs ?? Number.NaN) / 1e6;
  const src = runs.map((r) => waitMs(r.sourceThreads));
  const dst = runs.map((r) => waitMs(r.threads));
  const cpuMain = (threads: PostcopyLatencyRun['threads']): number => (threads?.find((t) => t.name === 'main')?.cpuNs ?? Number.NaN) / 1e6;
  if (src.some(Number.isNaN) || dst.some(Number.isNaN)) return cpu;
  return `${cpu}; main threads ran / waited for a CPU per run (median): source ${median(runs.map((r) => cpuMain(r.sourceThreads))).toFixed(0)} / ${median(src).toFixed(0)} ms, destination ${median(runs.map((r) => cpuMain(r.threads))).toFixed(0)} / ${median(dst).toFixed(0)} ms`;
}

export function makePostcopyGroup(full = { runs: 3 }, quick = { runs: 1 }): BenchGroup {
  return {
    name: 'postcopy',
    description: 'real mode over loopback TCP: postcopy page-request latency p50/p99 (one process, two processes, two processes with postcopy-preempt) against QEMU 7.2\'s forced fault',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const { runs } = ctx.quick ? quick : full;
      const note = ctx.note ?? ctx.progress;
      const rows: BenchRow[] = [];
      let qemu: QemuBaselines | null = lastQemuBaselines?.modes['postcopy-fault'] !== undefined ? lastQemuBaselines : null;
      if (qemu === null) {
        ctx.progress('postcopy: QEMU forced-fault baseline (the qemu group did not run first)');
        qemu = await qemuBaselines({ sizeBytes: GUEST_MIB * MiB, runs, modes: ['postcopy-fault'], progress: ctx.progress, clockNs: ctx.clockNs });
        if (qemu.skipped !== null) note(`QEMU forced-fault baseline: ${qemu.skipped}`);
      }
      const qf = qemu.modes['postcopy-fault'];
      const versus = qf?.kind === 'postcopy-fault' ? { name: 'QEMU forced fault', value: qf.medianFaultMs } : undefined;
      for (const variant of VARIANTS) {
        const done: PostcopyLatencyRun[] = [];
        const loadBefore = load();
        for (let rep = 1; rep <= runs; rep++) {
          ctx.progress(`postcopy: page-request latency, ${variant.label}, ${GUEST_MIB} MiB, run ${rep}/${runs}`);
          try {
            const run = await measurePostcopyLatency({ sizeMiB: GUEST_MIB, layout: variant.layout, preempt: variant.preempt, postcopyBytesPerSec: variant.postcopyBytesPerSec });
            if (variant.preempt && run.preemptBytesWritten === 0) throw new Error('no byte went on the preempt channel');
            done.push(run);
          } catch (error) {
            note(`postcopy latency (${variant.label}) run ${rep}: ${(error as Error).message}`);
          }
        }
        const faultNs = done.flatMap((r) => r.latenciesNs).sort((a, b) => a - b);
        if (faultNs.length === 0) continue;
        const faultMs = faultNs.map((ns) => ns / 1e6);
        const preemptNote = variant.preempt ? `; preempt channel ${done.map((r) => r.preemptBytesReceived).join('/')} bytes received per run` : '';
        const push = variant.postcopyBytesPerSec === 0 ? 'uncapped' : `capped at ${variant.postcopyBytesPerSec / MiB} MiB/s (max-postcopy-bandwidth)`;
        const common = `${faultNs.length} vCPU faults over ${done.length} run(s) of a ${GUEST_MIB} MiB guest (random workload), background push ${push}`;
        rows.push({ group: 'postcopy', name: `page-request latency p50, ${variant.label}`, value: percentile(faultNs, 50) / 1e6, unit: 'ms', samples: faultMs, note: `${common}${preemptNote}` });
        rows.push({
          group: 'postcopy', name: `page-request latency p99, ${variant.label}`, value: percentile(faultNs, 99) / 1e6, unit: 'ms', samples: faultMs, versus,
          goal: { value: 1, better: 'lower', text: '< 1 ms' },
          note: `${cpuNote(done)}; load average ${loadBefore} → ${load()}`,
        });
      }
      return rows;
    },
  };
}
