/**
 * A simulated network link: two independent directions (the migration stream and the return
 * path), each a FIFO pipe with a serialization rate, a one-way latency, a per-message overhead,
 * and a per-page scan cost charged to the sender.
 *
 * Timing of one message on a direction:
 *   ready     = max(now, sender CPU free)            (after any scan cost charged before it)
 *   start     = max(ready, end of previous message)  (the wire carries one message at a time)
 *   end       = start + (size + overhead) / bandwidth, rounded up to whole ns, where the
 *               bandwidth is piecewise constant over time and 0 during stalls
 *   delivered = end + latency, moved to a stall's end if it falls inside a stall, and never
 *               before the previous message's delivery (FIFO)
 * Scan cost: in QEMU the sender's time per page examined, even for zero pages, is comparable
 * to sending data; `scanPages` charges it to the sender's CPU timeline, which delays the
 * following sends (while the wire keeps draining what was already queued).
 *
 * Faults, for fault simulation: `setBandwidthAt` (a new rate from a time on), `stall` (nothing
 * is serialized or delivered during an interval), `cutAt` (from then on nothing is delivered,
 * queued messages are dropped, sends fail with LINK_CUT, and the direction's `onCut` hook runs).
 * Faults may only be set for now or the future; queued messages are re-timed when one is set.
 *
 * What it deliberately doesn't do: loss or reordering (TCP hides them), a byte-stream API
 * (sim-channel adapts this to the transport Channel), or congestion between the directions.
 */
import { assert } from '../lib/assert.ts';
import { NS_PER_S } from '../lib/units.ts';
import type { Scheduler, ScheduledEvent } from './scheduler.ts';

/** Configuration of one direction. */
export interface LinkDirectionConfig {
  /** Serialization rate, bytes/s (> 0). */
  readonly bandwidthBytesPerSec: number;
  /** One-way propagation delay, ns. */
  readonly latencyNs: number;
  /** Bytes added on the wire to every message (framing, headers); default 0. */
  readonly perMessageOverheadBytes?: number;
  /** Sender time per page examined, ns; default 0. Ignored when `scanCostNs` is given. */
  readonly scanCostNsPerPage?: number;
  /** Hook: sender time to examine `pages` pages, ns (overrides scanCostNsPerPage). */
  readonly scanCostNs?: (pages: number) => number;
  /** Bound on messages accepted and not yet delivered; default 1 << 20. */
  readonly maxQueuedMessages?: number;
}

/** Stable codes of link errors. */
export type LinkErrorCode = 'LINK_CUT' | 'LINK_QUEUE_FULL';

/** A refused send. */
export class LinkError extends Error {
  override name = 'LinkError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: LinkErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The outcome of a send: when the message will leave the wire and arrive, or why it can't. */
export type LinkSendResult =
  | {
      readonly ok: true;
      /** When the wire finishes serializing it, ns (the sender's buffer space frees up). */
      readonly serializedAtNs: number;
      /** When the receiver gets it, ns (Infinity while the bandwidth is 0 forever). */
      readonly deliverAtNs: number;
    }
  | { readonly ok: false; readonly error: LinkError };

/** What a direction calls. */
export interface LinkDirectionHooks<T> {
  /** The receiver gets a message. */
  deliver(payload: T, sizeBytes: number, nowNs: number): void;
  /** The direction was cut (both ends usually want to know). */
  onCut?(nowNs: number, droppedMessages: number): void;
}

/** A message in flight. */
interface Entry<T> {
  readonly payload: T;
  readonly sizeBytes: number;
  readonly wireBytes: number;
  readonly readyNs: number;
  endNs: number;
  deliverNs: number;
}

/** Counters of one direction. */
export interface LinkCounters {
  messagesSent: number;
  bytesSent: number;
  messagesDelivered: number;
  bytesDelivered: number;
  messagesDropped: number;
}

export class LinkDirection<T> {
  /** Name for traces. */
  readonly name: string;
  /** Running counters. */
  readonly counters: LinkCounters = { messagesSent: 0, bytesSent: 0, messagesDelivered: 0, bytesDelivered: 0, messagesDropped: 0 };
  private readonly scheduler: Scheduler;
  private readonly latencyNs: number;
  private readonly overheadBytes: number;
  private readonly scanCost: (pages: number) => number;
  private readonly maxQueued: number;
  private hooks: LinkDirectionHooks<T> | null = null;
  /** Messages accepted and not delivered; `head` indexes the first. */
  private queue: Entry<T>[] = [];
  private head = 0;
  /** Serialization end and delivery time of the last delivered message. */
  private baseEndNs = 0;
  private baseDeliverNs = 0;
  /** When the sender's CPU is free again (scan cost). */
  private cpuFreeNs = 0;
  /** The pending delivery event of the head message. */
  private headEvent: ScheduledEvent | null = null;
  /** Bandwidth changes, sorted by time; the first is at 0. */
  private bandwidthChanges: { atNs: number; bytesPerSec: number }[];
  /** Stalls, sorted by start. */
  private stalls: { fromNs: number; untilNs: number }[] = [];
  /** Effective rate segments (stalls as rate 0): starts and rates. */
  private segmentStarts: number[] = [];
  private segmentRates: number[] = [];
  /** Set once the cut happened. */
  private cut = false;
  /** Earliest scheduled cut, ns, or null; a delivery due at or after it is dropped instead. */
  private pendingCutNs: number | null = null;

  constructor(scheduler: Scheduler, name: string, config: LinkDirectionConfig, hooks?: LinkDirectionHooks<T>) {
    assert(config.bandwidthBytesPerSec > 0, `link ${name}: bandwidth must be > 0`);
    assert(Number.isSafeInteger(config.latencyNs) && config.latencyNs >= 0, `link ${name}: bad latency`);
    this.scheduler = scheduler;
    this.name = name;
    this.latencyNs = config.latencyNs;
    this.overheadBytes = config.perMessageOverheadBytes ?? 0;
    const perPage = config.scanCostNsPerPage ?? 0;
    this.scanCost = config.scanCostNs ?? ((pages) => pages * perPage);
    this.maxQueued = config.maxQueuedMessages ?? 1 << 20;
    this.bandwidthChanges = [{ atNs: 0, bytesPerSec: config.bandwidthBytesPerSec }];
    this.hooks = hooks ?? null;
    this.rebuildSegments();
  }

  /** Sets the receiver hooks (once the other end exists). */
  connect(hooks: LinkDirectionHooks<T>): void {
    this.hooks = hooks;
  }

  /** True once cut. */
  get isCut(): boolean {
    return this.cut;
  }

  /** Messages accepted and not yet delivered. */
  get queuedMessages(): number {
    return this.queue.length - this.head;
  }

  /** When the sender can prepare its next message (its CPU is free), ns. */
  senderFreeAtNs(): number {
    return Math.max(this.scheduler.nowNs, this.cpuFreeNs);
  }

  /** When the wire has serialized everything queued, ns. */
  wireFreeAtNs(): number {
    const last = this.queuedMessages > 0 ? this.queue[this.queue.length - 1].endNs : this.baseEndNs;
    return Math.max(this.scheduler.nowNs, last);
  }

  /**
   * Charges the sender `pages` pages of scanning. Returns when its CPU is free again, ns; the
   * caller should not start its next piece of work before then.
   */
  scanPages(pages: number): number {
    const cost = this.scanCost(pages);
    assert(Number.isFinite(cost) && cost >= 0, `link ${this.name}: bad scan cost ${cost}`);
    this.cpuFreeNs = this.senderFreeAtNs() + Math.ceil(cost);
    return this.cpuFreeNs;
  }

  /** Charges the sender `ns` of other work (its next sends wait); returns when it is free, ns. */
  chargeSender(ns: number): number {
    assert(Number.isFinite(ns) && ns >= 0, `link ${this.name}: bad sender charge ${ns}`);
    this.cpuFreeNs = this.senderFreeAtNs() + Math.ceil(ns);
    return this.cpuFreeNs;
  }

  /** Queues a message of `sizeBytes` bytes. */
  send(payload: T, sizeBytes: number): LinkSendResult {
    assert(Number.isFinite(sizeBytes) && sizeBytes >= 0, `link ${this.name}: bad message size ${sizeBytes}`);
    if (this.cut) return { ok: false, error: new LinkError('LINK_CUT', `link ${this.name} is cut`) };
    if (this.queuedMessages >= this.maxQueued) {
      return { ok: false, error: new LinkError('LINK_QUEUE_FULL', `link ${this.name}: ${this.maxQueued} messages queued`) };
    }
    const count = this.queuedMessages;
    const previous = count > 0 ? this.queue[this.queue.length - 1] : null;
    const entry: Entry<T> = {
      payload,
      sizeBytes,
      wireBytes: sizeBytes + this.overheadBytes,
      readyNs: this.senderFreeAtNs(),
      endNs: 0,
      deliverNs: 0,
    };
    this.place(entry, previous?.endNs ?? this.baseEndNs, previous?.deliverNs ?? this.baseDeliverNs);
    this.queue.push(entry);
    this.counters.messagesSent++;
    this.counters.bytesSent += sizeBytes;
    if (count === 0) this.scheduleHead();
    return { ok: true, serializedAtNs: entry.endNs, deliverAtNs: entry.deliverNs };
  }

  /** From `atNs` (now or later) on, the wire runs at `bytesPerSec` (0 = nothing moves). */
  setBandwidthAt(atNs: number, bytesPerSec: number): void {
    this.assertFuture(atNs);
    assert(bytesPerSec >= 0 && Number.isFinite(bytesPerSec), `link ${this.name}: bad bandwidth ${bytesPerSec}`);
    // Changes before the settled point (now, and the last delivered message's serialization
    // end) can no longer move anything, but the rate in force there: keep only that one of them.
    const settledNs = Math.min(this.scheduler.nowNs, this.baseEndNs);
    let inForce = 0;
    while (inForce + 1 < this.bandwidthChanges.length && this.bandwidthChanges[inForce + 1].atNs <= settledNs) inForce++;
    const changes = this.bandwidthChanges.slice(inForce).filter((c) => c.atNs !== atNs);
    changes.push({ atNs, bytesPerSec });
    changes.sort((a, b) => a.atNs - b.atNs);
    this.bandwidthChanges = changes;
    this.retime();
  }

  /** Nothing is serialized or delivered during [fromNs, untilNs); `fromNs` is now or later. */
  stall(fromNs: number, untilNs: number): void {
    this.assertFuture(fromNs);
    assert(Number.isSafeInteger(untilNs) && untilNs > fromNs, `link ${this.name}: bad stall end ${untilNs}`);
    // Stalls over before now and before the last delivered message's serialization end can no
    // longer move anything (queued messages start at or after that end): drop them, so a run
    // with many stalls (dest-faults.ts) does not re-time over all of them each time.
    const settledNs = Math.min(this.scheduler.nowNs, this.baseEndNs);
    if (this.stalls.length > 0 && this.stalls[0].untilNs <= settledNs) this.stalls = this.stalls.filter((s) => s.untilNs > settledNs);
    // A stall that meets or overlaps one already known extends it (the same union, fewer segments).
    const met = this.stalls.find((s) => s.fromNs <= fromNs && fromNs <= s.untilNs);
    if (met !== undefined) met.untilNs = Math.max(met.untilNs, untilNs);
    else {
      this.stalls.push({ fromNs, untilNs });
      this.stalls.sort((a, b) => a.fromNs - b.fromNs);
    }
    this.retime();
  }

  /**
   * Cuts the direction at `atNs` (now or later). Messages due strictly before `atNs` arrive;
   * messages due at `atNs` or later are dropped, whatever the order events were scheduled in.
   */
  cutAt(atNs: number): void {
    this.assertFuture(atNs);
    if (this.pendingCutNs === null || atNs < this.pendingCutNs) this.pendingCutNs = atNs;
    this.scheduler.at(atNs, (now) => this.cutNow(now), `${this.name}:cut`);
  }

  /** Cuts the direction now: drops everything queued and runs the `onCut` hook. */
  cutNow(nowNs: number = this.scheduler.nowNs): void {
    if (this.cut) return;
    this.cut = true;
    if (this.headEvent !== null) this.scheduler.cancel(this.headEvent);
    this.headEvent = null;
    const dropped = this.queuedMessages;
    this.counters.messagesDropped += dropped;
    this.queue = [];
    this.head = 0;
    this.hooks?.onCut?.(nowNs, dropped);
  }

  private assertFuture(atNs: number): void {
    assert(Number.isSafeInteger(atNs), `link ${this.name}: fault time must be an integer ns`);
    assert(atNs >= this.scheduler.nowNs, `link ${this.name}: fault at ${atNs} is in the past (now ${this.scheduler.nowNs})`);
  }

  /** Computes an entry's serialization end and delivery from its predecessor's. */
  private place(entry: Entry<T>, previousEndNs: number, previousDeliverNs: number): void {
    const startNs = Math.max(entry.readyNs, previousEndNs);
    entry.endNs = this.finishTime(startNs, entry.wireBytes);
    entry.deliverNs = Math.max(this.holdForStalls(entry.endNs + this.latencyNs), previousDeliverNs);
  }

  /** Re-times every queued message after a fault was set, and moves the delivery event. */
  private retime(): void {
    this.rebuildSegments();
    let endNs = this.baseEndNs;
    let deliverNs = this.baseDeliverNs;
    for (let i = this.head; i < this.queue.length; i++) {
      const entry = this.queue[i];
      this.place(entry, endNs, deliverNs);
      endNs = entry.endNs;
      deliverNs = entry.deliverNs;
    }
    if (this.headEvent !== null) this.scheduler.cancel(this.headEvent);
    this.headEvent = null;
    this.scheduleHead();
  }

  private scheduleHead(): void {
    if (this.cut || this.queuedMessages === 0) return;
    const entry = this.queue[this.head];
    if (!Number.isFinite(entry.deliverNs)) return;
    this.headEvent = this.scheduler.at(entry.deliverNs, (now) => this.deliverHead(now), `${this.name}:deliver`);
  }

  private deliverHead(nowNs: number): void {
    this.headEvent = null;
    if (this.pendingCutNs !== null && nowNs >= this.pendingCutNs) {
      this.cutNow(nowNs);
      return;
    }
    const entry = this.queue[this.head++];
    this.baseEndNs = entry.endNs;
    this.baseDeliverNs = entry.deliverNs;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.counters.messagesDelivered++;
    this.counters.bytesDelivered += entry.sizeBytes;
    this.scheduleHead();
    this.hooks?.deliver(entry.payload, entry.sizeBytes, nowNs);
  }

  /** Merges bandwidth changes and stalls into segments of constant effective rate. */
  private rebuildSegments(): void {
    const points = new Set<number>([0]);
    for (const c of this.bandwidthChanges) points.add(c.atNs);
    for (const s of this.stalls) {
      points.add(s.fromNs);
      points.add(s.untilNs);
    }
    const starts: number[] = [];
    const rates: number[] = [];
    for (const t of [...points].sort((a, b) => a - b)) {
      const rate = this.stalls.some((s) => s.fromNs <= t && t < s.untilNs) ? 0 : this.bandwidthAt(t);
      if (rates.length > 0 && rates[rates.length - 1] === rate) continue;
      starts.push(t);
      rates.push(rate);
    }
    this.segmentStarts = starts;
    this.segmentRates = rates;
  }

  private bandwidthAt(timeNs: number): number {
    let rate = this.bandwidthChanges[0].bytesPerSec;
    for (const c of this.bandwidthChanges) {
      if (c.atNs > timeNs) break;
      rate = c.bytesPerSec;
    }
    return rate;
  }

  /** When `bytes` starting at `startNs` finish serializing, over the rate segments. */
  private finishTime(startNs: number, bytes: number): number {
    if (bytes === 0) return startNs;
    const starts = this.segmentStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= startNs) lo = mid;
      else hi = mid - 1;
    }
    let k = lo;
    let t = startNs;
    let remaining = bytes;
    for (;;) {
      const rate = this.segmentRates[k];
      const segmentEnd = k + 1 < starts.length ? starts[k + 1] : Infinity;
      if (rate > 0) {
        const needNs = (remaining * NS_PER_S) / rate;
        if (t + needNs <= segmentEnd) return t + Math.ceil(needNs);
        remaining -= ((segmentEnd - t) * rate) / NS_PER_S;
      } else if (segmentEnd === Infinity) {
        return Infinity;
      }
      t = segmentEnd;
      k++;
    }
  }

  /** Moves a delivery time that falls inside a stall to the stall's end. */
  private holdForStalls(timeNs: number): number {
    let t = timeNs;
    for (const s of this.stalls) {
      if (t >= s.fromNs && t < s.untilNs) t = s.untilNs;
    }
    return t;
  }
}

/** Configuration of a link: the stream direction and (default: the same) the return path. */
export interface LinkConfig {
  readonly stream: LinkDirectionConfig;
  readonly returnPath?: LinkDirectionConfig;
}

/** A bidirectional link: source → destination stream and destination → source return path. */
export class Link<S, R> {
  readonly stream: LinkDirection<S>;
  readonly returnPath: LinkDirection<R>;

  constructor(scheduler: Scheduler, name: string, config: LinkConfig) {
    this.stream = new LinkDirection<S>(scheduler, `${name}:stream`, config.stream);
    this.returnPath = new LinkDirection<R>(scheduler, `${name}:return-path`, config.returnPath ?? config.stream);
  }

  /** Cuts both directions at `atNs` (a TCP connection dies as a whole). */
  cutAt(atNs: number): void {
    this.stream.cutAt(atNs);
    this.returnPath.cutAt(atNs);
  }

  /** Stalls both directions over [fromNs, untilNs). */
  stall(fromNs: number, untilNs: number): void {
    this.stream.stall(fromNs, untilNs);
    this.returnPath.stall(fromNs, untilNs);
  }
}
