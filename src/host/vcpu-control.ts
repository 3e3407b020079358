/**
 * The shared control block between the main thread and the vCPU worker threads of one VM, and
 * the small per-vCPU state the guest keeps in its own RAM.
 *
 * Control block (one SharedArrayBuffer, Int32 words):
 *
 *   word 0  CMD        what the vCPUs should do: WAIT (not started), RUN, PAUSE, EXIT
 *   word 1  CMD_SEQ    bumped on every command or throttle change; idle vCPUs Atomics.wait on it
 *   word 2  THROTTLE   auto-converge throttle, percent of vCPU time taken away (0..99)
 *   word 3  TRAP       1 while postcopy traps faults: a vCPU checks the present map first
 *   word 4  ACK        bumped by a vCPU after each state change; the main thread waits on it
 *   word 8 + 8i ...    vCPU i: STATE, FAULT_PAGE (-1 none), WAKE (bumped to wake it from a
 *                      fault wait), LATENCY_COUNT (fault latencies recorded so far), FAULT_SEQ
 *                      (bumped after FAULT_PAGE is set: the main thread handles each fault
 *                      once, whether a message or its own polling finds it first)
 *
 * Statistics (a second SharedArrayBuffer, Float64, one writer each): per vCPU the page writes,
 * steps, faults, total and longest fault wait in ns, then a ring of the first
 * FAULT_LATENCY_RING_SIZE fault latencies (ns), then two rings as long with each of those faults'
 * start (ns since the VM's epoch) and page (for the latency bench's per-hop breakdown,
 * host/hop-trace.ts). A vCPU writes a fault's entries, then publishes the count with
 * Atomics.store, so a reader that loads the count sees the values before it.
 *
 * The vCPU state page: the incrementer's cursor lives in guest RAM (page VCPU_STATE_PAGE, in
 * the kernel's reserved memory, 16 bytes per vCPU: magic, cursor, passes), written after every
 * step. It is migrated like any page, so a destination vCPU continues the walk exactly where
 * the source stopped, with no device section that QEMU would not know.
 */

/** What the vCPUs are told to do. */
export const VcpuCommand = { Wait: 0, Run: 1, Pause: 2, Exit: 3 } as const;
export type VcpuCommand = (typeof VcpuCommand)[keyof typeof VcpuCommand];

/** What a vCPU is doing. */
export const VcpuState = { Starting: 0, Running: 1, Paused: 2, FaultWait: 3, Exited: 4 } as const;
export type VcpuState = (typeof VcpuState)[keyof typeof VcpuState];

export const CTL_CMD = 0;
export const CTL_CMD_SEQ = 1;
export const CTL_THROTTLE = 2;
export const CTL_TRAP = 3;
export const CTL_ACK = 4;
const CTL_VCPU_BASE = 8;
const CTL_VCPU_WORDS = 8;
const VCPU_STATE = 0;
const VCPU_FAULT_PAGE = 1;
const VCPU_WAKE = 2;
const VCPU_LATENCY_COUNT = 3;
const VCPU_FAULT_SEQ = 4;

/** Fault latencies kept per vCPU (later ones are counted in the totals only). */
export const FAULT_LATENCY_RING_SIZE = 65536;
/** Float64 statistics words per vCPU before its latency ring. */
const STAT_WORDS = 8;
export const STAT_PAGE_WRITES = 0;
export const STAT_STEPS = 1;
export const STAT_FAULTS = 2;
export const STAT_FAULT_WAIT_NS_TOTAL = 3;
export const STAT_FAULT_WAIT_NS_MAX = 4;

/** The guest page holding the vCPUs' saved state (inside the kernel's reserved memory). */
export const VCPU_STATE_PAGE = 1;
/** Bytes of one vCPU's slot in the state page. */
export const VCPU_STATE_SLOT_BYTES = 16;
/** "LMCV", marking a slot that holds a saved state. */
export const VCPU_STATE_MAGIC = 0x4c4d4356;

/** Index of word `word` of vCPU `vcpu` in the control block. */
function vcpuWord(vcpu: number, word: number): number {
  return CTL_VCPU_BASE + vcpu * CTL_VCPU_WORDS + word;
}

/** The control block and statistics of `vcpuCount` vCPUs, over shared buffers. */
export class VcpuControl {
  readonly vcpuCount: number;
  readonly controlBuffer: SharedArrayBuffer;
  readonly statsBuffer: SharedArrayBuffer;
  /** The control words. */
  readonly words: Int32Array;
  /** The statistics, Float64. */
  readonly stats: Float64Array;

  constructor(vcpuCount: number, buffers?: { readonly control: SharedArrayBuffer; readonly stats: SharedArrayBuffer }) {
    this.vcpuCount = vcpuCount;
    this.controlBuffer = buffers?.control ?? new SharedArrayBuffer((CTL_VCPU_BASE + vcpuCount * CTL_VCPU_WORDS) * 4);
    this.statsBuffer = buffers?.stats ?? new SharedArrayBuffer(Math.max(1, vcpuCount) * (STAT_WORDS + 3 * FAULT_LATENCY_RING_SIZE) * 8);
    this.words = new Int32Array(this.controlBuffer);
    this.stats = new Float64Array(this.statsBuffer);
    if (buffers === undefined) for (let i = 0; i < vcpuCount; i++) this.words[vcpuWord(i, VCPU_FAULT_PAGE)] = -1;
  }

  // ---- commands (main thread) ------------------------------------------------------------

  get command(): VcpuCommand {
    return Atomics.load(this.words, CTL_CMD) as VcpuCommand;
  }

  /** Sets the command and wakes every vCPU, idle or waiting on a fault. */
  setCommand(command: VcpuCommand): void {
    Atomics.store(this.words, CTL_CMD, command);
    this.bumpSequence();
    for (let i = 0; i < this.vcpuCount; i++) this.wake(i);
  }

  /** Sets the throttle percentage (0 removes it). */
  setThrottle(percent: number): void {
    Atomics.store(this.words, CTL_THROTTLE, Math.max(0, Math.min(99, Math.trunc(percent))));
    this.bumpSequence();
  }

  get throttlePercent(): number {
    return Atomics.load(this.words, CTL_THROTTLE);
  }

  /** Turns fault trapping on or off; turning it off releases every fault wait. */
  setTrap(on: boolean): void {
    Atomics.store(this.words, CTL_TRAP, on ? 1 : 0);
    if (!on) for (let i = 0; i < this.vcpuCount; i++) this.wake(i);
  }

  get trapping(): boolean {
    return Atomics.load(this.words, CTL_TRAP) === 1;
  }

  get sequence(): number {
    return Atomics.load(this.words, CTL_CMD_SEQ);
  }

  private bumpSequence(): void {
    Atomics.add(this.words, CTL_CMD_SEQ, 1);
    Atomics.notify(this.words, CTL_CMD_SEQ);
  }

  /** Wakes vCPU `vcpu` from a fault wait (it re-checks its page). */
  wake(vcpu: number): void {
    const index = vcpuWord(vcpu, VCPU_WAKE);
    Atomics.add(this.words, index, 1);
    Atomics.notify(this.words, index);
  }

  /** Wakes every vCPU waiting for page `pageIndex`; returns how many were. */
  wakePage(pageIndex: number): number {
    let woken = 0;
    for (let i = 0; i < this.vcpuCount; i++) {
      if (Atomics.load(this.words, vcpuWord(i, VCPU_FAULT_PAGE)) !== pageIndex) continue;
      this.wake(i);
      woken++;
    }
    return woken;
  }

  /**
   * Blocks the calling (main) thread until every vCPU is in one of `states`, or `timeoutMs`
   * passed. Returns true when they all are.
   */
  waitForStates(states: readonly VcpuState[], timeoutMs: number, nowMs: () => number): boolean {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const ack = Atomics.load(this.words, CTL_ACK);
      let all = true;
      for (let i = 0; i < this.vcpuCount; i++) if (!states.includes(this.state(i))) all = false;
      if (all) return true;
      const left = deadline - nowMs();
      if (left <= 0) return false;
      Atomics.wait(this.words, CTL_ACK, ack, Math.min(left, 5));
    }
  }

  // ---- per-vCPU state (both sides) ---------------------------------------------------------

  state(vcpu: number): VcpuState {
    return Atomics.load(this.words, vcpuWord(vcpu, VCPU_STATE)) as VcpuState;
  }

  /** A vCPU announces its state (worker side) and wakes a main thread waiting for it. */
  setState(vcpu: number, state: VcpuState): void {
    if (Atomics.exchange(this.words, vcpuWord(vcpu, VCPU_STATE), state) === state) return;
    Atomics.add(this.words, CTL_ACK, 1);
    Atomics.notify(this.words, CTL_ACK);
  }

  faultPage(vcpu: number): number {
    return Atomics.load(this.words, vcpuWord(vcpu, VCPU_FAULT_PAGE));
  }

  setFaultPage(vcpu: number, pageIndex: number): void {
    Atomics.store(this.words, vcpuWord(vcpu, VCPU_FAULT_PAGE), pageIndex);
  }

  /** Worker side: publishes a new fault (after setFaultPage). */
  bumpFaultSequence(vcpu: number): void {
    Atomics.add(this.words, vcpuWord(vcpu, VCPU_FAULT_SEQ), 1);
  }

  faultSequence(vcpu: number): number {
    return Atomics.load(this.words, vcpuWord(vcpu, VCPU_FAULT_SEQ));
  }

  wakeCount(vcpu: number): number {
    return Atomics.load(this.words, vcpuWord(vcpu, VCPU_WAKE));
  }

  /** Worker side: sleeps until woken or `timeoutMs` (the wake count must still be `seen`). */
  waitForWake(vcpu: number, seen: number, timeoutMs: number): void {
    Atomics.wait(this.words, vcpuWord(vcpu, VCPU_WAKE), seen, timeoutMs);
  }

  /** Worker side: sleeps until the command sequence moves past `seen` or `timeoutMs`. */
  waitForSequence(seen: number, timeoutMs: number): void {
    Atomics.wait(this.words, CTL_CMD_SEQ, seen, timeoutMs);
  }

  // ---- statistics ------------------------------------------------------------------------------

  private statBase(vcpu: number): number {
    return vcpu * (STAT_WORDS + 3 * FAULT_LATENCY_RING_SIZE);
  }

  stat(vcpu: number, word: number): number {
    return this.stats[this.statBase(vcpu) + word];
  }

  addStat(vcpu: number, word: number, delta: number): void {
    this.stats[this.statBase(vcpu) + word] += delta;
  }

  maxStat(vcpu: number, word: number, value: number): void {
    const index = this.statBase(vcpu) + word;
    if (value > this.stats[index]) this.stats[index] = value;
  }

  /** Worker side: records one fault: its latency, its start (ns since the VM's epoch), its page. */
  recordFaultLatency(vcpu: number, latencyNs: number, startNs: number, page: number): void {
    this.addStat(vcpu, STAT_FAULTS, 1);
    this.addStat(vcpu, STAT_FAULT_WAIT_NS_TOTAL, latencyNs);
    this.maxStat(vcpu, STAT_FAULT_WAIT_NS_MAX, latencyNs);
    const countIndex = vcpuWord(vcpu, VCPU_LATENCY_COUNT);
    const count = Atomics.load(this.words, countIndex);
    if (count >= FAULT_LATENCY_RING_SIZE) return;
    const ring = this.statBase(vcpu) + STAT_WORDS + count;
    this.stats[ring] = latencyNs;
    this.stats[ring + FAULT_LATENCY_RING_SIZE] = startNs;
    this.stats[ring + 2 * FAULT_LATENCY_RING_SIZE] = page;
    Atomics.store(this.words, countIndex, count + 1);
  }

  /** The fault latencies vCPU `vcpu` recorded, ns, in order. */
  faultLatencies(vcpu: number): number[] {
    const count = Atomics.load(this.words, vcpuWord(vcpu, VCPU_LATENCY_COUNT));
    const base = this.statBase(vcpu) + STAT_WORDS;
    return Array.from(this.stats.subarray(base, base + count));
  }

  /** The faults vCPU `vcpu` recorded, in order: start (ns since the VM's epoch), latency, page. */
  faultRecords(vcpu: number): Array<{ startNs: number; latencyNs: number; page: number }> {
    const count = Atomics.load(this.words, vcpuWord(vcpu, VCPU_LATENCY_COUNT));
    const base = this.statBase(vcpu) + STAT_WORDS;
    const out: Array<{ startNs: number; latencyNs: number; page: number }> = [];
    for (let i = 0; i < count; i++) {
      out.push({ latencyNs: this.stats[base + i], startNs: this.stats[base + i + FAULT_LATENCY_RING_SIZE], page: this.stats[base + i + 2 * FAULT_LATENCY_RING_SIZE] });
    }
    return out;
  }
}
