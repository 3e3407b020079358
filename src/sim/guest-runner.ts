/**
 * Runs the simulated guest on whichever side it lives: its two vCPUs, their faults and their
 * stalls.
 *
 * vCPU 0 runs the workload; vCPU 1 runs the kernel's work (the balloon and virtio-mem drivers).
 * On the source both simply step (Guest.step). On the destination, while postcopy traps
 * faults, a vCPU only touches present pages: the workload asks `isPresent` through its target
 * and gives its page back as a stall; the kernel's work needs its ring pages (the vring window
 * of guest.ts), which are checked before it runs. A stalled vCPU reports a fault (the world
 * calls DestEngine.onGuestFault) and waits for the `page-ready` of its page; the other vCPU
 * keeps running.
 *
 * Stalls are measured from the fault to the page-ready (or to the end of the run for a fault
 * never served). Every vCPU faults at most once at a time, so the faults in flight are bounded
 * by the vCPU count.
 *
 * A memory-hungry phase (the scenario's `pressure`) is a second workload on vCPU 0, started by
 * the world; it runs after the scenario's workload in each step and stalls the same way.
 *
 * What it deliberately doesn't do: decide when the guest runs or where (the world does:
 * stop-guest, run-guest), or talk to the engines itself (the `fault` callback does).
 */
import type { Guest } from '../guest/guest.ts';
import { NOT_STALLED, type Workload } from '../guest/workloads/types.ts';
import { GuestMemoryTarget } from '../guest/workloads/memory-target.ts';
import type { FaultRecord } from './checkers/postcopy-placement.ts';
import type { TraceEvents } from './trace-events.ts';

/** The vCPUs of the simulated guest. */
export const VCPU_WORKLOAD = 0;
export const VCPU_KERNEL = 1;
export const GUEST_VCPU_COUNT = 2;

/** What the runner needs from the world. */
export interface GuestRunnerDeps {
  readonly guest: Guest;
  readonly trace: TraceEvents;
  /** Whether the destination traps faults now (postcopy listening until its end). */
  isTrapping(): boolean;
  /** Whether the destination has page `pageIndex`. */
  isReceived(pageIndex: number): boolean;
  /** Reports a fault to the destination engine; true when the page is present at once. */
  fault(vcpuIndex: number, pageIndex: number, nowNs: number): boolean;
  /** Pages the kernel's work touches, [start, end). */
  readonly kernelPages: { readonly start: number; readonly end: number };
  /** Called once, when every kernel page is present on the destination (devices may load). */
  onKernelPagesReady(nowNs: number): void;
}

export class GuestRunner {
  private readonly deps: GuestRunnerDeps;
  /** Where the guest runs. */
  side: 'source' | 'destination' = 'source';
  /** Whether its vCPUs run (false between stop-guest and run-guest). */
  running = true;
  /** Per vCPU: the page it waits for, or -1. */
  private readonly waitingPage = [-1, -1];
  /** Per vCPU: when its wait began, ns. */
  private readonly waitSinceNs = [0, 0];
  /** The workload's view of the destination's memory (present pages only while trapping). */
  private destinationTarget: GuestMemoryTarget | null = null;
  /** The memory-hungry phase, once started. */
  private pressure: Workload | null = null;
  /** The pressure workload's view of the source's memory (no faults there). */
  private sourceTarget: GuestMemoryTarget | null = null;
  /** Set once every kernel page was present on the destination (it stays so). */
  private kernelPagesReady = false;
  /** Faults raised, in total. */
  faultCount = 0;
  /** The longest stall, ns, and its page. */
  longestStallNs = 0;
  longestStallPage = -1;
  /** Most vCPUs waiting at once. */
  waitingHighWater = 0;

  constructor(deps: GuestRunnerDeps) {
    this.deps = deps;
  }

  /** The guest stops (stop-guest). */
  stop(nowNs: number): void {
    this.running = false;
    this.deps.trace.guest(nowNs, this.side, 'stop');
  }

  /** The guest runs again on `side` (run-guest); it owes nothing for the stopped time. */
  resume(side: 'source' | 'destination', nowNs: number): void {
    if (side === 'destination' && this.destinationTarget === null) {
      this.destinationTarget = new GuestMemoryTarget(this.deps.guest.memory, (p) => !this.deps.isTrapping() || this.deps.isReceived(p));
    }
    this.side = side;
    this.running = true;
    this.deps.guest.skipTo(nowNs);
    this.pressure?.skipTo(nowNs);
    this.deps.trace.guest(nowNs, side, 'run');
  }

  /** Starts the memory-hungry phase at `nowNs` (it owes nothing for the time before). */
  startPressure(workload: Workload, nowNs: number): void {
    workload.skipTo(nowNs);
    this.pressure = workload;
    this.sourceTarget = new GuestMemoryTarget(this.deps.guest.memory);
    this.deps.trace.guest(nowNs, this.side, 'pressure');
  }

  /** One step of both vCPUs at `nowNs`. */
  step(nowNs: number): void {
    if (!this.running) return;
    if (this.side === 'source') {
      this.deps.guest.step(nowNs);
      this.pressure?.step(nowNs, this.sourceTarget as GuestMemoryTarget);
      return;
    }
    const guest = this.deps.guest;
    if (this.waitingPage[VCPU_KERNEL] < 0 && this.kernelReady(nowNs)) {
      guest.balloon?.step(nowNs);
      guest.virtioMem?.step(nowNs);
    }
    if (this.waitingPage[VCPU_WORKLOAD] < 0) {
      const target = this.destinationTarget as GuestMemoryTarget;
      let stalled = guest.workload.step(nowNs, target);
      if (stalled === NOT_STALLED && this.pressure !== null) stalled = this.pressure.step(nowNs, target);
      if (stalled !== NOT_STALLED) this.raise(VCPU_WORKLOAD, stalled, nowNs);
    }
  }

  /** Whether every kernel page is present; faults on the first missing one otherwise. */
  private kernelReady(nowNs: number): boolean {
    if (this.kernelPagesReady) return true;
    if (this.deps.isTrapping()) {
      const { start, end } = this.deps.kernelPages;
      for (let p = start; p < end; p++) {
        if (this.deps.isReceived(p)) continue;
        return this.raise(VCPU_KERNEL, p, nowNs);
      }
    }
    this.kernelPagesReady = true;
    this.deps.onKernelPagesReady(nowNs);
    return true;
  }

  /** vCPU `vcpu` faults on `page`; returns true when it may go on at once. */
  private raise(vcpu: number, page: number, nowNs: number): boolean {
    this.faultCount++;
    this.deps.trace.fault(nowNs, page);
    if (this.deps.fault(vcpu, page, nowNs)) return true;
    this.waitingPage[vcpu] = page;
    this.waitSinceNs[vcpu] = nowNs;
    const waiting = (this.waitingPage[0] >= 0 ? 1 : 0) + (this.waitingPage[1] >= 0 ? 1 : 0);
    if (waiting > this.waitingHighWater) this.waitingHighWater = waiting;
    return false;
  }

  /** Page `page` is present now; returns true when a vCPU was waiting for it. */
  onPageReady(page: number, nowNs: number): boolean {
    let woke = false;
    for (let vcpu = 0; vcpu < GUEST_VCPU_COUNT; vcpu++) {
      if (this.waitingPage[vcpu] !== page) continue;
      const stalledNs = nowNs - this.waitSinceNs[vcpu];
      this.noteStall(stalledNs, page);
      this.deps.trace.pageReady(nowNs, page, stalledNs);
      this.waitingPage[vcpu] = -1;
      woke = true;
    }
    return woke;
  }

  private noteStall(stalledNs: number, page: number): void {
    if (stalledNs <= this.longestStallNs) return;
    this.longestStallNs = stalledNs;
    this.longestStallPage = page;
  }

  /** The faults still waiting at `nowNs` (the end of the run); they count as stalls until then. */
  unservedFaults(nowNs: number): FaultRecord[] {
    const out: FaultRecord[] = [];
    for (let vcpu = 0; vcpu < GUEST_VCPU_COUNT; vcpu++) {
      const page = this.waitingPage[vcpu];
      if (page < 0) continue;
      this.noteStall(nowNs - this.waitSinceNs[vcpu], page);
      out.push({ pageIndex: page, faultNs: this.waitSinceNs[vcpu] });
    }
    return out;
  }
}
