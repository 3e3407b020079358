/**
 * The source's queue of postcopy page requests (QEMU's src_page_requests): one entry per
 * REQ_PAGES / REQ_PAGES_ID message, consumed one target page at a time from the head (QEMU's
 * unqueue_page). Bounded: `push` refuses an entry beyond `limit` and the caller fails the
 * migration with a typed error (QEMU has no bound; a destination that floods requests is
 * broken).
 *
 * A ring of two preallocated Float64Arrays (page index, pages left), so queueing allocates
 * nothing per request.
 */
import { assert } from '../../lib/assert.ts';

export class RequestQueue {
  /** Most entries held at once. */
  readonly limit: number;
  /** First page of each entry still to serve (global page index); replaced when it grows. */
  private firstPages: Float64Array;
  /** Pages left in each entry; replaced when it grows. */
  private pageCounts: Float64Array;
  /** Ring index of the head entry. */
  private head = 0;
  /** Entries held. */
  private size = 0;

  constructor(limit: number) {
    assert(Number.isSafeInteger(limit) && limit > 0, `request queue limit ${limit}`);
    this.limit = limit;
    // Grown on demand up to the limit, so a huge limit costs nothing until used.
    this.firstPages = new Float64Array(Math.min(limit, 1024));
    this.pageCounts = new Float64Array(Math.min(limit, 1024));
  }

  /** Entries queued. */
  get length(): number {
    return this.size;
  }

  /** True when nothing is queued. */
  get isEmpty(): boolean {
    return this.size === 0;
  }

  /** Queues pages [firstPage, firstPage + pageCount); false when the queue is full. */
  push(firstPage: number, pageCount: number): boolean {
    assert(pageCount > 0, 'a queued request has at least one page');
    if (this.size >= this.limit) return false;
    if (this.size === this.firstPages.length) this.grow();
    const at = (this.head + this.size) % this.firstPages.length;
    this.firstPages[at] = firstPage;
    this.pageCounts[at] = pageCount;
    this.size++;
    return true;
  }

  /** Takes the next page of the head entry; -1 when the queue is empty. */
  popPage(): number {
    if (this.size === 0) return -1;
    const at = this.head;
    const page = this.firstPages[at];
    if (this.pageCounts[at] > 1) {
      this.firstPages[at] = page + 1;
      this.pageCounts[at]--;
    } else {
      this.head = (at + 1) % this.firstPages.length;
      this.size--;
    }
    return page;
  }

  /** Drops everything queued. */
  clear(): void {
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const capacity = Math.min(this.limit, this.firstPages.length * 2);
    const firstPages = new Float64Array(capacity);
    const pageCounts = new Float64Array(capacity);
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) % this.firstPages.length;
      firstPages[i] = this.firstPages[at];
      pageCounts[i] = this.pageCounts[at];
    }
    this.firstPages = firstPages;
    this.pageCounts = pageCounts;
    this.head = 0;
  }
}
