/**
 * The `livemig` benchmark group: real-mode livemig → livemig migrations between two
 * `livemig vm` processes on loopback TCP, driven over QMP (as vm-pair-bench.test.ts), each
 * beside the QEMU → QEMU figure of the same run (the `qemu` group's baselines when it ran
 * first with the same size, else measured here with qemuBaselines) and the loopback limit
 * (Node socket pump, 1 MiB writes). Modes:
 *   - precopy of non-zero RAM (every page a PAGE record): GB/s, goals ≥ 1.5× QEMU (a QEMU
 *     destination with its RAM preallocated, as livemig's is prefaulted), ≥ 50% loopback;
 *   - precopy of all-zero RAM: end-to-end ms, goal ≤ QEMU's;
 *   - precopy over TLS (tls-creds-x509, the QEMU group's certificates): GB/s against QEMU TLS
 *     and against livemig's own plain precopy (the TLS cost);
 *   - a QEMU 7.2 source feeding a livemig destination (qemu-source.ts) against QEMU → QEMU;
 * GB/s = RAM bytes / (migrate command → destination `completed` event), as in the qemu group.
 * Each precopy row's note also gives the CPU time (user + system) each livemig process spent
 * per GiB, the figure that tuning changes when the machine is loaded.
 * 2 GiB, median of 3 (--quick: 256 MiB, 1 run). LIVEMIG_BENCH_CPU_PROF=DIR profiles each VM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QmpClient } from '../harness/qmp-client.ts';
import { processCpuMs } from '../harness/process-util.ts';
import { makeQemuTlsCreds, type PrecopyRun } from '../harness/qemu-migrate.ts';
import { writePatternFile } from '../harness/ram-pattern.ts';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { measureLoopbackBytesPerSec } from '../transport/loopback.ts';
import { GiB, MiB } from '../lib/units.ts';
import { cpuPerGiBNote, lastQemuBaselines, qemuBaselines, type QemuBaselines, type QemuMode } from './qemu-group.ts';
import { qemuToLivemigOnce } from './qemu-source.ts';
import { benchSettleMs, type BenchContext, type BenchGroup } from './registry.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

const LIVEMIG = fileURLToPath(new URL('../../bin/livemig.js', import.meta.url));

type Mode = 'precopy' | 'zero' | 'tls';


interface PairRun {
  readonly endToEndMs: number;
  /** CPU time (user + system) each process spent from `migrate` to the destination's completion, ms. */
  readonly sourceCpuMs: number;
  readonly destCpuMs: number;
  readonly totalTimeMs: number;
  readonly downtimeMs: number;
}

/** LIVEMIG_BENCH_CPU_PROF=DIR: each `livemig vm` writes a V8 CPU profile into DIR at exit. */
function profileArgs(): string[] {
  const dir = process.env.LIVEMIG_BENCH_CPU_PROF;
  return dir === undefined || dir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/**
 * CPU time of a child so far (processCpuMs), ms. On a loaded machine wall time varies with the
 * scheduler; CPU per GiB moved is the figure tuning changes.
 */
function cpuMsOf(child: ChildProcess): number {
  return processCpuMs(child.pid);
}

/** The profiles are written at a normal exit: `quit` each VM and wait for it to exit. */
async function quitForProfiles(clients: readonly QmpClient[], children: readonly ChildProcess[]): Promise<void> {
  const exited = children.map((child) => (child.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()))));
  for (const c of clients) await c.execute('quit').catch(() => undefined);
  await Promise.race([Promise.all(exited), new Promise((resolve) => setTimeout(resolve, 10_000))]);
}

export async function migrateOnce(dir: string, sizeBytes: number, mode: Mode, patternPath: string, tlsDir: string | null): Promise<PairRun> {
  const children: ChildProcess[] = [];
  const clients: QmpClient[] = [];
  const run = join(dir, `run-${process.hrtime.bigint()}`);
  const spawnVm = (args: string[]): void => {
    let stderr = '';
    const child = spawn(process.execPath, [...profileArgs(), LIVEMIG, 'vm', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (c: Buffer) => void (stderr = (stderr + c.toString()).slice(-4000)));
    child.on('exit', (code) => { if (code !== 0 && code !== null) process.stderr.write(`livemig vm exited ${code}: ${stderr}\n`); });
    children.push(child);
  };
  try {
    const machine = ['-M', 'none,memory-backend=mem'];
    const srcMem = mode === 'zero' ? `memory-backend-ram,id=mem,size=${sizeBytes}` : `memory-backend-file,id=mem,size=${sizeBytes},mem-path=${patternPath}`;
    const tls = (endpoint: string): string[] => (tlsDir === null ? [] : ['-object', `tls-creds-x509,id=tls0,dir=${tlsDir},endpoint=${endpoint}`]);
    spawnVm([...machine, '-object', srcMem, ...tls('client'), '-qmp', `unix:${run}-s.sock,server=on,wait=off`]);
    // With TLS the destination must know its credentials before it listens (as QEMU: defer).
    const incoming = tlsDir === null ? 'tcp:127.0.0.1:0' : 'defer';
    spawnVm([...machine, '-object', `memory-backend-ram,id=mem,size=${sizeBytes}`, ...tls('server'), '-incoming', incoming, '-qmp', `unix:${run}-d.sock,server=on,wait=off`]);
    const src = await QmpClient.connectUnix(`${run}-s.sock`, { timeoutMs: 60_000 });
    clients.push(src);
    const dst = await QmpClient.connectUnix(`${run}-d.sock`, { timeoutMs: 60_000 });
    clients.push(dst);
    const caps = { capabilities: [{ capability: 'events', state: true }] };
    await src.execute('migrate-set-capabilities', caps);
    await dst.execute('migrate-set-capabilities', caps);
    await src.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 ** 3, ...(tlsDir === null ? {} : { 'tls-creds': 'tls0' }) });
    if (tlsDir !== null) {
      await dst.execute('migrate-set-parameters', { 'tls-creds': 'tls0' });
      await dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    }
    const listening = await dst.execute<{ 'socket-address': Array<{ port: string }> }>('query-migrate');
    await new Promise((resolve) => setTimeout(resolve, benchSettleMs()));
    const cpuBefore = children.map(cpuMsOf);
    const started = process.hrtime.bigint();
    await src.execute('migrate', { uri: `tcp:127.0.0.1:${listening['socket-address'][0].port}` });
    await dst.waitEvent('MIGRATION', (e) => ['completed', 'failed'].includes((e.data as { status: string }).status), 300_000);
    const endToEndMs = Number(process.hrtime.bigint() - started) / 1e6;
    const [sourceCpuMs, destCpuMs] = children.map((c, i) => cpuMsOf(c) - cpuBefore[i]);
    const info = await src.waitMigration(['completed', 'failed'], 60_000);
    if (info.status !== 'completed') throw new Error(`livemig ${mode} migration ${info.status}: ${String(info['error-desc'] ?? 'no error-desc')}`);
    return { endToEndMs, sourceCpuMs, destCpuMs, totalTimeMs: info['total-time'] as number, downtimeMs: info.downtime as number };
  } finally {
    if (profileArgs().length > 0) await quitForProfiles(clients, children);
    for (const c of clients) c.close();
    for (const child of children) if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }
}

export function makeLivemigGroup(full = { sizeBytes: 2 * GiB, runs: 3 }, quick = { sizeBytes: 256 * MiB, runs: 1 }): BenchGroup {
  return {
    name: 'livemig',
    description: 'real mode over loopback TCP: livemig → livemig (non-zero, all-zero, TLS), QEMU → livemig; against QEMU → QEMU of the same run and the loopback limit',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const { sizeBytes, runs } = ctx.quick ? quick : full;
      const note = ctx.note ?? ctx.progress;
      const size = sizeBytes >= GiB ? `${sizeBytes / GiB} GiB` : `${sizeBytes / MiB} MiB`;
      const dir = makeTempDir('livemig-bench-pair-');
      const patternPath = join('/dev/shm', `livemig-bench-${process.pid}.ram`);
      const rows: BenchRow[] = [];
      try {
        ctx.progress(`livemig: writing ${size} of pattern RAM`);
        writePatternFile(patternPath, sizeBytes);
        let tlsDir: string | null = null;
        try {
          tlsDir = makeQemuTlsCreds(join(dir, 'tls'));
        } catch (error) {
          note(`TLS not measured: making the x509 credentials failed: ${(error as Error).message}`);
        }
        const modes: Mode[] = tlsDir === null ? ['precopy', 'zero'] : ['precopy', 'zero', 'tls'];
        const samples = new Map<Mode, PairRun[]>();
        const fromQemu: number[] = [];
        const fromQemuRuns: PrecopyRun[] = [];
        for (let rep = 1; rep <= runs; rep++) {
          for (const mode of modes) {
            ctx.progress(`livemig: ${mode}, ${size}, run ${rep}/${runs}`);
            try {
              const r = await migrateOnce(dir, sizeBytes, mode, patternPath, mode === 'tls' ? tlsDir : null);
              samples.set(mode, [...(samples.get(mode) ?? []), r]);
            } catch (error) {
              note(`livemig ${mode} run ${rep}: ${(error as Error).message}`);
            }
          }
          ctx.progress(`livemig: QEMU 7.2 source → livemig destination, ${size}, run ${rep}/${runs}`);
          try {
            const run = await qemuToLivemigOnce(sizeBytes, patternPath, ctx.clockNs);
            fromQemu.push(sizeBytes / (run.endToEndMs * 1e6));
            fromQemuRuns.push(run);
          } catch (error) {
            note(`QEMU → livemig run ${rep}: ${(error as Error).message}`);
          }
        }
        ctx.progress('livemig: loopback limit (Node socket pump, 1 MiB writes)');
        const loopback = (await measureLoopbackBytesPerSec(512 * MiB, MiB)) / 1e9;
        let qemu: QemuBaselines | null = lastQemuBaselines !== null && lastQemuBaselines.sizeBytes === sizeBytes ? lastQemuBaselines : null;
        if (qemu === null) {
          ctx.progress('livemig: QEMU baselines (the qemu group did not run first at this size)');
          qemu = await qemuBaselines({ sizeBytes, runs, modes: ['precopy', 'precopy-prealloc', 'zero', 'tls'] satisfies QemuMode[], progress: ctx.progress, clockNs: ctx.clockNs });
        }
        const q = (mode: QemuMode): { gb: number; ms: number } | null => {
          const b = qemu?.modes[mode];
          return b?.kind === 'precopy' ? { gb: b.medianGbPerSec, ms: b.medianEndToEndMs } : null;
        };
        if (qemu.skipped !== null) note(`QEMU baselines: ${qemu.skipped}`);
        const gbs = (mode: Mode): number[] => (samples.get(mode) ?? []).map((r) => sizeBytes / (r.endToEndMs * 1e6));
        const cpu = (mode: Mode): string => {
          const s = samples.get(mode) ?? [];
          const perGiB = (ms: number): string => ((ms * GiB) / sizeBytes).toFixed(0);
          return `CPU per GiB: source ${perGiB(median(s.map((r) => r.sourceCpuMs)))} ms, destination ${perGiB(median(s.map((r) => r.destCpuMs)))} ms`;
        };
        // The throughput goals compare with a QEMU destination whose RAM is preallocated, as
        // livemig's destination prefaults its own while it listens; the plain destination's
        // figure (first-touch faults inside the migration) goes in the note.
        const plainNote = (): string => {
          const plain = q('precopy');
          return plain === null ? '' : `; QEMU→QEMU with a plain destination (faults in its RAM during the migration): ${plain.gb.toFixed(3)} GB/s`;
        };
        const pre = gbs('precopy');
        if (pre.length > 0) {
          const qp = q('precopy-prealloc');
          const value = median(pre);
          rows.push({
            group: 'livemig', name: `livemig → livemig precopy, non-zero RAM, ${size}`, value, unit: 'GB/s', samples: pre,
            versus: qp === null ? undefined : { name: 'QEMU→QEMU prealloc', value: qp.gb },
            goal: qp === null ? undefined : { value: 1.5 * qp.gb, better: 'higher', text: '>= 1.5x QEMU' },
            note: `median of ${pre.length}; end to end (migrate → destination completed); downtime ${median(samples.get('precopy')!.map((r) => r.downtimeMs))} ms; ${cpu('precopy')}${plainNote()}`,
          });
          rows.push({
            group: 'livemig', name: `livemig → livemig precopy vs loopback, ${size}`, value, unit: 'GB/s', samples: pre,
            versus: { name: 'loopback pump', value: loopback },
            goal: { value: 0.5 * loopback, better: 'higher', text: '>= 50% loopback' },
          });
        }
        const zero = (samples.get('zero') ?? []).map((r) => r.endToEndMs);
        if (zero.length > 0) {
          const qz = q('zero');
          rows.push({
            group: 'livemig', name: `livemig → livemig all-zero RAM, ${size}, total time`, value: median(zero), unit: 'ms', samples: zero,
            versus: qz === null ? undefined : { name: 'QEMU→QEMU', value: qz.ms },
            goal: qz === null ? undefined : { value: qz.ms, better: 'lower', text: "<= QEMU's" },
            note: cpu('zero'),
          });
        }
        if (fromQemu.length > 0) {
          const qp = q('precopy-prealloc');
          rows.push({
            group: 'livemig', name: `QEMU source → livemig destination, non-zero RAM, ${size}`, value: median(fromQemu), unit: 'GB/s', samples: fromQemu,
            versus: qp === null ? undefined : { name: 'QEMU→QEMU prealloc', value: qp.gb },
            goal: qp === null ? undefined : { value: 1.5 * qp.gb, better: 'higher', text: '>= 1.5x QEMU dest' },
            note: `median of ${fromQemu.length}; livemig-qemu destination, timed as the qemu group times QEMU → QEMU; ` +
              cpuPerGiBNote(fromQemuRuns, sizeBytes, ['QEMU source', 'livemig destination']) + plainNote(),
          });
        }
        const tls = gbs('tls');
        if (tls.length > 0) {
          const qt = q('tls');
          rows.push({
            group: 'livemig', name: `livemig → livemig precopy over TLS, ${size}`, value: median(tls), unit: 'GB/s', samples: tls,
            versus: qt === null ? undefined : { name: 'QEMU TLS', value: qt.gb },
            note: cpu('tls'),
          });
          if (pre.length > 0) {
            rows.push({ group: 'livemig', name: `livemig TLS cost: TLS / plain precopy`, value: median(tls), unit: 'GB/s', samples: tls, versus: { name: 'livemig plain', value: median(pre) } });
          }
        }
        // MULTIFD ROWS GO HERE: livemig multifd with 2 and 4 channels in real mode is being built on
        // another branch; its rows (against the qemu group's multifd-2/multifd-4) belong here.
        note('livemig multifd with 2 and 4 channels: the multifd group');
        return rows;
      } finally {
        removeTempDir(patternPath);
        removeTempDir(dir);
      }
    },
  };
}
