/**
 * The vCPUs of one VM, from the main thread: worker threads (vcpu-worker.ts) sharing guest RAM,
 * the dirty log and the present map, driven through the control block (vcpu-control.ts).
 *
 * `pause()` is synchronous and returns only once every vCPU has acknowledged (QEMU's
 * pause_all_vcpus), so the next dirty-log sync sees every write; `run()`, `setThrottle()` and
 * `setTrap()` take effect at each vCPU's next step. Faults arrive as messages (or are found by
 * `pollFaults()`) and go to the `onFault` callback, each once; the shell answers with
 * `wakePage(page)` once the page is present.
 *
 * Workers start from a `data:` module that registers tsx and then imports vcpu-worker.ts: under
 * Node 20, `execArgv: ['--import', 'tsx']` does not reach a worker that loads a .ts file.
 * `close()` tells them to exit and terminates any that does not within a second.
 */
import { Worker } from 'node:worker_threads';
import { STAT_FAULT_WAIT_NS_MAX, STAT_FAULT_WAIT_NS_TOTAL, STAT_FAULTS, STAT_PAGE_WRITES, STAT_STEPS, VcpuCommand, VcpuControl, VcpuState } from './vcpu-control.ts';
import type { VcpuPlan, VcpuWorkerData } from './vcpu-worker.ts';

/** Longest time `pause()` waits for every vCPU to acknowledge. */
export const PAUSE_ACK_TIMEOUT_MS = 5000;

/** The vCPUs did not answer a command in time (a hung worker). */
export class VcpuError extends Error {
  override name = 'VcpuError';
  constructor(
    readonly code: 'VCPU_ERR_PAUSE_TIMEOUT' | 'VCPU_ERR_WORKER',
    message: string,
  ) {
    super(message);
  }
}

/** One vCPU's counters. */
export interface VcpuStats {
  readonly pageWrites: number;
  readonly steps: number;
  readonly faults: number;
  readonly faultWaitNsTotal: number;
  readonly faultWaitNsMax: number;
}

/** Where the shared memory is. */
export interface VcpuSetOptions {
  readonly memory: SharedArrayBuffer;
  readonly dirtyLog: SharedArrayBuffer;
  readonly received: SharedArrayBuffer;
  readonly pageCount: number;
  readonly epochNs: bigint;
  readonly plans: readonly VcpuPlan[];
  /** The nice value each vCPU thread sets on itself (0 or absent: unchanged). */
  readonly nice?: number;
  /** A vCPU touched a missing page while trapping was on. */
  readonly onFault: (vcpu: number, page: number) => void;
  /** A worker died (an exception in the workload). */
  readonly onWorkerError: (vcpu: number, error: Error) => void;
}

const BOOTSTRAP = `
import { workerData } from 'node:worker_threads';
const { register } = await import(workerData.tsxUrl);
register();
const { vcpuWorkerMain } = await import(workerData.moduleUrl);
vcpuWorkerMain();
`;

function nowMs(): number {
  return performance.now();
}

export class VcpuSet {
  readonly control: VcpuControl;
  private readonly workers: Worker[] = [];
  private readonly exited: Promise<void>[] = [];
  private readonly options: VcpuSetOptions;
  private closing: Promise<void> | null = null;
  /** Per vCPU: its worker thread's kernel id (-1 unknown), for per-thread scheduler figures. */
  readonly threadIds: number[] = [];
  /** Per vCPU: its thread's nice value as the worker read it back from /proc (null unknown). */
  readonly threadNices: (number | null)[] = [];
  /** Per vCPU: the fault sequence number last handed to onFault. */
  private readonly handledFaults: Int32Array;

  private constructor(options: VcpuSetOptions) {
    this.options = options;
    this.control = new VcpuControl(options.plans.length);
    this.handledFaults = new Int32Array(options.plans.length);
  }

  /** Starts the workers (they wait for `run()`); resolves once every one is ready. */
  static async start(options: VcpuSetOptions): Promise<VcpuSet> {
    const set = new VcpuSet(options);
    await Promise.all(options.plans.map((plan, vcpu) => set.spawn(vcpu, plan)));
    return set;
  }

  get count(): number {
    return this.control.vcpuCount;
  }

  private spawn(vcpu: number, plan: VcpuPlan): Promise<void> {
    const o = this.options;
    const data: VcpuWorkerData & { tsxUrl: string; moduleUrl: string } = {
      vcpu,
      control: this.control.controlBuffer,
      stats: this.control.statsBuffer,
      vcpuCount: this.control.vcpuCount,
      memory: o.memory,
      dirtyLog: o.dirtyLog,
      received: o.received,
      pageCount: o.pageCount,
      epochNs: o.epochNs,
      plan,
      nice: o.nice ?? 0,
      tsxUrl: import.meta.resolve('tsx/esm/api'),
      moduleUrl: new URL('./vcpu-worker.ts', import.meta.url).href,
    };
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(BOOTSTRAP)}`), { workerData: data, name: `vcpu${vcpu}` });
    this.workers.push(worker);
    this.exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (message: { kind: string; page?: number; tid?: number; nice?: number | null }) => {
        if (message.kind === 'ready') {
          ready = true;
          this.threadIds[vcpu] = message.tid ?? -1;
          this.threadNices[vcpu] = message.nice ?? null;
          resolve();
        } else if (message.kind === 'fault') {
          this.pollFault(vcpu);
        }
      });
      worker.on('error', (error) => {
        if (!ready) reject(new VcpuError('VCPU_ERR_WORKER', `vCPU ${vcpu} failed to start: ${error.message}`));
        else this.options.onWorkerError(vcpu, error);
      });
    });
  }

  /**
   * Hands every fault not handled yet to onFault. The fault message is the wake-up when the
   * main thread idles; a busy one (loading a postcopy stream) calls this between chunks so a
   * fault does not wait for the message queue.
   */
  pollFaults(): void {
    for (let vcpu = 0; vcpu < this.count; vcpu++) this.pollFault(vcpu);
  }

  private pollFault(vcpu: number): void {
    const seq = this.control.faultSequence(vcpu);
    if (seq === this.handledFaults[vcpu]) return;
    this.handledFaults[vcpu] = seq;
    const page = this.control.faultPage(vcpu);
    if (page >= 0) this.options.onFault(vcpu, page);
  }

  /** Starts or resumes every vCPU. */
  run(): void {
    this.control.setCommand(VcpuCommand.Run);
  }

  /** True when told to run. */
  get running(): boolean {
    return this.control.command === VcpuCommand.Run;
  }

  /**
   * Pauses every vCPU and waits until each has acknowledged; throws VcpuError when one does
   * not within PAUSE_ACK_TIMEOUT_MS.
   */
  pause(): void {
    this.control.setCommand(VcpuCommand.Pause);
    const ok = this.control.waitForStates([VcpuState.Paused, VcpuState.Exited], PAUSE_ACK_TIMEOUT_MS, nowMs);
    if (!ok) throw new VcpuError('VCPU_ERR_PAUSE_TIMEOUT', `vCPUs did not pause within ${PAUSE_ACK_TIMEOUT_MS} ms`);
  }

  setThrottle(percent: number): void {
    this.control.setThrottle(percent);
  }

  /** Postcopy fault trapping on the destination (on from LISTEN until postcopy ends). */
  setTrap(on: boolean): void {
    this.control.setTrap(on);
  }

  /** Page `page` is present: wake the vCPUs waiting for it. */
  wakePage(page: number): number {
    return this.control.wakePage(page);
  }

  stats(vcpu: number): VcpuStats {
    const c = this.control;
    return {
      pageWrites: c.stat(vcpu, STAT_PAGE_WRITES),
      steps: c.stat(vcpu, STAT_STEPS),
      faults: c.stat(vcpu, STAT_FAULTS),
      faultWaitNsTotal: c.stat(vcpu, STAT_FAULT_WAIT_NS_TOTAL),
      faultWaitNsMax: c.stat(vcpu, STAT_FAULT_WAIT_NS_MAX),
    };
  }

  /** Page writes of all vCPUs. */
  totalPageWrites(): number {
    let total = 0;
    for (let i = 0; i < this.count; i++) total += this.control.stat(i, STAT_PAGE_WRITES);
    return total;
  }

  /** Every recorded fault latency of every vCPU, ns. */
  faultLatencies(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++) out.push(...this.control.faultLatencies(i));
    return out;
  }

  /** Every recorded fault of every vCPU: start (ns on the machine's monotonic clock), latency, page. */
  faultRecords(): Array<{ startNs: number; latencyNs: number; page: number }> {
    const epochNs = Number(this.options.epochNs);
    const out: Array<{ startNs: number; latencyNs: number; page: number }> = [];
    for (let i = 0; i < this.count; i++) for (const r of this.control.faultRecords(i)) out.push({ ...r, startNs: r.startNs + epochNs });
    return out;
  }

  /** Stops the workers (idempotent). */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.control.setCommand(VcpuCommand.Exit);
    this.closing = (async () => {
      const all = Promise.all(this.exited);
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 1000).unref());
      if ((await Promise.race([all.then(() => 'done' as const), timer])) === 'timeout') {
        await Promise.all(this.workers.map((w) => w.terminate()));
      }
    })();
    return this.closing;
  }
}
