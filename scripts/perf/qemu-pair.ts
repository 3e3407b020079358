// QEMU 7.2 → QEMU 7.2 and QEMU 7.2 → livemig precopy of non-zero RAM, as the bench runs them,
// with each process's CPU time: `node --import tsx scripts/perf/qemu-pair.ts SIZE_MIB [RUNS]`.
// Prints per run GB/s (migrate → destination completed), QEMU's downtime, and CPU per GiB of
// source and destination (user + system from /proc/PID/stat, `migrate` → destination
// completed). QEMU → QEMU runs twice: as the bench runs it (migrate at once), and after the
// same 1 s wait the QEMU → livemig run gives its destination.
import { join } from 'node:path';
import { runPrecopy, startMigrationPair, type PrecopyRun } from '../../src/harness/qemu-migrate.ts';
import { writePatternFile } from '../../src/harness/ram-pattern.ts';
import { sleep } from '../../src/harness/process-util.ts';
import { removeTempDir } from '../../src/harness/ram-image.ts';
import { qemuToLivemigOnce } from '../../src/bench/qemu-source.ts';

const sizeBytes = Number(process.argv[2] ?? 1024) * 1024 * 1024;
const runs = Number(process.argv[3] ?? 1);
const pattern = join('/dev/shm', `livemig-perf-qemu-pair-${process.pid}.ram`);
const show = (what: string, r: PrecopyRun): void => {
  const perGiB = (ms: number | null): string => (ms === null ? 'n/a' : ((ms * 1024 ** 3) / sizeBytes).toFixed(0));
  console.log(`${what}: ${(sizeBytes / r.endToEndMs / 1e6).toFixed(3)} GB/s, end to end ${r.endToEndMs.toFixed(0)} ms, downtime ${r.downtimeMs} ms, CPU per GiB: source ${perGiB(r.sourceCpuMs)} ms, destination ${perGiB(r.destinationCpuMs)} ms`);
};
try {
  writePatternFile(pattern, sizeBytes);
  for (let i = 0; i < runs; i++) {
    for (const settleMs of [0, 1000]) {
      const pair = await startMigrationPair({ sizeBytes, source: { kind: 'file', path: pattern }, watchdogMs: 300_000 });
      try {
        await sleep(settleMs);
        show(`QEMU → QEMU, after ${settleMs} ms`, await runPrecopy(pair, sizeBytes, 300_000));
      } finally {
        await pair.stop();
      }
    }
    show('QEMU → livemig, after 1000 ms', await qemuToLivemigOnce(sizeBytes, pattern));
  }
} finally {
  removeTempDir(pattern);
}
