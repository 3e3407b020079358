/**
 * Guest physical memory as the devices and the guest model see it: a flat range of guest
 * physical addresses (gpa) starting at 0. Multi-byte accessors are little-endian, as virtio
 * structures in guest memory are (VERSION_1). Out-of-range access throws GuestMemoryError,
 * which devices turn into their own typed errors.
 *
 * Backings: BytesBacking (bytes-backing.ts: bytes in an optionally shared ArrayBuffer, for real
 * mode and small simulations) and CompactBacking (compact-backing.ts: a version number per page,
 * for huge simulated guests). Both also implement the page-level PageStore (page-store.ts) that
 * the migration engine uses. DirtyTrackingMemory (dirty-tracking-memory.ts) wraps either one
 * and marks written pages in a DirtyLog.
 */
export class GuestMemoryError extends Error {
  override name = 'GuestMemoryError';
  constructor(readonly gpa: number, readonly lengthBytes: number, readonly sizeBytes: number) {
    super(`Guest memory access out of range: gpa 0x${gpa.toString(16)} length ${lengthBytes} (memory is ${sizeBytes} bytes)`);
  }
}

export interface GuestMemory {
  /** Total bytes of guest RAM. */
  readonly sizeBytes: number;
  readU8(gpa: number): number;
  readLe16(gpa: number): number;
  readLe32(gpa: number): number;
  readLe64(gpa: number): number;
  writeU8(gpa: number, value: number): void;
  writeLe16(gpa: number, value: number): void;
  writeLe32(gpa: number, value: number): void;
  writeLe64(gpa: number, value: number): void;
  /** Copies `lengthBytes` bytes out of guest memory. */
  read(gpa: number, lengthBytes: number): Uint8Array;
  /** Copies `bytes` into guest memory at `gpa`. */
  write(gpa: number, bytes: Uint8Array): void;
}
