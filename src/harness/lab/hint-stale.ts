/**
 * `npm run lab -- --hint-stale`: one ramdiff-style run (a port of guest-lab's ramdiff.py `one`)
 * against the local QEMU. The source boots the lab guest, its workload finishes, it migrates
 * precopy over loopback TCP to a destination started with `-S`, so the destination stays paused
 * after the switchover; both sides then dump guest-physical RAM (QMP pmemsave, into /dev/shm)
 * and the dumps are compared page by page (ramdiff.ts). Then the destination runs for `postS`
 * seconds and its serial console is searched for an oops.
 *
 * The source runs with QEMU's trace events for the bitmap sync (`migration_bitmap_sync_start`)
 * and for the clear_bmap chunk clears (`migration_bitmap_clear_dirty`, KVM manual-protect only)
 * written to a log file, and both are counted. QEMU 7.2 has no trace event for an applied free
 * page hint, so hinted ranges are not known: a `both_nonzero` page is stale in-use memory
 * whether or not it was hinted (hinted-and-held pages are zero under init_on_alloc=1 and show
 * as `src_zero`).
 *
 * `accel` is `tcg` (the lab's setup) or `kvm` (needs /dev/kvm): the same run under KVM is the
 * experiment that separates a hinting race from TCG's dirty-tracking bug
 * (docs/hinting-stale-pages.md). `unalignedRam` gives the guest 8 KiB less than `memMib` MiB,
 * so the RAM block's length is no multiple of 64 pages: QEMU < 9.0 then syncs the dirty bitmap
 * through its slow path (cpu_physical_memory_test_and_clear_dirty), which resets TCG's TLB dirty
 * state, instead of the word-wise fast path that does not (the bug 03bfc2188f fixed). Hinting
 * is the same either way, so the pair separates the two explanations under TCG too.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startQemu, type QemuProcess } from '../qemu.ts';
import type { MigrationInfo } from '../qmp-client.ts';
import { makeTempDir, removeTempDir } from '../ram-image.ts';
import { sleep } from '../process-util.ts';
import { LAB_BW, OOPS, freePort, vmArgs } from './lab-run.ts';
import { RamDiffer, rangeText, zeroRunText, ZERO_RUN_PAGES_MIN, type RamDiff } from './ramdiff.ts';
import { SerialLog } from './serial-log.ts';

export interface HintStaleOptions {
  readonly vmlinuz: string;
  readonly initrd: string;
  readonly memMib: number;
  readonly wl: 'idle' | 'alloc';
  readonly hint: boolean;
  readonly bw: string;
  readonly initOnAlloc: boolean;
  readonly accel: 'tcg' | 'kvm';
  /** RAM is memMib MiB less 8 KiB (see the header). */
  readonly unalignedRam: boolean;
  /** Where the two RAM dumps go (default /dev/shm). */
  readonly dumpDir: string;
  readonly postS: number;
}

export interface HintStaleRecord {
  readonly accel: 'tcg' | 'kvm';
  readonly ramKib: number;
  readonly memMib: number;
  readonly hint: boolean;
  readonly initOnAlloc: boolean;
  readonly bw: string;
  status: string;
  error?: string;
  transferred?: number;
  dirtySyncCount?: number;
  /** Trace events counted on the source. */
  traceSyncs?: number;
  traceChunkClears?: number;
  pages?: RamDiff['pages'];
  /** Ranges other than src_zero (the ones that matter), at most 20. */
  staleRanges?: string[];
  /** The source's zero pages after the migration, and their runs of ZERO_RUN_PAGES_MIN or more (at most 400): its layout. */
  sourceZeroPages?: number;
  sourceZeroRuns?: string[];
  dstOops?: string[];
}

const TRACE_EVENTS = ['migration_bitmap_sync_start', 'migration_bitmap_clear_dirty'];
const UNALIGNED_TAIL_KIB = 8;

/** `args` with the value after `-m` replaced by `ramKib` KiB. */
function withRam(args: readonly string[], ramKib: number): string[] {
  const out = [...args];
  const i = out.indexOf('-m');
  if (i < 0) throw new Error('lab VM arguments have no -m');
  out[i + 1] = `${ramKib}K`;
  return out;
}
const CHUNK_BYTES = 1 << 20;

async function waitMigration(vm: QemuProcess, timeoutMs: number): Promise<MigrationInfo> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const info = await vm.qmp.execute<MigrationInfo>('query-migrate');
    if (['completed', 'failed', 'cancelled'].includes(info.status ?? '') || performance.now() > deadline) return info;
    await sleep(50);
  }
}

function compareDumps(sourcePath: string, destinationPath: string, bytes: number): RamDiff {
  const differ = new RamDiffer();
  const a = new Uint8Array(CHUNK_BYTES);
  const b = new Uint8Array(CHUNK_BYTES);
  const fa = openSync(sourcePath, 'r');
  const fb = openSync(destinationPath, 'r');
  try {
    for (let pos = 0; pos < bytes; pos += CHUNK_BYTES) {
      const n = Math.min(CHUNK_BYTES, bytes - pos);
      if (readSync(fa, a, 0, n, pos) !== n || readSync(fb, b, 0, n, pos) !== n) throw new Error(`short RAM dump at ${pos}`);
      differ.push(a.subarray(0, n), b.subarray(0, n));
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return differ.result();
}

/** One run; failures are recorded (status 'error'), not thrown. */
export async function hintStaleRun(o: HintStaleOptions): Promise<HintStaleRecord> {
  const append = `console=ttyS0 panic=-1 quiet wl=${o.wl} wl_pct=70 period=0.5${o.initOnAlloc ? '' : ' init_on_alloc=0'}`;
  const ramKib = o.memMib * 1024 - (o.unalignedRam ? UNALIGNED_TAIL_KIB : 0);
  const res: HintStaleRecord = { accel: o.accel, ramKib, memMib: o.memMib, hint: o.hint, initOnAlloc: o.initOnAlloc, bw: o.bw, status: 'error' };
  const work = makeTempDir('livemig-hint-stale-');
  const tracePath = join(work, 'src.trace');
  const dumps = [join(o.dumpDir, `livemig-src-${process.pid}.ram`), join(o.dumpDir, `livemig-dst-${process.pid}.ram`)] as const;
  const srcLog = new SerialLog(join(work, 'src.serial'));
  const dstLog = new SerialLog(join(work, 'dst.serial'));
  const vm = { memMib: o.memMib, hint: o.hint, vmlinuz: o.vmlinuz, initrd: o.initrd };
  let src: QemuProcess | null = null;
  let dst: QemuProcess | null = null;
  try {
    const trace = ['-D', tracePath, ...TRACE_EVENTS.flatMap((e) => ['-trace', `enable=${e}`])];
    src = await startQemu({ name: 'stale-src', args: [...withRam(vmArgs(vm, srcLog.path, append, false, o.accel), ramKib), ...trace], watchdogMs: 1_800_000, connectTimeoutMs: 60_000 });
    const s = src;
    await srcLog.waitFor(/^GL ready /, 780_000, () => s.running);
    await sleep(3000);
    const port = await freePort();
    dst = await startQemu({ name: 'stale-dst', args: [...withRam(vmArgs(vm, dstLog.path, append, true, o.accel), ramKib), '-S'], watchdogMs: 1_800_000, connectTimeoutMs: 60_000 });
    const caps = { capabilities: [{ capability: 'events', state: true }] };
    await dst.qmp.execute('migrate-set-capabilities', caps);
    await dst.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    await s.qmp.execute('migrate-set-capabilities', caps);
    await s.qmp.execute('migrate-set-parameters', { 'max-bandwidth': LAB_BW[o.bw] ?? Number(o.bw) });
    await s.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const info = await waitMigration(s, 300_000);
    res.status = info.status ?? 'unknown';
    if (res.status !== 'completed') return res;
    const done = await waitMigration(dst, 5_000);
    if (done.status !== 'completed') throw new Error(`destination migration status ${done.status ?? 'unknown'}`);
    res.transferred = info.ram?.transferred;
    res.dirtySyncCount = info.ram?.['dirty-sync-count'];
    const size = ramKib * 1024;
    await s.qmp.execute('pmemsave', { val: 0, size, filename: dumps[0] });
    await dst.qmp.execute('pmemsave', { val: 0, size, filename: dumps[1] });
    const diff = compareDumps(dumps[0], dumps[1], size);
    res.pages = diff.pages;
    res.staleRanges = diff.ranges.filter((r) => r.category !== 'src_zero').slice(0, 20).map(rangeText);
    res.sourceZeroPages = diff.sourceZero.pages;
    res.sourceZeroRuns = diff.sourceZero.runs.slice(0, 400).map(zeroRunText);
    await dst.qmp.execute('cont');
    const d = dst;
    const until = performance.now() + o.postS * 1000;
    while (performance.now() < until && d.running) {
      dstLog.poll();
      await sleep(100);
    }
    dstLog.poll();
    res.dstOops = dstLog.lines.filter((l) => OOPS.some((k) => l.text.includes(k))).slice(0, 6).map((l) => l.text.slice(0, 160));
  } catch (error) {
    res.status = 'error';
    res.error = `${(error as Error).name}: ${(error as Error).message}`;
  } finally {
    for (const p of [dst, src]) if (p !== null) await p.stop();
    if (existsSync(tracePath)) {
      const text = readFileSync(tracePath, 'utf8');
      res.traceSyncs = text.split('migration_bitmap_sync_start').length - 1;
      res.traceChunkClears = text.split('migration_bitmap_clear_dirty').length - 1;
    }
    for (const p of dumps) if (existsSync(p)) unlinkSync(p);
    removeTempDir(work);
  }
  return res;
}

/** One line per run. */
export function hintStaleLine(r: HintStaleRecord): string {
  const head = `accel=${r.accel} ram=${r.ramKib}K hint=${r.hint ? 'on' : 'off'} init_on_alloc=${r.initOnAlloc ? 1 : 0} bw=${r.bw}: ${r.status}`;
  if (r.pages === undefined) return `${head}${r.error !== undefined ? ` (${r.error})` : ''}`;
  const p = r.pages;
  return `${head}, ${((r.transferred ?? 0) / 1048576).toFixed(1)} MiB, syncs ${String(r.dirtySyncCount)} (trace ${String(r.traceSyncs)}), ` +
    `chunk clears ${String(r.traceChunkClears)}; pages same ${p.same} src_zero ${p.src_zero} dst_zero ${p.dst_zero} ` +
    `both_nonzero (stale) ${p.both_nonzero}; dst oops: ${r.dstOops?.[0] ?? 'none'}\n  stale ranges: ${r.staleRanges?.join(', ') || 'none'}` +
    `\n  source zero pages ${String(r.sourceZeroPages)}, ${r.sourceZeroRuns?.length ?? 0} runs of ${ZERO_RUN_PAGES_MIN}+ pages: ${r.sourceZeroRuns?.slice(0, 12).join(', ') || 'none'}`;
}
