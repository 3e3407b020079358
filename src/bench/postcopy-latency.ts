/**
 * Postcopy page-request latency in real mode: two livemig VMs connected over loopback TCP. The
 * source's precopy is held to 4 MiB/s, so when `migrate-start-postcopy` switches 300 ms in
 * nearly every page is still on the source; the destination's vCPU then touches random pages
 * of its RAM (workload `random`), faults on missing ones, blocks, and is woken when the
 * requested page is placed. The background push runs meanwhile, uncapped by default
 * (max-postcopy-bandwidth 0). The latency of a fault is what the vCPU measured: from its fault
 * to its wake-up (vcpus.faultLatencies).
 *
 * Two layouts:
 * - `in-process`: both VMs in this process, sharing one event loop, so a request also waits
 *   behind the source's own work (the first rounds' figure);
 * - `processes`: each VM in its own process (postcopy-latency-child.ts), as in production;
 *   the children report their CPU time, and with LIVEMIG_BENCH_CPU_PROF=DIR each writes a
 *   `--cpu-prof` profile there.
 * Either with or without postcopy-preempt (requested pages on a second connection).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tokenizeQemuArgs, LIVEMIG_VM_OPTIONS } from '../host/qemu-args.ts';
import { interpretVmArgs } from '../host/vm-args.ts';
import { LivemigVm } from '../host/vm.ts';
import type { MigrationCapability } from '../core/capabilities.ts';
import { enableHopTrace, hopTrace, type DestHop, type SourceHop } from '../host/hop-trace.ts';
import type { FaultRecord } from './postcopy-hops.ts';
import type { ThreadSched } from './schedstat.ts';

export type LatencyLayout = 'in-process' | 'processes';

export interface PostcopyLatencyOptions {
  readonly sizeMiB: number;
  readonly layout: LatencyLayout;
  readonly preempt: boolean;
  /** The source's max-postcopy-bandwidth; 0 (QEMU's default) is unlimited. */
  readonly postcopyBytesPerSec?: number;
}

/** What the destination reports at the end. */
export interface DestLatencyReport {
  /** Every fault's latency, ns, sorted. */
  readonly latenciesNs: readonly number[];
  readonly requestsSent: number;
  readonly pagesPlacedAfterSwitch: number;
  readonly preemptBytesReceived: number;
  /** CPU time of the destination's process (user + system, every thread), ms; NaN in-process. */
  readonly cpuMs: number;
  /** With the hop trace on (LIVEMIG_BENCH_HOPS=1): every fault, and the destination's stamps. */
  readonly faults?: readonly FaultRecord[];
  readonly destHops?: readonly DestHop[];
  /** Two-process layout: the destination process's threads over the run (schedstat.ts). */
  readonly threads?: readonly ThreadSched[];
}

/** What the source reports at the end. */
export interface SourceLatencyReport {
  readonly status: string;
  readonly error: string | null;
  readonly preemptBytesWritten: number;
  readonly cpuMs: number;
  /** With the hop trace on: the source's stamps. */
  readonly sourceHops?: readonly SourceHop[];
  /** Two-process layout: the source process's threads over the run. */
  readonly threads?: readonly ThreadSched[];
}

export interface PostcopyLatencyRun extends DestLatencyReport {
  readonly sourceCpuMs: number;
  readonly preemptBytesWritten: number;
  readonly sourceHops?: readonly SourceHop[];
  readonly sourceThreads?: readonly ThreadSched[];
}

const CHILD = fileURLToPath(new URL('./postcopy-latency-child.ts', import.meta.url));

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = process.hrtime.bigint() + BigInt(timeoutMs) * 1_000_000n;
  while (!condition()) {
    if (process.hrtime.bigint() > deadline) throw new Error(`postcopy latency: timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** LIVEMIG_BENCH_VCPU_NICE=SOURCE,DESTINATION: each side's `--vcpu-nice` (unset: neither). */
function vcpuNiceArgs(incoming: boolean): string[] {
  const [source = '0', dest = source] = (process.env.LIVEMIG_BENCH_VCPU_NICE ?? '').split(',').filter((w) => w !== '');
  return ['--vcpu-nice', incoming ? dest : source];
}

/** Starts one side's VM: a 1-vCPU guest touching random pages, with the capabilities set. */
export async function startLatencyVm(sizeMiB: number, preempt: boolean, incoming: boolean): Promise<LivemigVm> {
  const args = ['-m', `${sizeMiB}M`, '--vcpus', '1', '--workload', `random:${sizeMiB}M:${sizeMiB / 2}M`, '--seed', '3', ...(incoming ? ['-incoming', 'defer'] : []), ...vcpuNiceArgs(incoming)];
  const vm = await LivemigVm.start(interpretVmArgs(tokenizeQemuArgs(args, LIVEMIG_VM_OPTIONS)), { report: () => undefined });
  const names: MigrationCapability[] = preempt ? ['postcopy-ram', 'postcopy-preempt'] : ['postcopy-ram'];
  vm.migrateSetCapabilities({ capabilities: names.map((capability) => ({ capability, state: true })) });
  return vm;
}

/** The destination listens on loopback; resolves with its URI. */
export async function listenDest(dest: LivemigVm): Promise<string> {
  await dest.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
  return dest.incoming!.uri;
}

/** Waits for the destination to complete and reads its figures. */
export async function destReport(dest: LivemigVm, cpuMs: number): Promise<DestLatencyReport> {
  const incoming = dest.incoming!;
  await until(() => incoming.status === 'completed' || incoming.status === 'failed' || incoming.status === 'postcopy-paused', 120_000, 'the destination to complete');
  if (incoming.status !== 'completed') throw new Error(`the destination ended ${incoming.status}: ${incoming.engine.lastError?.message ?? incoming.error?.message ?? 'no error'}`);
  const stats = dest.incoming!.engine.stats();
  return {
    latenciesNs: dest.vcpus!.faultLatencies().sort((a, b) => a - b),
    requestsSent: stats.requestsSent,
    pagesPlacedAfterSwitch: stats.postcopyPagesPlaced,
    preemptBytesReceived: dest.incoming!.preemptBytesReceived,
    cpuMs,
    ...(hopTrace.dest === null ? {} : { faults: dest.vcpus!.faultRecords(), destHops: hopTrace.dest.hops() }),
  };
}

/** The source's side: migrate to `uri`, switch to postcopy 300 ms in, wait for the end. */
export async function runSource(source: LivemigVm, uri: string, postcopyBytesPerSec: number): Promise<Omit<SourceLatencyReport, 'cpuMs'>> {
  source.migrateSetParameters({ maxBandwidthBytesPerSec: 4n << 20n, maxPostcopyBandwidthBytesPerSec: BigInt(postcopyBytesPerSec) });
  await sleep(500);
  source.migrate({ uri });
  await until(() => source.outgoing?.status === 'active', 10_000, 'the source to be active');
  await sleep(300);
  source.migrateStartPostcopy();
  const status = await source.outgoing!.whenFinished();
  return {
    status, error: source.outgoing!.error?.message ?? null, preemptBytesWritten: source.outgoing!.preemptBytesWritten,
    ...(hopTrace.source === null ? {} : { sourceHops: hopTrace.source.hops() }),
  };
}

/** One postcopy migration; see the file comment. */
export async function measurePostcopyLatency(options: PostcopyLatencyOptions): Promise<PostcopyLatencyRun> {
  return options.layout === 'in-process' ? inProcess(options) : inProcesses(options);
}

async function inProcess(options: PostcopyLatencyOptions): Promise<PostcopyLatencyRun> {
  if (process.env.LIVEMIG_BENCH_HOPS === '1') enableHopTrace(); // fresh stamps for this run
  const source = await startLatencyVm(options.sizeMiB, options.preempt, false);
  const dest = await startLatencyVm(options.sizeMiB, options.preempt, true);
  try {
    const uri = await listenDest(dest);
    const s = await runSource(source, uri, options.postcopyBytesPerSec ?? 0);
    if (s.status !== 'completed') throw new Error(`postcopy latency: the source ended ${s.status}: ${s.error ?? ''}`);
    const d = await destReport(dest, Number.NaN);
    return { ...d, sourceCpuMs: Number.NaN, preemptBytesWritten: s.preemptBytesWritten, sourceHops: s.sourceHops };
  } finally {
    await Promise.all([source.close(), dest.close()]);
  }
}

/** Messages of postcopy-latency-child.ts. */
export type ChildMessage =
  | { readonly kind: 'listening'; readonly uri: string }
  | { readonly kind: 'dest-done'; readonly report: DestLatencyReport }
  | { readonly kind: 'source-done'; readonly report: SourceLatencyReport }
  | { readonly kind: 'error'; readonly message: string };

/** Node options of the children: LIVEMIG_BENCH_CPU_PROF=DIR profiles; LIVEMIG_BENCH_NODE_ARGS adds its words (e.g. --trace-gc, whose output then goes to our stdout). */
function childNodeArgs(): string[] {
  const dir = process.env.LIVEMIG_BENCH_CPU_PROF;
  const extra = (process.env.LIVEMIG_BENCH_NODE_ARGS ?? '').split(' ').filter((word) => word !== '');
  return [...(dir === undefined || dir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`]), ...extra];
}

/**
 * Each child in its own session (setsid, `detached`), unless LIVEMIG_BENCH_SESSIONS=0. With
 * Linux's autogroup scheduling (kernel.sched_autogroup_enabled=1) a session is a scheduling
 * group: the CPUs are shared between groups first, then between a group's threads. In the
 * bench's session the two VMs shared one group's share against the machine's other sessions;
 * in sessions of their own each gets one, as two VMs on two hosts (or in two cgroups, as
 * libvirt places each QEMU) would. docs/performance.md, "Session 3, thread priority".
 */
function ownSessions(): boolean {
  return process.env.LIVEMIG_BENCH_SESSIONS !== '0';
}

/** Forks a child and resolves with its first message of kind `kind` (or rejects on error/exit). */
function forkChild(args: string[], children: ChildProcess[]): (kind: ChildMessage['kind']) => Promise<ChildMessage> {
  const stdout = process.env.LIVEMIG_BENCH_NODE_ARGS === undefined ? 'ignore' : 'inherit';
  const child = fork(CHILD, args, { execArgv: ['--import', 'tsx', ...childNodeArgs()], stdio: ['ignore', stdout, 'inherit', 'ipc'], detached: ownSessions() });
  children.push(child);
  const messages: ChildMessage[] = [];
  const waiters: Array<() => void> = [];
  let exited: string | null = null;
  child.on('message', (m) => {
    messages.push(m as ChildMessage);
    for (const w of waiters.splice(0)) w();
  });
  child.on('exit', (code, signal) => {
    exited = `exited ${code ?? signal}`;
    for (const w of waiters.splice(0)) w();
  });
  return async (kind) => {
    for (;;) {
      const error = messages.find((m) => m.kind === 'error');
      if (error?.kind === 'error') throw new Error(`postcopy latency child ${args[0]}: ${error.message}`);
      const found = messages.find((m) => m.kind === kind);
      if (found !== undefined) return found;
      if (exited !== null) throw new Error(`postcopy latency child ${args[0]} ${exited} before '${kind}'`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
}

/** A two-process run whose children have not both exited by then is killed (a child hung). */
const RUN_TIMEOUT_MS = 180_000;

async function inProcesses(options: PostcopyLatencyOptions): Promise<PostcopyLatencyRun> {
  const children: ChildProcess[] = [];
  const common = [String(options.sizeMiB), options.preempt ? '1' : '0'];
  const deadline = setTimeout(() => {
    process.stderr.write(`postcopy latency: a child still runs after ${RUN_TIMEOUT_MS} ms; killing the run\n`);
    for (const child of children) child.kill('SIGKILL');
  }, RUN_TIMEOUT_MS);
  try {
    const dest = forkChild(['dest', ...common], children);
    const destChild = children[0];
    const listening = await dest('listening');
    if (listening.kind !== 'listening') throw new Error('unreachable');
    const source = forkChild(['source', ...common, listening.uri, String(options.postcopyBytesPerSec ?? 0)], children);
    const s = await source('source-done');
    if (s.kind !== 'source-done') throw new Error('unreachable');
    // The destination closes only once the source is done (closing at `completed` could drop SHUT).
    if (destChild.connected) destChild.send('quit');
    if (s.report.status !== 'completed') {
      const reason = await dest('dest-done').then(() => 'completed', (error: Error) => error.message);
      throw new Error(`postcopy latency: the source ended ${s.report.status}: ${s.report.error ?? ''}; destination: ${reason}`);
    }
    const d = await dest('dest-done');
    if (d.kind !== 'dest-done') throw new Error('unreachable');
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((resolve) => c.once('exit', resolve)))));
    return { ...d.report, sourceCpuMs: s.report.cpuMs, preemptBytesWritten: s.report.preemptBytesWritten, sourceHops: s.report.sourceHops, sourceThreads: s.report.threads };
  } finally {
    clearTimeout(deadline);
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** The p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
