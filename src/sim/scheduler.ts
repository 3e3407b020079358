/**
 * The simulation's event scheduler: actions run in order of (timeNs, seq), where seq is the
 * order of scheduling, so events due at the same time run first-in first-out. Time jumps from
 * event to event on a VirtualClock. It owns the run's root PRNG (from the seed), which
 * components fork for their own randomness; ordering itself never uses randomness.
 *
 * The queue is an array-backed binary min-heap (millions of pending events are fine).
 * Cancelling marks the event and leaves it in the heap; cancelled entries are skipped when they
 * surface and the heap is compacted once they are more than half of it.
 *
 * Every run is bounded: `runUntil` takes a maximum number of events (DESIGN: everything has a
 * limit) and reports why it stopped.
 *
 * What it deliberately doesn't do: catch exceptions from actions (they propagate and stop the
 * run, which fails the seed), or model concurrency (one action runs at a time).
 */
import { assert } from '../lib/assert.ts';
import { Prng } from '../lib/prng.ts';
import { VirtualClock } from './clock.ts';

/** An action run at its due time; it receives the time it runs at. */
export type EventAction = (nowNs: number) => void;

/** Pending, ran, or cancelled. */
type EventState = 0 | 1 | 2;
const PENDING: EventState = 0;
const DONE: EventState = 1;
const CANCELLED: EventState = 2;

/** A scheduled event; the handle callers keep to cancel it. */
export class ScheduledEvent {
  /** Lifecycle: pending, done or cancelled. Written only by the Scheduler; read `pending`. */
  state: EventState = PENDING;
  constructor(
    /** Due time, ns. */
    readonly timeNs: number,
    /** Scheduling order; breaks ties FIFO. */
    readonly seq: number,
    /** What to run. */
    readonly action: EventAction,
    /** A name for traces and debugging. */
    readonly label: string,
  ) {}

  /** True until the event runs or is cancelled. */
  get pending(): boolean {
    return this.state === PENDING;
  }
}

/** Why `runUntil` returned. */
export type RunStopReason =
  /** A time limit was given and every event up to it ran; the clock is at the limit. */
  | 'time-reached'
  /** A predicate limit was given and became true. */
  | 'predicate'
  /** A predicate limit was given and no event is left. */
  | 'idle'
  /** maxEvents events ran first. */
  | 'max-events';

/** The outcome of a run. */
export interface RunResult {
  /** Why the run stopped. */
  readonly reason: RunStopReason;
  /** Events run by this call. */
  readonly eventsRun: number;
  /** The clock when it stopped. */
  readonly nowNs: number;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  /** Seed of the run's root PRNG. */
  readonly seed: number;
  /** Start time, ns (default 0). */
  readonly startNs?: number;
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.timeNs < b.timeNs || (a.timeNs === b.timeNs && a.seq < b.seq);
}

export class Scheduler {
  /** The simulation clock; only this scheduler advances it. */
  readonly clock: VirtualClock;
  /** The run's root PRNG; components take `rng.fork()`. */
  readonly rng: Prng;
  /** Binary min-heap on (timeNs, seq). */
  private heap: ScheduledEvent[] = [];
  /** Next sequence number. */
  private nextSeq = 0;
  /** Cancelled events still in the heap. */
  private cancelledInHeap = 0;
  /** Events run since creation. */
  private executed = 0;

  constructor(options: SchedulerOptions) {
    this.clock = new VirtualClock(options.startNs ?? 0);
    this.rng = new Prng(options.seed);
  }

  /** Now, ns. */
  get nowNs(): number {
    return this.clock.nowNs;
  }

  /** Events scheduled and neither run nor cancelled. */
  get pendingCount(): number {
    return this.heap.length - this.cancelledInHeap;
  }

  /** Events run since creation. */
  get executedCount(): number {
    return this.executed;
  }

  /** Schedules `action` at `timeNs` (an integer, not in the past). */
  at(timeNs: number, action: EventAction, label = ''): ScheduledEvent {
    assert(Number.isSafeInteger(timeNs), `event time must be an integer ns, got ${timeNs}`);
    assert(timeNs >= this.clock.nowNs, `event '${label}' at ${timeNs} is before now (${this.clock.nowNs})`);
    const event = new ScheduledEvent(timeNs, this.nextSeq++, action, label);
    this.heap.push(event);
    this.siftUp(this.heap.length - 1);
    return event;
  }

  /** Schedules `action` `delayNs` (an integer ≥ 0) from now. */
  after(delayNs: number, action: EventAction, label = ''): ScheduledEvent {
    return this.at(this.clock.nowNs + delayNs, action, label);
  }

  /** Cancels a pending event. Returns false if it already ran or was cancelled. */
  cancel(event: ScheduledEvent): boolean {
    if (event.state !== PENDING) return false;
    event.state = CANCELLED;
    this.cancelledInHeap++;
    if (this.cancelledInHeap > 1024 && this.cancelledInHeap * 2 > this.heap.length) this.compact();
    return true;
  }

  /** Due time of the next pending event, or null when none is left. */
  peekTimeNs(): number | null {
    this.dropCancelledTop();
    return this.heap.length === 0 ? null : this.heap[0].timeNs;
  }

  /** Runs the next pending event (advancing the clock to it). Returns false when none is left. */
  step(): boolean {
    this.dropCancelledTop();
    if (this.heap.length === 0) return false;
    const event = this.popTop();
    this.clock.advanceTo(event.timeNs);
    event.state = DONE;
    this.executed++;
    event.action(event.timeNs);
    return true;
  }

  /**
   * Runs events until a limit, at most `maxEvents` of them.
   * - `limit` a time (ns): runs every event due at or before it, then moves the clock to it.
   * - `limit` a predicate: checked before each event; stops when it holds or nothing is left.
   */
  runUntil(limit: number | ((scheduler: Scheduler) => boolean), maxEvents: number): RunResult {
    assert(Number.isSafeInteger(maxEvents) && maxEvents >= 0, `bad maxEvents ${maxEvents}`);
    let eventsRun = 0;
    const done = (reason: RunStopReason): RunResult => ({ reason, eventsRun, nowNs: this.clock.nowNs });
    if (typeof limit === 'number') {
      assert(limit >= this.clock.nowNs, `runUntil(${limit}) is before now (${this.clock.nowNs})`);
      for (;;) {
        const next = this.peekTimeNs();
        if (next === null || next > limit) {
          this.clock.advanceTo(limit);
          return done('time-reached');
        }
        if (eventsRun >= maxEvents) return done('max-events');
        this.step();
        eventsRun++;
      }
    }
    for (;;) {
      if (limit(this)) return done('predicate');
      if (this.peekTimeNs() === null) return done('idle');
      if (eventsRun >= maxEvents) return done('max-events');
      this.step();
      eventsRun++;
    }
  }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && this.heap[0].state === CANCELLED) {
      this.popTop();
      this.cancelledInHeap--;
    }
  }

  private popTop(): ScheduledEvent {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop() as ScheduledEvent;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Rebuilds the heap without cancelled entries. */
  private compact(): void {
    this.heap = this.heap.filter((e) => e.state === PENDING);
    this.cancelledInHeap = 0;
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const item = heap[index];
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(item, heap[parent])) break;
      heap[index] = heap[parent];
      index = parent;
    }
    heap[index] = item;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const length = heap.length;
    const item = heap[index];
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && before(heap[right], heap[left]) ? right : left;
      if (!before(heap[child], item)) break;
      heap[index] = heap[child];
      index = child;
    }
    heap[index] = item;
  }
}
