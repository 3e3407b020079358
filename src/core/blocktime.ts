/**
 * Destination postcopy blocktime (capability `postcopy-blocktime`, facts §3.9), following QEMU
 * 7.2's accounting: when a vCPU faults on a missing page, the fault time and page are recorded
 * for it; when that page is placed, the elapsed time is added to every vCPU waiting on it. The
 * total only grows by intervals during which *all* vCPUs were blocked at once: when a placement
 * ends a moment at which every vCPU was blocked, the time since the last fault began (the
 * moment the last vCPU got blocked) is added.
 *
 * Times are whole milliseconds since the tracker was created, at least 1 (QEMU reserves 0 for
 * "no fault"), summed as uint32 like QEMU's counters.
 *
 * What it deliberately doesn't do: QEMU's use of address 0 as "no fault" (pages at offset 0
 * are tracked normally here), or QEMU 10.1's latency fields.
 */
import { assert } from '../lib/assert.ts';
import { msOf } from './bandwidth.ts';

/** The two `query-migrate` members the tracker produces. */
export interface BlocktimeFields {
  readonly 'postcopy-blocktime': number;
  readonly 'postcopy-vcpu-blocktime': readonly number[];
}

export class PostcopyBlocktime {
  /** Number of vCPUs tracked. */
  readonly vcpuCount: number;
  /** Creation time, ms (QEMU's start_time). */
  private readonly startMs: number;
  /** Per vCPU: time offset of its outstanding fault, 0 when not blocked. */
  private readonly faultTimeMs: number[];
  /** Per vCPU: page of its outstanding fault, null when not blocked. */
  private readonly faultPage: (number | null)[];
  /** Per vCPU: accumulated blocked time, ms (uint32). */
  private readonly vcpuBlocktimeMs: number[];
  /** Accumulated all-vCPUs-blocked time, ms (uint32). */
  private totalMs = 0;
  /** Time offset of the most recent fault begin, ms. */
  private lastBeginMs = 0;
  /** vCPUs currently blocked (QEMU's smp_cpus_down). */
  private vcpusDown = 0;

  constructor(vcpuCount: number, nowNs: number) {
    assert(Number.isInteger(vcpuCount) && vcpuCount > 0, `bad vCPU count ${vcpuCount}`);
    this.vcpuCount = vcpuCount;
    this.startMs = msOf(nowNs);
    this.faultTimeMs = new Array<number>(vcpuCount).fill(0);
    this.faultPage = new Array<number | null>(vcpuCount).fill(null);
    this.vcpuBlocktimeMs = new Array<number>(vcpuCount).fill(0);
  }

  /** Milliseconds since creation, at least 1, as uint32 (QEMU's get_low_time_offset). */
  private offsetMs(nowNs: number): number {
    const offset = msOf(nowNs) - this.startMs;
    return offset < 1 ? 1 : offset >>> 0;
  }

  /**
   * `vcpu` faulted on `page` at `nowNs`. `alreadyReceived` is true when the page arrived between
   * the fault and this call; then nothing stays recorded (QEMU's late received-bitmap check).
   */
  faultBegin(vcpu: number, page: number, nowNs: number, alreadyReceived = false): void {
    assert(vcpu >= 0 && vcpu < this.vcpuCount, `vCPU ${vcpu} out of range`);
    const offset = this.offsetMs(nowNs);
    if (this.faultPage[vcpu] === null) this.vcpusDown++;
    this.lastBeginMs = offset;
    this.faultTimeMs[vcpu] = offset;
    this.faultPage[vcpu] = page;
    if (alreadyReceived) {
      this.faultPage[vcpu] = null;
      this.faultTimeMs[vcpu] = 0;
      this.vcpusDown--;
    }
  }

  /**
   * `page` was placed at `nowNs`: every vCPU blocked on it is released and charged. If all vCPUs
   * were blocked at that moment, the total grows by the time since the last fault began.
   */
  pagePlaced(page: number, nowNs: number): void {
    const offset = this.offsetMs(nowNs);
    let released = 0;
    let allWereDown = false;
    for (let i = 0; i < this.vcpuCount; i++) {
      if (this.faultPage[i] !== page || this.faultTimeMs[i] === 0) continue;
      this.faultPage[i] = null;
      released++;
      if (!allWereDown && this.vcpusDown === this.vcpuCount) allWereDown = true;
      this.vcpuBlocktimeMs[i] = (this.vcpuBlocktimeMs[i] + (offset - this.faultTimeMs[i])) >>> 0;
    }
    this.vcpusDown -= released;
    if (allWereDown) this.totalMs = (this.totalMs + (offset - this.lastBeginMs)) >>> 0;
  }

  /** vCPUs blocked now. */
  blockedVcpuCount(): number {
    return this.vcpusDown;
  }

  /** postcopy-blocktime: ms during which all vCPUs were blocked. */
  totalBlocktimeMs(): number {
    return this.totalMs;
  }

  /** postcopy-vcpu-blocktime: ms each vCPU was blocked. */
  perVcpuBlocktimeMs(): number[] {
    return [...this.vcpuBlocktimeMs];
  }

  /** The `query-migrate` members (shown by the destination once completed). */
  toQueryFields(): BlocktimeFields {
    return { 'postcopy-blocktime': this.totalMs, 'postcopy-vcpu-blocktime': this.perVcpuBlocktimeMs() };
  }
}
