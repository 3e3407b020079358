/**
 * Inflating and deflating the balloon as Linux's virtio-balloon driver does
 * (update_balloon_size_func, fill_balloon, leak_balloon, tell_host), as a step function.
 *
 * The work: diff = num_pages (config) − pages in the balloon. diff > 0: take up to 256
 * order-0 pages from the page allocator (stopping at the first failure), list their 4 KiB
 * PFNs in one device-readable le32 array on the inflate queue, kick and wait for the buffer
 * to come back. diff < 0: take up to 256 pages out of the balloon (most recent first), send
 * their PFNs on the deflate queue, wait, and only then free them to the allocator (the
 * MUST_TELL_HOST order, which Linux always follows). Then write `actual` (config offset 4)
 * and, while a difference remains, queue the work again.
 *
 * Waiting: Linux's tell_host sleeps until the buffer is used. Here the worker stays in a
 * waiting state across steps until the device has returned the buffer, so a device that
 * processes kicks later (or never) is modelled: a balloon that is never acked never moves on.
 *
 * Out of memory: Linux sleeps 200 ms when an allocation fails ("Out of puff!") and requeues.
 * Here the partial batch is sent at once and the next attempt waits until 200 ms after the
 * failure (time as data: `nowNs`).
 *
 * Without DEFLATE_ON_OOM Linux removes inflated pages from the managed page count; the worker
 * tracks that count for the driver's statistics.
 */
import { NS_PER_MS } from '../../lib/units.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import type { SplitQueueDriver } from '../virtio/split-queue-driver.ts';

/** VIRTIO_BALLOON_ARRAY_PFNS_MAX: PFNs per inflate or deflate buffer. */
export const BALLOON_ARRAY_PFNS_MAX = 256;
/** Bytes of the PFN array (le32 each). */
export const BALLOON_PFN_ARRAY_BYTES = BALLOON_ARRAY_PFNS_MAX * 4;
/** How long Linux waits after a failed balloon page allocation. */
export const BALLOON_OUT_OF_PUFF_DELAY_NS = 200 * NS_PER_MS;

/** Token of an inflate or deflate buffer: the batch number. */
export type SizeToken = number;

export interface BalloonSizeWorkerDeps {
  readonly inflateQueue: SplitQueueDriver<SizeToken>;
  readonly deflateQueue: SplitQueueDriver<SizeToken>;
  /** Guest memory holding the PFN array. */
  readonly memory: GuestMemory;
  readonly allocator: BuddyAllocator;
  /** Reads num_pages (config offset 0). */
  readonly readNumPages: () => number;
  /** Writes actual (config offset 4). */
  readonly writeActual: (pages: number) => void;
  /** Kicks the inflate (true) or deflate (false) queue. */
  readonly notify: (inflate: boolean) => void;
  /** Where the PFN array lives (BALLOON_PFN_ARRAY_BYTES). */
  readonly pfnsGpa: number;
  /** Whether DEFLATE_ON_OOM was negotiated (inflated pages stay in the managed count). */
  readonly deflateOnOom: boolean;
}

/** A batch sent to the device and not yet returned. */
interface PendingBatch {
  readonly inflate: boolean;
  /** The batch's token. */
  readonly token: SizeToken;
  /** The pages in the batch. */
  readonly pfns: readonly number[];
  /** The difference left once this batch is done; non-zero requeues the work. */
  readonly diffAfter: number;
}

export class BalloonSizeWorker {
  /** Dependencies. */
  private readonly deps: BalloonSizeWorkerDeps;
  /** The work item is queued. */
  private workQueued = false;
  /** The batch being waited for, or null. */
  private pending: PendingBatch | null = null;
  /** No new attempt before this time (after an allocation failure). */
  private retryAtNs = 0;
  /** Pages in the balloon, most recent last (Linux's balloon page list, LIFO). */
  private readonly pages: number[] = [];
  /** The same pages, for membership tests. */
  private readonly pageSet = new Set<number>();
  /** Batches sent. */
  private nextToken = 0;
  /** Pages removed from the managed count (inflated without DEFLATE_ON_OOM). */
  unmanagedPages = 0;
  /** Failed page allocations ("Out of puff!"). */
  allocationFailures = 0;
  /** Buffers the queue refused (Linux would hang in tell_host; so does this worker). */
  addFailures = 0;

  constructor(deps: BalloonSizeWorkerDeps) {
    this.deps = deps;
  }

  /** Queues the work (a config change). */
  queue(): void {
    this.workQueued = true;
  }

  /**
   * vb->num_pages: pages in the balloon. As in Linux, an inflate batch counts as soon as it
   * is sent and a deflate batch stops counting as soon as it is sent.
   */
  get numPages(): number {
    return this.pages.length;
  }

  /** Whether page `pfn` is in the balloon (given to the host). */
  holds(pfn: number): boolean {
    return this.pageSet.has(pfn);
  }

  /** Whether the worker waits for the device or has queued work. */
  get busy(): boolean {
    return this.workQueued || this.pending !== null;
  }

  /** Runs the work due at `nowNs`, moving at most `pageBudget` pages. Returns the pages moved. */
  step(nowNs: number, pageBudget: number): number {
    let moved = 0;
    for (;;) {
      if (this.pending !== null) {
        if (!this.acked(this.pending)) return moved;
        this.finish(this.pending);
        continue;
      }
      if (!this.workQueued || nowNs < this.retryAtNs || moved >= pageBudget) return moved;
      this.workQueued = false;
      const diff = this.deps.readNumPages() - this.pages.length;
      if (diff > 0) moved += this.fill(diff, nowNs);
      else if (diff < 0) moved += this.leak(-diff);
    }
  }

  /**
   * Driver removal (remove_common): every page leaves the balloon through the deflate queue
   * and goes back to the allocator, then actual := 0. Pages go back even when the device
   * does not return the buffers at once (Linux would wait); returns the pages released.
   */
  releaseAll(): number {
    let released = 0;
    if (this.pending !== null) {
      this.acked(this.pending);
      this.finish(this.pending);
    }
    this.workQueued = false;
    while (this.pages.length > 0) {
      const batch = this.takeFromBalloon(Math.min(BALLOON_ARRAY_PFNS_MAX, this.pages.length));
      this.send(false, batch, 0);
      const pending = this.pending as PendingBatch | null;
      if (pending !== null) {
        this.acked(pending);
        this.finish(pending);
      }
      released += batch.length;
    }
    this.workQueued = false;
    this.deps.writeActual(0);
    return released;
  }

  // ---- internals -----------------------------------------------------------------------

  /** fill_balloon for up to 256 of `diff` pages; returns the pages taken. */
  private fill(diff: number, nowNs: number): number {
    const want = Math.min(diff, BALLOON_ARRAY_PFNS_MAX);
    const batch: number[] = [];
    while (batch.length < want) {
      const pfn = this.deps.allocator.alloc(0);
      if (pfn < 0) {
        this.allocationFailures++;
        this.retryAtNs = nowNs + BALLOON_OUT_OF_PUFF_DELAY_NS;
        break;
      }
      batch.push(pfn);
    }
    for (const pfn of batch) {
      this.pages.push(pfn);
      this.pageSet.add(pfn);
    }
    if (!this.deps.deflateOnOom) this.unmanagedPages += batch.length;
    if (batch.length > 0) {
      this.send(true, batch, diff - batch.length);
    } else {
      this.deps.writeActual(this.numPages);
      this.workQueued = true; // diff is unchanged: try again after the delay.
    }
    return batch.length;
  }

  /** leak_balloon for up to 256 of `num` pages; returns the pages taken out. */
  private leak(num: number): number {
    const batch = this.takeFromBalloon(Math.min(num, BALLOON_ARRAY_PFNS_MAX, this.pages.length));
    if (batch.length > 0) {
      this.send(false, batch, -(num - batch.length));
    } else {
      this.deps.writeActual(this.numPages);
    }
    return batch.length;
  }

  private takeFromBalloon(count: number): number[] {
    const batch: number[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = this.pages.pop() as number;
      this.pageSet.delete(pfn);
      batch.push(pfn);
    }
    return batch;
  }

  /** tell_host: the PFN array as one device-readable buffer, kick, then wait. */
  private send(inflate: boolean, pfns: readonly number[], diffAfter: number): void {
    const bytes = new Uint8Array(pfns.length * 4);
    const view = new DataView(bytes.buffer);
    pfns.forEach((pfn, i) => view.setUint32(i * 4, pfn, true));
    this.deps.memory.write(this.deps.pfnsGpa, bytes);
    const queue = inflate ? this.deps.inflateQueue : this.deps.deflateQueue;
    const token = this.nextToken++;
    if (!queue.add([{ gpa: this.deps.pfnsGpa, lengthBytes: bytes.length }], [], token)) this.addFailures++;
    else if (queue.kick()) this.deps.notify(inflate);
    this.pending = { inflate, token, pfns, diffAfter };
  }

  /** Reaps the batch's queue; true once the pending buffer is back. */
  private acked(batch: PendingBatch): boolean {
    const queue = batch.inflate ? this.deps.inflateQueue : this.deps.deflateQueue;
    for (let used = queue.getUsed(); used !== null; used = queue.getUsed()) {
      if (used.token === batch.token) return true;
    }
    return false;
  }

  /** After the ack: deflated pages return to the allocator; actual is written; requeue if needed. */
  private finish(batch: PendingBatch): void {
    this.pending = null;
    if (!batch.inflate) {
      for (const pfn of batch.pfns) this.deps.allocator.free(pfn, 0);
      if (!this.deps.deflateOnOom) this.unmanagedPages -= batch.pfns.length;
    }
    this.deps.writeActual(this.numPages);
    if (batch.diffAfter !== 0) this.workQueued = true;
  }
}
