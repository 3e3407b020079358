/**
 * A bounded binary min-heap of live allocator blocks keyed by the time they are freed, in
 * typed arrays (13 bytes per slot, no allocation after construction). The churn workload
 * uses it to free blocks when their lifetime ends and to pick a random live block to rewrite.
 */
import { assert } from '../../lib/assert.ts';

export class BlockHeap {
  /** Most blocks the heap holds. */
  readonly capacity: number;
  /** deathNs[i]: when the block in slot i is freed. */
  private readonly deathNs: Float64Array;
  /** pfns[i]: first page of the block in slot i. */
  private readonly pfns: Int32Array;
  /** orders[i]: order of the block in slot i. */
  private readonly orders: Uint8Array;
  /** Slots in use, [0, size). */
  private count = 0;
  /** First page of the block the last pop() removed. */
  poppedPfn = -1;
  /** Order of the block the last pop() removed. */
  poppedOrder = 0;

  constructor(capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 0, 'heap capacity must be a non-negative integer');
    this.capacity = capacity;
    this.deathNs = new Float64Array(capacity);
    this.pfns = new Int32Array(capacity);
    this.orders = new Uint8Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Death time of the earliest block; only valid when size > 0. */
  peekDeathNs(): number {
    assert(this.count > 0, 'peek of an empty heap');
    return this.deathNs[0];
  }

  /** First page of the block in slot i (any order; for random picks). */
  pfnAt(i: number): number {
    return this.pfns[i];
  }

  /** Order of the block in slot i. */
  orderAt(i: number): number {
    return this.orders[i];
  }

  push(deathNs: number, pfn: number, order: number): void {
    assert(this.count < this.capacity, 'block heap is full');
    let i = this.count++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.deathNs[parent] <= deathNs) break;
      this.move(parent, i);
      i = parent;
    }
    this.deathNs[i] = deathNs;
    this.pfns[i] = pfn;
    this.orders[i] = order;
  }

  /** Removes the earliest block into poppedPfn / poppedOrder. */
  pop(): void {
    assert(this.count > 0, 'pop of an empty heap');
    this.poppedPfn = this.pfns[0];
    this.poppedOrder = this.orders[0];
    const last = --this.count;
    if (last === 0) return;
    const deathNs = this.deathNs[last];
    const pfn = this.pfns[last];
    const order = this.orders[last];
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= last) break;
      const right = left + 1;
      const child = right < last && this.deathNs[right] < this.deathNs[left] ? right : left;
      if (this.deathNs[child] >= deathNs) break;
      this.move(child, i);
      i = child;
    }
    this.deathNs[i] = deathNs;
    this.pfns[i] = pfn;
    this.orders[i] = order;
  }

  private move(from: number, to: number): void {
    this.deathNs[to] = this.deathNs[from];
    this.pfns[to] = this.pfns[from];
    this.orders[to] = this.orders[from];
  }
}
