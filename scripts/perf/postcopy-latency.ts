// Postcopy page-request latency as the bench measures it (src/bench/postcopy-latency.ts):
// `node --import tsx scripts/perf/postcopy-latency.ts [LAYOUT] [PREEMPT] [RUNS] [POSTCOPY_BYTES_PER_SEC] [GUEST_MIB]`
// LAYOUT in-process|processes (default processes), PREEMPT 0|1 (default 1), RUNS (default 3),
// POSTCOPY_BYTES_PER_SEC the source's max-postcopy-bandwidth (default 0, unlimited).
// LIVEMIG_BENCH_HOPS=1 also prints where the time of each request went (src/bench/postcopy-hops.ts).
import { loadavg } from 'node:os';
import { measurePostcopyLatency, percentile, type LatencyLayout } from '../../src/bench/postcopy-latency.ts';
import { formatHops, joinHops, type FaultHops } from '../../src/bench/postcopy-hops.ts';
import { formatSched } from '../../src/bench/schedstat.ts';

const [layout = 'processes', preempt = '1', runs = '3', bps = '0', size = '256'] = process.argv.slice(2);
const ms = (sorted: readonly number[], p: number): string => (percentile(sorted, p) / 1e6).toFixed(2);
const all: number[] = [];
const hops: FaultHops[] = [];
for (let i = 0; i < Number(runs); i++) {
  const r = await measurePostcopyLatency({ sizeMiB: Number(size), layout: layout as LatencyLayout, preempt: preempt === '1', postcopyBytesPerSec: Number(bps) });
  all.push(...r.latenciesNs);
  if (r.faults !== undefined) hops.push(...joinHops(r.faults, r.destHops ?? [], r.sourceHops ?? []));
  console.log(`run ${i}: faults ${r.latenciesNs.length} requests ${r.requestsSent} p50 ${ms(r.latenciesNs, 50)} p99 ${ms(r.latenciesNs, 99)} ms; CPU source ${r.sourceCpuMs.toFixed(0)} ms destination ${r.cpuMs.toFixed(0)} ms; preempt bytes ${r.preemptBytesWritten}; load ${loadavg()[0].toFixed(2)}`);
  if (r.sourceThreads !== undefined) console.log(`  source threads: ${formatSched(r.sourceThreads)}`);
  if (r.threads !== undefined) console.log(`  destination threads: ${formatSched(r.threads)}`);
}
all.sort((a, b) => a - b);
console.log(`all: faults ${all.length} p50 ${ms(all, 50)} p90 ${ms(all, 90)} p99 ${ms(all, 99)} max ${ms(all, 100)} ms`);
if (hops.length > 0) console.log(formatHops(hops, 0.05));
process.exit(0);
