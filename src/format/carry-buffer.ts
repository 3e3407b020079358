/**
 * The push decoder's carry: the bytes of a unit that a chunk boundary cut, kept until the
 * next chunk completes it. It holds only bytes that actually arrived and grows by doubling,
 * so its size is bounded by the input, never by a length field.
 */
export class CarryBuffer {
  bytes = new Uint8Array(0);
  view = new DataView(this.bytes.buffer);
  /** Bytes held, from `bytes[0]`. */
  length = 0;

  /** Appends `n` bytes of `src` starting at `from`. */
  append(src: Uint8Array, from: number, n: number): void {
    const want = this.length + n;
    if (want > this.bytes.length) {
      const next = new Uint8Array(Math.max(want, this.bytes.length * 2));
      next.set(this.bytes.subarray(0, this.length));
      this.bytes = next;
      this.view = new DataView(next.buffer);
    }
    this.bytes.set(src.subarray(from, from + n), this.length);
    this.length = want;
  }

  /** Forgets the first `n` bytes (already decoded). */
  dropFront(n: number): void {
    this.bytes.copyWithin(0, n, this.length);
    this.length -= n;
  }

  clear(): void {
    this.length = 0;
  }
}
