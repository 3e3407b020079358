/**
 * One vCPU, as a worker thread: it runs a seeded workload (guest/workloads) against the VM's
 * shared RAM, marks every page it writes in the shared dirty log (write first, mark second,
 * see memory/dirty-log.ts), and obeys the control block (vcpu-control.ts).
 *
 * The loop: step the workload to now, save its state in the vCPU state page, then sleep about
 * STEP_INTERVAL_MS (Atomics.wait on the command sequence, so a new command ends the sleep).
 * Auto-converge: after each CPU_THROTTLE_TIMESLICE of running, the vCPU sleeps for QEMU's
 * pct / (1 − pct) × timeslice and the workload owes nothing for that time. PAUSE and an idle
 * WAIT are acknowledged before sleeping, so the main thread knows no write is in flight.
 *
 * Postcopy: while TRAP is set, every page is checked in the present map (the destination's
 * received map) before it is touched. A missing page is a fault: the vCPU publishes the page,
 * posts `{ kind: 'fault', vcpu, page }` to the main thread and blocks in Atomics.wait on its
 * wake word until the page is present (the main thread places it and wakes the vCPU), trapping
 * ends, or it is told to exit; as userfaultfd blocks a thread. The wait is recorded.
 *
 * The workload sees its own pages as 0..n-1; the target maps them onto the guest pages the
 * main thread allocated for this vCPU, rotated by the incrementer's saved cursor.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { CPU_THROTTLE_TIMESLICE_NS, throttleSleepNs } from '../core/auto-converge.ts';
import { Prng } from '../lib/prng.ts';
import { NS_PER_MS, TARGET_PAGE_SIZE } from '../lib/units.ts';
import { DirtyLog } from '../memory/dirty-log.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { createWorkload, NOT_STALLED, type PageWriteTarget, type Workload, type WorkloadSpec } from '../guest/workloads/index.ts';
import { IncrementerWorkload } from '../guest/workloads/incrementer.ts';
import { ChurnWorkload } from '../guest/workloads/churn.ts';
import { VcpuPageCache } from './page-cache.ts';
import {
  STAT_PAGE_WRITES, STAT_STEPS, VCPU_STATE_MAGIC, VCPU_STATE_PAGE, VCPU_STATE_SLOT_BYTES,
  VcpuCommand, VcpuControl, VcpuState,
} from './vcpu-control.ts';

/** How long a vCPU sleeps between workload steps. */
export const STEP_INTERVAL_MS = 1;
/** The same for a vCPU without pages to write (an idle guest). */
const IDLE_STEP_INTERVAL_MS = 20;
/** Longest single sleep in a fault wait (the wait re-checks its page after each). */
const FAULT_WAIT_SLICE_MS = 50;

/** What the main thread gives each vCPU worker. */
export interface VcpuWorkerData {
  readonly vcpu: number;
  readonly control: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly vcpuCount: number;
  readonly memory: SharedArrayBuffer;
  readonly dirtyLog: SharedArrayBuffer;
  readonly received: SharedArrayBuffer;
  readonly pageCount: number;
  /** process.hrtime.bigint() at VM start: times are ns since then. */
  readonly epochNs: bigint;
  readonly plan: VcpuPlan;
  /** The nice value this thread sets on itself before it reports ready; 0 leaves it as it is. */
  readonly nice: number;
}

/** The workload of one vCPU and the guest pages it owns. */
export interface VcpuPlan {
  /** The workload over pages 0..pageCount-1 of the vCPU's own region. */
  readonly workload: WorkloadSpec;
  readonly seed: number;
  /** First guest page of each block of the region, and the blocks' order. */
  readonly blockPfns: Int32Array;
  readonly blockOrder: number;
  readonly pageCount: number;
  /** The workload is an incrementer, whose cursor is saved in the vCPU state page. */
  readonly savesCursor: boolean;
  /**
   * kernel-build: the vCPU's page cache (page-cache.ts). The workload then allocates its own
   * pages and sees guest pages directly (no region, no rotation).
   */
  readonly pageCache: SharedArrayBuffer | null;
}

/** The guest page of the region's i-th page. */
export function regionPage(plan: VcpuPlan, i: number): number {
  return plan.blockPfns[i >>> plan.blockOrder] + (i & ((1 << plan.blockOrder) - 1));
}

type FaultOutcome = 'present' | 'exit';

class Vcpu {
  private readonly control: VcpuControl;
  private readonly bytes: Uint8Array;
  private readonly stateView: DataView;
  private readonly log: DirtyLog;
  private readonly received: ReceivedMap;
  private readonly workload: Workload;
  /** Region index of the workload's page 0 (the incrementer's restored cursor). */
  private rotation = 0;
  private missingPage = -1;
  private sliceStartNs = 0;
  private stateLoaded = false;
  /** The workload's view of memory (see the module comment). */
  private readonly target: PageWriteTarget;
  private readonly data: VcpuWorkerData;
  /** kernel-build's page cache, or null. */
  private readonly pageCache: VcpuPageCache | null;

  constructor(data: VcpuWorkerData) {
    this.data = data;
    this.control = new VcpuControl(data.vcpuCount, { control: data.control, stats: data.stats });
    this.bytes = new Uint8Array(data.memory);
    this.stateView = new DataView(data.memory, VCPU_STATE_PAGE * TARGET_PAGE_SIZE + data.vcpu * VCPU_STATE_SLOT_BYTES, VCPU_STATE_SLOT_BYTES);
    this.log = DirtyLog.attach(data.dirtyLog, data.pageCount);
    this.received = ReceivedMap.attach(data.received, data.pageCount);
    const plan = data.plan;
    this.pageCache = plan.pageCache === null ? null : new VcpuPageCache(plan.pageCache);
    this.workload = this.makeWorkload(plan);
    this.target = this.makeTarget();
  }

  private makeWorkload(plan: VcpuPlan): Workload {
    const prng = new Prng(plan.seed);
    if (this.pageCache !== null && plan.workload.kind === 'churn') return new ChurnWorkload({ ...plan.workload, allocator: this.pageCache }, prng);
    const spec = { ...plan.workload, firstPage: 0, sizeBytes: plan.pageCount * TARGET_PAGE_SIZE } as WorkloadSpec;
    return createWorkload(spec, { pageCount: plan.pageCount, prng });
  }

  private nowNs(): number {
    return Number(process.hrtime.bigint() - this.data.epochNs);
  }

  private makeTarget(): PageWriteTarget {
    const bytes = this.bytes;
    return {
      pageCount: this.data.plan.pageCount,
      writeByte: (page, offset, value) => {
        const pfn = this.physical(page);
        bytes[pfn * TARGET_PAGE_SIZE + offset] = value;
        this.log.markDirty(pfn);
        this.pageCache?.markWritten(pfn);
      },
      readByte: (page, offset) => bytes[this.physical(page) * TARGET_PAGE_SIZE + offset],
      isPresent: (page) => {
        const pfn = this.physical(page);
        if (!this.control.trapping || this.received.isReceived(pfn)) return true;
        this.missingPage = pfn;
        return false;
      },
    };
  }

  private physical(page: number): number {
    if (this.pageCache !== null) return page;
    const n = this.data.plan.pageCount;
    const i = page + this.rotation;
    return regionPage(this.data.plan, i >= n ? i - n : i);
  }

  /** The main loop; returns when told to exit. */
  run(): void {
    const { control, data } = this;
    for (;;) {
      const seq = control.sequence;
      const command = control.command;
      if (command === VcpuCommand.Exit) break;
      if (command !== VcpuCommand.Run) {
        control.setState(data.vcpu, command === VcpuCommand.Pause ? VcpuState.Paused : VcpuState.Starting);
        control.waitForSequence(seq, 1000);
        continue;
      }
      if (control.state(data.vcpu) !== VcpuState.Running) this.resume();
      if (!this.stateLoaded && this.loadState() === 'exit') break;
      if (this.step() === 'exit') break;
      this.sleepAfterStep(seq);
    }
    control.setState(data.vcpu, VcpuState.Exited);
  }

  /** Back to running after a pause: the guest owes nothing for the stopped time. */
  private resume(): void {
    const now = this.nowNs();
    this.workload.skipTo(now);
    this.sliceStartNs = now;
    this.control.setState(this.data.vcpu, VcpuState.Running);
  }

  /** Restores the incrementer's cursor from the state page (a fault in postcopy). */
  private loadState(): FaultOutcome {
    if (this.data.plan.savesCursor) {
      if (this.control.trapping && !this.received.isReceived(VCPU_STATE_PAGE)) {
        if (this.waitForPage(VCPU_STATE_PAGE) === 'exit') return 'exit';
      }
      if (this.stateView.getUint32(0, true) === VCPU_STATE_MAGIC) {
        const cursor = this.stateView.getUint32(4, true);
        this.rotation = cursor < this.data.plan.pageCount ? cursor : 0;
      }
    }
    this.stateLoaded = true;
    return 'present';
  }

  private step(): FaultOutcome {
    const { control, data } = this;
    const before = this.workload.stats().pageWrites;
    const stalled = this.workload.step(this.nowNs(), this.target);
    this.pageCache?.flush();
    control.addStat(data.vcpu, STAT_PAGE_WRITES, this.workload.stats().pageWrites - before);
    control.addStat(data.vcpu, STAT_STEPS, 1);
    this.saveState();
    if (stalled === NOT_STALLED) return 'present';
    const page = this.missingPage;
    this.missingPage = -1;
    return page < 0 ? 'present' : this.waitForPage(page);
  }

  /** Writes the incrementer's cursor into the state page (write, then mark). */
  private saveState(): void {
    if (!(this.workload instanceof IncrementerWorkload)) return;
    const n = this.data.plan.pageCount;
    const cursor = (this.workload.cursor + this.rotation) % Math.max(1, n);
    this.stateView.setUint32(0, VCPU_STATE_MAGIC, true);
    this.stateView.setUint32(4, cursor, true);
    this.stateView.setUint32(8, this.workload.passes, true);
    this.log.markDirty(VCPU_STATE_PAGE);
  }

  /** Blocks until `page` is present (see the module comment). */
  private waitForPage(page: number): FaultOutcome {
    const { control, data } = this;
    const startNs = this.nowNs();
    control.setFaultPage(data.vcpu, page);
    control.bumpFaultSequence(data.vcpu);
    parentPort?.postMessage({ kind: 'fault', vcpu: data.vcpu, page });
    let outcome: FaultOutcome = 'present';
    for (;;) {
      const seen = control.wakeCount(data.vcpu);
      if (this.received.isReceived(page) || !control.trapping) break;
      const command = control.command;
      if (command === VcpuCommand.Exit) {
        outcome = 'exit';
        break;
      }
      control.setState(data.vcpu, command === VcpuCommand.Pause ? VcpuState.Paused : VcpuState.FaultWait);
      control.waitForWake(data.vcpu, seen, FAULT_WAIT_SLICE_MS);
    }
    control.setFaultPage(data.vcpu, -1);
    control.recordFaultLatency(data.vcpu, this.nowNs() - startNs, startNs, page);
    if (outcome === 'present' && control.command === VcpuCommand.Run) control.setState(data.vcpu, VcpuState.Running);
    return outcome;
  }

  /** Sleeps until the next step; throttled, the vCPU also gives up its share of time. */
  private sleepAfterStep(seq: number): void {
    const { control } = this;
    const throttle = control.throttlePercent;
    const now = this.nowNs();
    if (throttle > 0 && now - this.sliceStartNs >= CPU_THROTTLE_TIMESLICE_NS) {
      control.waitForSequence(seq, throttleSleepNs(throttle) / NS_PER_MS);
      const after = this.nowNs();
      this.workload.skipTo(after);
      this.sliceStartNs = after;
      return;
    }
    if (throttle === 0) this.sliceStartNs = now;
    control.waitForSequence(seq, this.data.plan.pageCount === 0 ? IDLE_STEP_INTERVAL_MS : STEP_INTERVAL_MS);
  }
}

/** This thread's kernel id (Linux: /proc/thread-self → PID/task/TID), or -1 elsewhere. */
function threadId(): number {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return -1;
  }
}

/**
 * This thread's nice value as the kernel has it: field 19 of /proc/thread-self/stat (counted
 * after the parenthesised name, which may hold spaces); null where there is no such file.
 */
export function threadNice(): number | null {
  let stat: string;
  try {
    stat = readFileSync('/proc/thread-self/stat', 'utf8');
  } catch {
    return null;
  }
  // Fields 3.. follow the name's closing parenthesis; field 19 is the 17th of them.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/**
 * Lowers this thread's priority to `nice` (Linux's setpriority(PRIO_PROCESS, tid) acts on one
 * thread). Throws where it cannot: no thread id, or the kernel refused.
 */
function setThreadNice(nice: number): void {
  if (nice === 0) return;
  const tid = threadId();
  if (tid < 0) throw new Error(`cannot set the vCPU thread's nice to ${nice}: no /proc/thread-self on this system`);
  setPriority(tid, nice);
}

/** The worker's entry point (called by the bootstrap in vcpus.ts). */
export function vcpuWorkerMain(): void {
  const data = workerData as VcpuWorkerData;
  setThreadNice(data.nice);
  const vcpu = new Vcpu(data);
  parentPort?.postMessage({ kind: 'ready', vcpu: data.vcpu, tid: threadId(), nice: threadNice() });
  vcpu.run();
  parentPort?.postMessage({ kind: 'exited', vcpu: data.vcpu });
}
