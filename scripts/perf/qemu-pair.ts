// QEMU 7.2 → QEMU 7.2 and QEMU 7.2 → livemig precopy of non-zero RAM, as the bench runs them,
// with each process's CPU time: `node --import tsx scripts/perf/qemu-pair.ts SIZE_MIB [RUNS]`.
// Prints per run GB/s (migrate → destination completed) and CPU per GiB of source and
// destination (user + system from /proc/PID/stat, `migrate` → destination completed).
import { join } from 'node:path';
import { measurePrecopy, writePatternFile, type PrecopyRun } from '../../src/harness/qemu-migrate.ts';
import { removeTempDir } from '../../src/harness/ram-image.ts';
import { qemuToLivemigOnce } from '../../src/bench/qemu-source.ts';

const sizeBytes = Number(process.argv[2] ?? 1024) * 1024 * 1024;
const runs = Number(process.argv[3] ?? 1);
const pattern = join('/dev/shm', `livemig-perf-qemu-pair-${process.pid}.ram`);
const show = (what: string, r: PrecopyRun): void => {
  const perGiB = (ms: number | null): string => (ms === null ? 'n/a' : ((ms * 1024 ** 3) / sizeBytes).toFixed(0));
  console.log(`${what}: ${(sizeBytes / r.endToEndMs / 1e6).toFixed(3)} GB/s, end to end ${r.endToEndMs.toFixed(0)} ms, CPU per GiB: source ${perGiB(r.sourceCpuMs)} ms, destination ${perGiB(r.destinationCpuMs)} ms`);
};
try {
  writePatternFile(pattern, sizeBytes);
  for (let i = 0; i < runs; i++) {
    show('QEMU → QEMU   ', await measurePrecopy({ sizeBytes, source: { kind: 'file', path: pattern }, watchdogMs: 300_000, timeoutMs: 300_000 }));
    show('QEMU → livemig', await qemuToLivemigOnce(sizeBytes, pattern));
  }
} finally {
  removeTempDir(pattern);
}
