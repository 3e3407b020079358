/**
 * `livemig start` (what `npm start` runs): the main job on an embedded default. Two livemig VMs
 * in this process migrate live over loopback TCP, exactly as two `livemig vm` processes would:
 *
 *   source: 2 GiB of RAM, 2 vCPU threads running kernel-build (allocator churn: blocks of
 *           assorted orders allocated from the guest's buddy allocator, written, freed when
 *           their lifetime ends; host/page-cache.ts), virtio-balloon with free page hinting
 *           (policy `track`) driven by the guest's Linux-like balloon driver
 *   target: the same command line with `-S -incoming tcp:127.0.0.1:0`
 *
 * It prints a progress bar (a line per second when stdout is not a terminal), then the
 * query-migrate summary and the verdicts (start-verdicts.ts). `--memory` and `--max-bandwidth`
 * change the defaults (tests use a small guest).
 */
import { formatBytes, MiB, parseSizeBytes } from '../lib/units.ts';
import { LIVEMIG_VM_OPTIONS, tokenizeQemuArgs } from '../host/qemu-args.ts';
import { interpretVmArgs } from '../host/vm-args.ts';
import { LivemigVm } from '../host/vm.ts';
import { RealRunObserver } from '../web/real-observer.ts';
import type { DashboardEvents } from '../web/api-types.ts';
import { RunViewBuilder } from '../web/run-view.ts';
import { EXIT_FAILURE, EXIT_OK, UsageError } from './io.ts';
import { writeRealReport } from './report-command.ts';
import { kernelBuildVerdicts, type Verdict } from './start-verdicts.ts';
import type { CliIo } from './io.ts';
import { ProgressBar, progressSampleOf, type ProgressSample } from './progress.ts';

export interface StartOptions {
  /** Guest RAM, QEMU spelling (`2G`). */
  readonly memory?: string;
  /** max-bandwidth in bytes/s (QMP migrate-set-parameters). */
  readonly maxBandwidth?: string;
  readonly json?: boolean;
  /** Write an HTML report of the run here (web/real-observer.ts). */
  readonly report?: string;
  /** Print the run's dashboard events as JSON lines on stdout (the rest goes to stderr). */
  readonly events?: boolean;
  /** Whether to draw a progress bar (default: stdout is a terminal). */
  readonly tty?: boolean;
}

const POLL_MS = 100;
/** With --report or --events the run is sampled more often (a 2 GiB run can take under a second). */
const REPORT_POLL_MS = 20;
/** Not on a terminal: a progress line this often, for logs of long runs. */
const PROGRESS_LINE_EVERY_MS = 1000;
/** The guest runs this long at most before the migration starts... */
const WARMUP_MS_MAX = 3000;
/** ...or until its vCPUs have freed this many blocks. */
const WARMUP_FREED_BLOCKS = 2000;

/** kernel-build keeps 60% of RAM allocated (split between the vCPUs), dirtying 128 MiB/s. */
export const START_WORKLOAD = 'kernel-build::128M';

function guestArgs(memory: string): string[] {
  const memoryBytes = parseSizeBytes(memory, 'M');
  if (memoryBytes === null || memoryBytes < 64 * MiB) throw new UsageError(`--memory ${memory}: expected a size of at least 64M`);
  return ['-m', memory, '--vcpus', '2', '--workload', START_WORKLOAD, '--seed', '1',
    '-device', 'virtio-balloon,free-page-hint=on,free-page-hint-postcopy=track'];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startVm(args: string[]): Promise<LivemigVm> {
  return LivemigVm.start(interpretVmArgs(tokenizeQemuArgs(args, LIVEMIG_VM_OPTIONS)), { report: () => undefined });
}

/** `--events`: each DashboardEvents call as one JSON line `{event, args}` (the dashboard's real runs read them). */
function eventLines(out: (text: string) => void): DashboardEvents {
  const line = (event: keyof DashboardEvents, args: unknown[]): void => out(`${JSON.stringify({ event, args })}\n`);
  return {
    runStarted: (...args) => line('runStarted', args),
    progress: (...args) => line('progress', args),
    pageMap: (...args) => line('pageMap', args),
    finished: (...args) => line('finished', args),
  };
}

/** Hands every event to each sink. */
function fanOut(sinks: readonly DashboardEvents[]): DashboardEvents {
  return {
    runStarted: (...args) => sinks.forEach((s) => s.runStarted(...args)),
    progress: (...args) => sinks.forEach((s) => s.progress(...args)),
    pageMap: (...args) => sinks.forEach((s) => s.pageMap(...args)),
    finished: (...args) => sinks.forEach((s) => s.finished(...args)),
  };
}

export async function runStart(options: StartOptions, cliIo: CliIo): Promise<number> {
  const events = options.events === true;
  // With --events stdout carries only the event lines; what a person reads goes to stderr.
  const io: CliIo = events ? { out: (t) => cliIo.err(t), err: (t) => cliIo.err(t) } : cliIo;
  const memory = options.memory ?? '2G';
  const tty = options.tty ?? (process.stdout.isTTY === true && options.json !== true && !events);
  const say = (text: string): void => (options.json === true ? io.err(text) : io.out(text));
  say(`livemig start: two livemig VMs on loopback, ${memory} each, 2 vCPUs running kernel-build, virtio-balloon free page hinting (policy track)\n`);
  const source = await startVm(guestArgs(memory));
  const dest = await startVm([...guestArgs(memory), '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    const totalBytes = source.machine.backing.sizeBytes;
    source.migrateSetParameters({ maxBandwidthBytesPerSec: BigInt(options.maxBandwidth ?? String(1024 ** 3)), downtimeLimitMs: 300n });
    // Let the guest run first, as a real one would, until its processes have begun to exit
    // (freed memory is what free page hinting finds), or WARMUP_MS_MAX.
    const warmupEndMs = Date.now() + WARMUP_MS_MAX;
    const caches = source.machine.pageCaches;
    while (Date.now() < warmupEndMs && (caches?.blocksFreed ?? 0) < WARMUP_FREED_BLOCKS) await sleep(POLL_MS);
    if (caches !== null) say(`guest running: ${caches.blocksRefilled} blocks handed to the vCPUs' page caches, ${caches.blocksFreed} freed back\n`);
    say(`migrating ${formatBytes(totalBytes)} from the source to ${dest.incoming!.uri} (max-bandwidth ${formatBytes(Number(options.maxBandwidth ?? 1024 ** 3))}/s)\n`);
    const builder = options.report === undefined ? null : new RunViewBuilder();
    const sinks = [...(builder === null ? [] : [builder]), ...(events ? [eventLines((t) => cliIo.out(t))] : [])];
    const observer = sinks.length === 0 ? null : new RealRunObserver(fanOut(sinks), source, dest, { name: 'livemig start', description: `two livemig VMs on loopback, ${memory} each`, seed: 1 });
    observer?.start();
    const startedMs = Date.now();
    source.migrate({ uri: dest.incoming!.uri });
    const finished = source.outgoing!.whenFinished();
    let settled = false;
    void finished.then(() => (settled = true));
    const bar = new ProgressBar({ out: say, err: (t) => io.err(t) }, { tty, lineEveryMs: PROGRESS_LINE_EVERY_MS, wallNowMs: () => Date.now() });
    const sample = (): ProgressSample => progressSampleOf(source.queryMigrate(), totalBytes, (Date.now() - startedMs) / 1000);
    while (!settled) {
      await sleep(observer === null ? POLL_MS : REPORT_POLL_MS);
      observer?.poll();
      bar.update(sample);
    }
    const status = await finished;
    bar.finish(sample());
    const deadline = Date.now() + 10_000;
    while (dest.incoming?.status !== 'completed' && dest.incoming?.status !== 'failed' && Date.now() < deadline) await sleep(10);
    observer?.poll();
    const info = source.queryMigrate();
    const counters = source.outgoing!.engine.counters();
    const checks: Verdict[] = status === 'completed' ? kernelBuildVerdicts(source, dest, counters.hintedPages) : [{ name: 'migration', ok: false, detail: `status ${status}: ${source.outgoing!.error?.message ?? ''}` }];
    const ok = checks.every((c) => c.ok);
    observer?.finish(checks, status === 'completed' ? null : source.outgoing!.error?.message ?? status);
    if (builder !== null && options.report !== undefined) {
      writeRealReport(options.report, builder.view()!, `livemig start --memory ${memory} --report`, options.json === true ? { out: (t) => io.err(t), err: (t) => io.err(t) } : io);
    }
    if (options.json === true) {
      io.out(`${JSON.stringify({ ...info, balloon: { 'hinted-pages': counters.hintedPages }, invariants: checks, ok })}\n`);
    } else {
      const ram = info.ram;
      io.out(`\nstatus ${info.status}: total-time ${info['total-time']} ms, downtime ${info.downtime} ms, setup-time ${info['setup-time']} ms\n`);
      if (ram !== undefined) {
        io.out(`  transferred ${formatBytes(ram.transferred)} of ${formatBytes(ram.total)} RAM, normal ${ram.normal} pages, duplicate (zero) ${ram.duplicate} pages, ` +
          `dirty-sync-count ${ram['dirty-sync-count']}, throughput ${ram.mbps.toFixed(2)} mbps\n`);
      }
      io.out(`  balloon: ${counters.hintedPages} pages hinted free and skipped\n`);
      io.out('  verdicts:\n');
      for (const c of checks) io.out(`    ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}\n`);
      io.out(ok ? 'PASS\n' : 'FAIL\n');
    }
    return ok ? EXIT_OK : EXIT_FAILURE;
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
}
