// The fuzz soak: runs each fuzz property file with LIVEMIG_FUZZ_RUNS cases per property
// (100,000 unless given: `node scripts/soak-fuzz.mjs [cases]`), one file at a time, and prints
// a table of cases, crashes (a failed property: any exception or broken oracle), hangs (the file
// outlived HANG_TIMEOUT_MS and was killed) and wall time. Exits 1 on any crash or hang.
import { spawnSync } from 'node:child_process';

const FUZZERS = [
  ['stream decoder', 'src/format/stream-fuzz.test.ts', 'mutations of real streams'],
  ['return path decoder', 'src/format/return-path.test.ts', 'fuzz:'],
  ['QMP input lines', 'src/qmp/fuzz.test.ts', 'fuzz:'],
  ['virtqueue rings (hostile guest)', 'src/devices/virtio/split-queue-fuzz.test.ts', 'hostile rings'],
  ['balloon free page hints', 'src/sim/balloon-hint-fuzz.test.ts', 'hostile free page hint'],
];
const HANG_TIMEOUT_MS = 60 * 60 * 1000;

const cases = Number(process.argv[2] ?? 100_000);
if (!Number.isSafeInteger(cases) || cases <= 0) {
  console.error(`soak-fuzz: the case count must be a positive integer, got '${process.argv[2]}'`);
  process.exit(2);
}
const root = new URL('..', import.meta.url).pathname;
let bad = 0;
console.log(`fuzz soak: ${cases} cases per property`);
console.log('fuzzer                           cases    crashes  hangs  time');
for (const [name, file, pattern] of FUZZERS) {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-name-pattern', pattern, file], {
    cwd: root,
    env: { ...process.env, LIVEMIG_FUZZ_RUNS: String(cases) },
    encoding: 'utf8',
    timeout: HANG_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const hung = result.error?.code === 'ETIMEDOUT' || result.signal !== null;
  const ran = /^# pass [1-9]/m.test(result.stdout ?? '');
  const crashed = !hung && (result.status !== 0 || !ran);
  if (hung || crashed) {
    bad++;
    process.stderr.write(`--- ${name} (${file}) ---\n${result.stdout ?? ''}${result.stderr ?? ''}\n`);
  }
  console.log(`${name.padEnd(32)} ${String(cases).padEnd(8)} ${String(crashed ? 1 : 0).padEnd(8)} ${String(hung ? 1 : 0).padEnd(6)} ${seconds.toFixed(1)} s`);
}
process.exit(bad === 0 ? 0 : 1);
