/**
 * Per-hop timestamps of postcopy page requests, for the latency bench (src/bench/
 * postcopy-latency.ts). Off unless a process calls `enableHopTrace()`; when off, every hook
 * is one null check.
 *
 * Clock: process.hrtime.bigint() as a Number of ns, CLOCK_MONOTONIC, the same in every process
 * of the machine, so the source's and the destination's stamps can be subtracted.
 *
 * A request is known by its number on the return path: the destination's k-th REQ_PAGES[_ID]
 * is the source's k-th (one ordered connection; no recovery in the bench). The destination
 * also knows each request's page, so the vCPU's fault (by page) joins the two.
 *
 *   destination  fault seen by the main thread → request written to the return path
 *   source       return-path bytes read → requested page handed to its socket
 *   destination  bytes carrying the page read (their socket callback) → page placed, vCPU woken
 *   vCPU         fault start and wake-up (vcpu-control.ts's fault rings)
 */

/** Now, ns, on the machine-wide monotonic clock. */
export function hopNowNs(): number {
  return Number(process.hrtime.bigint());
}

/** The destination's stamps of one request (0 where unknown). */
export interface DestHop {
  readonly page: number;
  readonly request: number;
  readonly faultSeenNs: number;
  readonly requestWrittenNs: number;
  /** When the socket callback that delivered the page's bytes ran. */
  readonly pageReadNs: number;
  readonly placedNs: number;
  readonly channel: 'main' | 'preempt' | '';
}

/** The source's stamps of one request. */
export interface SourceHop {
  readonly request: number;
  readonly readNs: number;
  readonly sentNs: number;
}

class DestHopTrace {
  private readonly byPage = new Map<number, { page: number; request: number; faultSeenNs: number; requestWrittenNs: number; pageReadNs: number; placedNs: number; channel: 'main' | 'preempt' | '' }>();
  /** The socket callback being handled now: its channel and when it started. */
  private readChannel: 'main' | 'preempt' | '' = '';
  private readNs = 0;
  /** Requests sent so far, and when the return path was last written. */
  private requests = 0;
  private sentNs = 0;

  faultSeen(page: number, nowNs: number): void {
    if (!this.byPage.has(page)) this.byPage.set(page, { page, request: 0, faultSeenNs: nowNs, requestWrittenNs: 0, pageReadNs: 0, placedNs: 0, channel: '' });
  }

  /** Return-path bytes were handed to the socket (a request, or SHUT, PONG ...). */
  sent(nowNs: number): void {
    this.sentNs = nowNs;
  }

  /** The fault on `page` sent the next request, with the last `sent` bytes. */
  requestWritten(page: number): void {
    this.requests++;
    const hop = this.byPage.get(page);
    if (hop === undefined || hop.request !== 0) return;
    hop.request = this.requests;
    hop.requestWrittenNs = this.sentNs;
  }

  /** Bytes that arrived at `arrivedNs` on `channel` are being loaded now. */
  loading(channel: 'main' | 'preempt', arrivedNs: number): void {
    this.readChannel = channel;
    this.readNs = arrivedNs;
  }

  placed(page: number, nowNs: number): void {
    const hop = this.byPage.get(page);
    if (hop === undefined || hop.placedNs !== 0) return;
    hop.placedNs = nowNs;
    hop.pageReadNs = this.readNs;
    hop.channel = this.readChannel;
  }

  hops(): DestHop[] {
    return [...this.byPage.values()];
  }
}

class SourceHopTrace {
  private readonly readNs: number[] = [];
  private readonly sentNs: number[] = [];

  /** Requests numbered up to `received` (1-based) were read in a callback that began at `nowNs`. */
  requestsRead(received: number, nowNs: number): void {
    while (this.readNs.length < received) this.readNs.push(nowNs);
  }

  /** Requests numbered up to `served` had their page handed to the socket by `nowNs`. */
  requestsServed(served: number, nowNs: number): void {
    while (this.sentNs.length < served) this.sentNs.push(nowNs);
  }

  hops(): SourceHop[] {
    return this.readNs.map((readNs, i) => ({ request: i + 1, readNs, sentNs: this.sentNs[i] ?? 0 }));
  }
}

/** The traces of this process (null until enabled). */
export const hopTrace: { dest: DestHopTrace | null; source: SourceHopTrace | null } = { dest: null, source: null };

/** Starts recording (the latency bench's VM processes). */
export function enableHopTrace(): void {
  hopTrace.dest = new DestHopTrace();
  hopTrace.source = new SourceHopTrace();
}
