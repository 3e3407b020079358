/**
 * A set of integers kept as sorted, disjoint, non-adjacent half-open ranges [start, end).
 * Used for hinted ranges, unplugged virtio-mem memory and discard lists. Operations keep the
 * table canonical (adjacent ranges are merged), so two tables with the same members compare
 * equal range by range.
 */
export interface Range {
  readonly start: number;
  readonly end: number;
}

export class RangeTable {
  /** Flat [start0, end0, start1, end1, ...], sorted, disjoint and non-adjacent. */
  private flat: number[] = [];

  static of(ranges: Iterable<Range>): RangeTable {
    const t = new RangeTable();
    for (const r of ranges) t.add(r.start, r.end);
    return t;
  }

  get rangeCount(): number {
    return this.flat.length / 2;
  }

  /** Total number of integers covered. */
  total(): number {
    let n = 0;
    for (let i = 0; i < this.flat.length; i += 2) n += this.flat[i + 1] - this.flat[i];
    return n;
  }

  isEmpty(): boolean {
    return this.flat.length === 0;
  }

  /** Index of the first range whose end is >= x (binary search over ends). */
  private firstEndingAtOrAfter(x: number): number {
    let lo = 0;
    let hi = this.flat.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.flat[2 * mid + 1] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds [start, end), merging with overlapping and adjacent ranges. */
  add(start: number, end: number): void {
    if (start >= end) return;
    const first = this.firstEndingAtOrAfter(start);
    let last = first;
    let s = start;
    let e = end;
    while (last < this.flat.length / 2 && this.flat[2 * last] <= end) {
      s = Math.min(s, this.flat[2 * last]);
      e = Math.max(e, this.flat[2 * last + 1]);
      last++;
    }
    this.flat.splice(2 * first, 2 * (last - first), s, e);
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (start >= end) return;
    let i = this.firstEndingAtOrAfter(start + 1);
    const replacement: number[] = [];
    let last = i;
    while (last < this.flat.length / 2 && this.flat[2 * last] < end) {
      const rs = this.flat[2 * last];
      const re = this.flat[2 * last + 1];
      if (rs < start) replacement.push(rs, start);
      if (re > end) replacement.push(end, re);
      last++;
    }
    this.flat.splice(2 * i, 2 * (last - i), ...replacement);
  }

  has(x: number): boolean {
    const i = this.firstEndingAtOrAfter(x + 1);
    return i < this.flat.length / 2 && this.flat[2 * i] <= x;
  }

  /** True when every integer of [start, end) is in the table. */
  covers(start: number, end: number): boolean {
    if (start >= end) return true;
    const i = this.firstEndingAtOrAfter(start + 1);
    return i < this.flat.length / 2 && this.flat[2 * i] <= start && this.flat[2 * i + 1] >= end;
  }

  /** True when some integer of [start, end) is in the table. */
  intersects(start: number, end: number): boolean {
    if (start >= end) return false;
    const i = this.firstEndingAtOrAfter(start + 1);
    return i < this.flat.length / 2 && this.flat[2 * i] < end;
  }

  /** The parts of [start, end) that are in the table; nothing for an empty query. */
  *overlap(start: number, end: number): Generator<Range> {
    // Without this guard an empty or inverted query inside a range yielded {start, end} itself,
    // an empty or inverted "range".
    if (start >= end) return;
    for (let i = this.firstEndingAtOrAfter(start + 1); i < this.flat.length / 2; i++) {
      const rs = this.flat[2 * i];
      if (rs >= end) break;
      yield { start: Math.max(rs, start), end: Math.min(this.flat[2 * i + 1], end) };
    }
  }

  *[Symbol.iterator](): Generator<Range> {
    for (let i = 0; i < this.flat.length; i += 2) yield { start: this.flat[i], end: this.flat[i + 1] };
  }

  toArray(): Range[] {
    return [...this];
  }

  clone(): RangeTable {
    const t = new RangeTable();
    t.flat = this.flat.slice();
    return t;
  }

  clear(): void {
    this.flat.length = 0;
  }
}
