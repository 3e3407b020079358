// Postcopy page-request latency as the bench measures it (src/bench/postcopy-latency.ts), two
// runs: `node --import tsx scripts/perf/postcopy-latency.ts [GUEST_MIB] [POSTCOPY_BYTES_PER_SEC]`.
import { measurePostcopyLatency, percentile } from '../../src/bench/postcopy-latency.ts';

for (let i = 0; i < 2; i++) {
  const r = await measurePostcopyLatency(Number(process.argv[2] ?? 256), Number(process.argv[3] ?? 0));
  const ms = (p: number): string => (percentile(r.latenciesNs, p) / 1e6).toFixed(3);
  console.log(`faults ${r.latenciesNs.length} requests ${r.requestsSent} placed ${r.pagesPlacedAfterSwitch} p50 ${ms(50)} p90 ${ms(90)} p99 ${ms(99)} max ${ms(100)}`);
}
process.exit(0);
