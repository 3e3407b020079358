/**
 * The simplest guest-physical allocator: hands out aligned ranges from a window of guest
 * memory, front to back, and never frees. The split-queue driver takes any `GpaAllocator`,
 * so a richer guest allocator can replace this one.
 */

/** Allocates guest-physical ranges for rings and buffers. */
export interface GpaAllocator {
  /** Returns the gpa of `sizeBytes` fresh bytes aligned to `alignBytes` (a power of two). */
  allocate(sizeBytes: number, alignBytes: number): number;
}

/** The window is used up. */
export class GpaAllocatorError extends Error {
  override name = 'GpaAllocatorError';
  /** Stable code for callers that switch on it. */
  readonly code = 'GUEST_ERR_ALLOC_EXHAUSTED';
  constructor(readonly sizeBytes: number, readonly alignBytes: number, readonly freeBytes: number) {
    super(`Cannot allocate ${sizeBytes} bytes aligned to ${alignBytes}: ${freeBytes} bytes left in the window`);
  }
}

export class BumpAllocator implements GpaAllocator {
  /** Next free gpa. */
  private nextGpa: number;

  constructor(
    /** First gpa of the window. */
    readonly startGpa: number,
    /** End of the window (exclusive). */
    readonly endGpa: number,
  ) {
    this.nextGpa = startGpa;
  }

  /** Bytes not yet handed out (ignoring alignment padding to come). */
  get freeBytes(): number {
    return this.endGpa - this.nextGpa;
  }

  allocate(sizeBytes: number, alignBytes: number): number {
    if (!(Number.isInteger(alignBytes) && alignBytes > 0 && (alignBytes & (alignBytes - 1)) === 0)) {
      throw new RangeError(`Alignment ${alignBytes} is not a power of two`);
    }
    const gpa = Math.ceil(this.nextGpa / alignBytes) * alignBytes;
    if (!(Number.isInteger(sizeBytes) && sizeBytes >= 0) || gpa + sizeBytes > this.endGpa) {
      throw new GpaAllocatorError(sizeBytes, alignBytes, this.freeBytes);
    }
    this.nextGpa = gpa + sizeBytes;
    return gpa;
  }
}
