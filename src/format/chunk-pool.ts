/**
 * Recycles the source encoder's chunk buffers. Without it every 1 MiB chunk is a fresh
 * allocation: the kernel zeroes and faults in its pages and the garbage collector frees it
 * again, a large share of the source's CPU time at full speed (docs/performance.md). Real mode
 * (host/outgoing.ts) and the simulator (sim/engines.ts) use it.
 *
 * A buffer may be reused once every chunk cut from it has been consumed: in real mode, left
 * the channel's queue; in the simulator, been decoded by the destination. The encoder tells,
 * when it retires a buffer, the stream offset its chunks end at (ChunkAllocator's
 * `retiredEndBytes`); `handedBytes()` tells how many stream bytes the consumer no longer
 * references (real mode: bytesWritten - queuedBytes). Both count the main stream from its
 * first byte, so the comparison is exact; a consumer that counts fewer bytes (a chunk copied
 * into a write batch, messages a cut link dropped) only delays reuse.
 */
interface Retired {
  readonly buf: Uint8Array;
  /** The buffer is free once handedBytes() reaches this. */
  readonly releaseAtBytes: number;
}

export class ChunkPool {
  /** Buffers allocated (not taken from the pool), for tests and measurements. */
  allocations = 0;
  private readonly retired: Retired[] = [];
  private current: Uint8Array | null = null;

  /**
   * `handedBytes`: stream bytes the consumer has finished with (0 before it exists). At most
   * `maxRetained` retired buffers are kept; older ones are left to the collector.
   */
  constructor(private readonly handedBytes: () => number, private readonly maxRetained = 64) {}

  /** A ChunkAllocator: the oldest released buffer of that size, else a new one. */
  readonly alloc = (bytes: number, retiredEndBytes: number): Uint8Array => {
    if (this.current !== null) {
      this.retired.push({ buf: this.current, releaseAtBytes: retiredEndBytes });
      if (this.retired.length > this.maxRetained) this.retired.shift();
    }
    const head = this.retired[0];
    let buf: Uint8Array;
    if (head !== undefined && head.buf.length === bytes && this.handedBytes() >= head.releaseAtBytes) {
      this.retired.shift();
      buf = head.buf;
    } else {
      buf = new Uint8Array(bytes);
      this.allocations++;
    }
    this.current = buf;
    return buf;
  };
}
