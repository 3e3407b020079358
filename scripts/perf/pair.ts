// One livemig → livemig pair, as the bench's livemig group runs it, for profiling and quick
// before/after checks: `node --import tsx scripts/perf/pair.ts MODE SIZE_MIB [RUNS]`, MODE one
// of precopy | zero | tls. Prints each run's end-to-end time, CPU of each process and GB/s.
// LIVEMIG_BENCH_CPU_PROF=DIR writes a CPU profile per VM; LIVEMIG_BENCH_SETTLE_MS as in the bench.
import { join } from 'node:path';
import { migrateOnce } from '../../src/bench/livemig-group.ts';
import { makeQemuTlsCreds } from '../../src/harness/qemu-migrate.ts';
import { writePatternFile } from '../../src/harness/ram-pattern.ts';
import { makeTempDir, removeTempDir } from '../../src/harness/ram-image.ts';

const mode = (process.argv[2] ?? 'precopy') as 'precopy' | 'zero' | 'tls';
const sizeBytes = Number(process.argv[3] ?? 1024) * 1024 * 1024;
const runs = Number(process.argv[4] ?? 1);
const dir = makeTempDir('livemig-perf-pair-');
const pattern = join('/dev/shm', `livemig-perf-pair-${process.pid}.ram`);
try {
  writePatternFile(pattern, sizeBytes);
  const tls = mode === 'tls' ? makeQemuTlsCreds(join(dir, 'tls')) : null;
  for (let i = 0; i < runs; i++) {
    const r = await migrateOnce(dir, sizeBytes, mode, pattern, tls);
    console.log(mode, sizeBytes, JSON.stringify(r), (sizeBytes / r.endToEndMs / 1e6).toFixed(3), 'GB/s');
  }
} finally {
  removeTempDir(pattern);
  removeTempDir(dir);
}
