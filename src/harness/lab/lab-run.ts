/**
 * One guest-lab run (a port of guest-lab's run-matrix.py one_run): boot a source VM (Debian
 * kernel + lab initramfs under TCG, virtio-balloon with free-page-hint on or off), let its
 * workload finish, start a destination with `-incoming defer`, migrate over loopback TCP with
 * the given max-bandwidth (and postcopy-ram, never started), poll query-migrate every 50 ms
 * (a sample every 250 ms), then let the destination guest run a while and read its MemFree.
 * The record has run-matrix.py's JSON member names, so the simulator's lab tooling reads it
 * like the committed results.
 *
 * Every QEMU runs under a watchdog and is stopped by its own PID (harness/qemu.ts).
 */
import { createServer } from 'node:net';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startQemu, type QemuProcess } from '../qemu.ts';
import type { MigrationInfo } from '../qmp-client.ts';
import { makeTempDir, removeTempDir } from '../ram-image.ts';
import { sleep } from '../process-util.ts';
import { SerialLog } from './serial-log.ts';
import { destinationLoadOf, parseQemuTrace, QEMU_DESTINATION_TRACE_EVENTS, QEMU_TRACE_EVENTS } from '../../format/qemu-trace.ts';

/** run-matrix.py's bandwidth names. */
export const LAB_BW: Readonly<Record<string, number>> = { '1g': 1 << 30, '512m': 512 << 20, '256m': 256 << 20, '128m': 128 << 20, '64m': 64 << 20, '32m': 32 << 20 };

export interface LabRunOptions {
  readonly vmlinuz: string;
  readonly initrd: string;
  readonly kernelVersion: string;
  readonly memMib: number;
  readonly wl: 'idle' | 'alloc';
  readonly hint: boolean;
  readonly bw: string;
  readonly pc: boolean;
  readonly rep: number;
  /** Extra kernel command line, e.g. `init_on_alloc=0`. */
  readonly appendExtra?: string;
  readonly wlPct?: number;
  readonly settleS?: number;
  readonly postS?: number;
  readonly bootTimeoutS?: number;
  readonly migTimeoutS?: number;
  /** Keep the serial logs here. */
  readonly logDir?: string;
  /**
   * 'warm': just before the destination starts, a throwaway QEMU preallocates the guest's size
   * plus 256 MiB and exits, so the destination's RAM lands on memory freed a moment ago, not
   * on memory a free-page-reporting host gave back to its hypervisor (host-probe.ts). Default
   * 'as-is'.
   */
  readonly hostMemory?: 'as-is' | 'warm';
  /**
   * Turn on the source QEMU's migration trace events (qemu-trace.ts) and keep them in the
   * record as `qemu_trace`: each convergence check with its pending bytes and threshold, each
   * closed bandwidth window, each dirty sync, each iteration that stopped at MAX_WAIT. The
   * destination's loading events go on too, kept as `qemu_dst_load` (qemu-trace.ts
   * destinationLoadOf): when it loaded the last RAM section and the devices, and its slow sections.
   */
  readonly traceMigration?: boolean;
}

/** A run as run-matrix.py records it (the members livemig reads, and a few more). */
export type LabRunRecord = Record<string, unknown> & { readonly status: string };

export const OOPS = ['Kernel panic', 'BUG:', 'kernel BUG', 'Oops', 'general protection fault', 'corruption', 'Bad page', 'invalid opcode', 'RIP:', 'Call Trace'];

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** One lab VM's QEMU arguments (`accel` tcg unless given: the lab's setup). */
export function vmArgs(o: Pick<LabRunOptions, 'memMib' | 'hint' | 'vmlinuz' | 'initrd'>, serialPath: string, append: string, incoming: boolean, accel: 'tcg' | 'kvm' = 'tcg'): string[] {
  const device = `virtio-balloon-pci,id=balloon0,iothread=io0,free-page-hint=${o.hint ? 'on' : 'off'}`;
  return [
    '-accel', accel, '-M', 'q35', '-m', String(o.memMib), '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', `file:${serialPath}`, '-kernel', o.vmlinuz, '-initrd', o.initrd, '-append', append,
    '-object', 'iothread,id=io0', '-device', device,
    ...(incoming ? ['-incoming', 'defer'] : []),
  ];
}

const num = (x: unknown): number | null => (typeof x === 'number' ? x : null);

/** Runs one migration; failures are recorded in the result (status 'error'), not thrown. */
export async function labRun(o: LabRunOptions): Promise<LabRunRecord> {
  const append = `console=ttyS0 panic=-1 quiet wl=${o.wl} wl_pct=${o.wlPct ?? 70} period=0.5 ${o.appendExtra ?? ''}`.trim();
  const res: Record<string, unknown> = {
    mem_mib: o.memMib, wl: o.wl, hint: o.hint, bw: o.bw, pc: o.pc, rep: o.rep, append, append_extra: (o.appendExtra ?? '').trim(),
    machine: 'q35', kernel: o.kernelVersion, boot_mode: 'bzimage', measured_by: 'livemig npm run lab',
  };
  const work = makeTempDir('livemig-lab-');
  let src: QemuProcess | null = null;
  let dst: QemuProcess | null = null;
  const srcLog = new SerialLog(join(work, 'src.serial'));
  const dstLog = new SerialLog(join(work, 'dst.serial'));
  const tracePath = join(work, 'src.trace');
  const traceArgs = o.traceMigration === true ? ['-msg', 'timestamp=on', ...QEMU_TRACE_EVENTS.flatMap((e) => ['-trace', e]), '-D', tracePath] : [];
  const dstTracePath = join(work, 'dst.trace');
  const dstTraceArgs = o.traceMigration === true ? ['-msg', 'timestamp=on', ...QEMU_DESTINATION_TRACE_EVENTS.flatMap((e) => ['-trace', e]), '-D', dstTracePath] : [];
  let migrateEpochMs: number | null = null;
  try {
    src = await startQemu({ name: 'lab-src', args: [...vmArgs(o, srcLog.path, append, false), ...traceArgs], watchdogMs: 1_800_000, connectTimeoutMs: 60_000 });
    const s = src;
    const t0 = performance.now();
    await srcLog.waitFor(/^GL init /, (o.bootTimeoutS ?? 180) * 1000, () => s.running);
    await srcLog.waitFor(/^GL ready /, ((o.bootTimeoutS ?? 180) + 600) * 1000, () => s.running);
    // The guest's own uptime at /init and at ready, as run-matrix.py records them: under TCG the
    // guest clock follows the host's, so they measure how fast this host executes the guest.
    res.boot = {
      wall_to_ready_s: Math.round(performance.now() - t0) / 1000,
      guest_up_at_init_s: srcLog.gl('init')[0]?.fields.up ?? null,
      guest_up_at_ready_s: srcLog.gl('ready')[0]?.fields.up ?? null,
      balloon: srcLog.gl('balloon')[0]?.line ?? null,
    };
    res.wl_lines = srcLog.gl('wl').map((r) => r.line);
    await sleep((o.settleS ?? 3) * 1000);
    srcLog.poll();
    const before = srcLog.gl('t').at(-1);
    res.src_memfree_before_kb = before?.fields.memfree ?? null;
    res.memtotal_kb = srcLog.gl('mem')[0]?.fields.memtotal ?? null;

    const port = await freePort();
    res.host_memory = o.hostMemory ?? 'as-is';
    if (o.hostMemory === 'warm') {
      const t = performance.now();
      const warm = await startQemu({
        name: 'lab-warm', watchdogMs: 120_000, connectTimeoutMs: 60_000,
        args: ['-M', 'none', '-nodefaults', '-display', 'none', '-S', '-object', `memory-backend-ram,id=warm,size=${o.memMib + 256}M,prealloc=on`],
      });
      await warm.stop();
      res.warm_up_ms = Math.round(performance.now() - t);
    }
    dst = await startQemu({ name: 'lab-dst', args: [...vmArgs(o, dstLog.path, append, true), ...dstTraceArgs], watchdogMs: 1_800_000, connectTimeoutMs: 60_000 });
    const caps = [{ capability: 'events', state: true }, ...(o.pc ? [{ capability: 'postcopy-ram', state: true }] : [])];
    await dst.qmp.execute('migrate-set-capabilities', { capabilities: caps });
    await dst.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    await s.qmp.execute('migrate-set-capabilities', { capabilities: caps });
    await s.qmp.execute('migrate-set-parameters', { 'max-bandwidth': LAB_BW[o.bw] ?? Number(o.bw) });
    const params = await s.qmp.execute<Record<string, unknown>>('query-migrate-parameters');
    res.params = { 'max-bandwidth': params['max-bandwidth'], 'downtime-limit': params['downtime-limit'] };

    const tMig = performance.now();
    migrateEpochMs = Date.now();
    await s.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const samples: unknown[][] = [];
    let last: MigrationInfo = {};
    let status = '';
    const deadline = tMig + (o.migTimeoutS ?? 300) * 1000;
    for (;;) {
      last = await s.qmp.execute<MigrationInfo>('query-migrate');
      status = last.status ?? '';
      const now = performance.now();
      const ram = last.ram ?? {};
      const lastSample = samples.at(-1);
      if (lastSample === undefined || now - tMig - (lastSample[0] as number) * 1000 >= 250 || ['completed', 'failed'].includes(status)) {
        samples.push([Math.round(now - tMig) / 1000, status, ram.transferred ?? null, ram.remaining ?? null, ram['dirty-sync-count'] ?? null, ram.duplicate ?? null, ram.normal ?? null]);
      }
      srcLog.poll();
      dstLog.poll();
      if (['completed', 'failed', 'cancelled'].includes(status)) break;
      if (now > deadline) {
        await s.qmp.execute('migrate_cancel');
        await sleep(500);
        last = await s.qmp.execute<MigrationInfo>('query-migrate');
        status = `timeout(${last.status ?? ''})`;
        break;
      }
      await sleep(50);
    }
    const tEnd = performance.now();
    for (let i = 0; i < 20 && status === 'completed' && !last['total-time']; i++) {
      await sleep(50);
      last = await s.qmp.execute<MigrationInfo>('query-migrate');
    }
    const ram = last.ram ?? {};
    Object.assign(res, {
      status, wall_mig_s: Math.round(tEnd - tMig) / 1000, total_time_ms: last['total-time'] ?? null, downtime_ms: num(last.downtime),
      setup_time_ms: num(last['setup-time']), transferred: ram.transferred ?? null, total: ram.total ?? null, duplicate: ram.duplicate ?? null,
      normal: ram.normal ?? null, normal_bytes: ram['normal-bytes'] ?? null, dirty_sync_count: ram['dirty-sync-count'] ?? null,
      precopy_bytes: ram['precopy-bytes'] ?? null, downtime_bytes: ram['downtime-bytes'] ?? null, postcopy_bytes: ram['postcopy-bytes'] ?? null,
      mbps: ram.mbps ?? null, error: last['error-desc'] ?? null, samples,
    });
    const during = srcLog.gl('t').filter((r) => r.hostMs >= tMig && r.hostMs <= tEnd + 100).map((r) => r.fields.memfree as number);
    res.src_memfree_min_kb = during.length > 0 ? Math.min(...during) : res.src_memfree_before_kb;
    res.src_memfree_during_kb = during.slice(0, 400);
    if (status === 'completed') {
      const d = dst;
      const until = performance.now() + (o.postS ?? 6) * 1000;
      while (performance.now() < until && d.running) {
        dstLog.poll();
        await sleep(100);
      }
      dstLog.poll();
      const dl = dstLog.gl('t');
      res.dst_memfree_first_kb = dl[0]?.fields.memfree ?? null;
      res.dst_memfree_last_kb = dl.at(-1)?.fields.memfree ?? null;
      res.dst_oops = dstLog.lines.filter((l) => OOPS.some((k) => l.text.includes(k))).slice(0, 8).map((l) => l.text.slice(0, 200));
      res.dst_status = d.running ? ((await d.qmp.execute<{ status: string }>('query-status')).status) : 'qemu-exited';
    }
  } catch (error) {
    res.status = 'error';
    res.error = `${(error as Error).name}: ${(error as Error).message}`;
  } finally {
    for (const vm of [dst, src]) if (vm !== null) await vm.stop();
    if (o.traceMigration === true && migrateEpochMs !== null) {
      try {
        res.qemu_trace = parseQemuTrace(readFileSync(tracePath, 'utf8'), migrateEpochMs);
      } catch {
        res.qemu_trace = null;
      }
      try {
        res.qemu_dst_load = destinationLoadOf(readFileSync(dstTracePath, 'utf8'), migrateEpochMs);
      } catch {
        res.qemu_dst_load = null;
      }
    }
    if (o.logDir !== undefined) {
      mkdirSync(o.logDir, { recursive: true });
      // The case (init_on_alloc and host memory included), the rep and a time stamp: a later
      // invocation with the same reps does not overwrite an earlier one's logs.
      const ioa = /\binit_on_alloc=0\b/.test(o.appendExtra ?? '') ? '-ioa0' : '';
      const host = o.hostMemory === 'warm' ? '-warm' : '';
      const tag = `m${o.memMib}-${o.wl}-h${Number(o.hint)}-${o.bw}-pc${Number(o.pc)}${ioa}${host}-r${o.rep}-${Date.now()}`;
      for (const n of ['src.serial', 'dst.serial']) {
        try {
          cpSync(join(work, n), join(o.logDir, `${tag}.${n}`));
        } catch { /* no log written */ }
      }
    }
    removeTempDir(work);
  }
  return res as LabRunRecord;
}
