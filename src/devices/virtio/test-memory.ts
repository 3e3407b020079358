/**
 * Test helpers for the virtio tests: flat guest memory (memory/bytes-backing.ts), and a wrapper
 * that records every access so tests can prove a device never touched memory it had no
 * business touching. Production code never imports this file.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';

/**
 * Flat guest memory for the virtio tests: the production bytes backing (bounds-checked, little
 * endian), under the name the tests use.
 */
export { BytesBacking as ArrayGuestMemory } from '../../memory/bytes-backing.ts';

/** One recorded access: [gpa, gpa + lengthBytes). */
export interface AccessRecord {
  readonly gpa: number;
  readonly lengthBytes: number;
}

/**
 * Forwards to another GuestMemory and records every access. Out-of-range attempts are
 * recorded before the inner memory refuses them, so a test sees them even if the error was
 * caught somewhere.
 */
export class RecordingGuestMemory implements GuestMemory {
  /** The inner memory's size. */
  readonly sizeBytes: number;
  /** Every write, in order. */
  readonly writes: AccessRecord[] = [];
  /** Number of read calls. */
  readCount = 0;
  /** Accesses that fell outside memory. */
  readonly outOfRange: AccessRecord[] = [];
  /** Whether to record writes (off for bulk setup). */
  recording = true;

  constructor(readonly inner: GuestMemory) {
    this.sizeBytes = inner.sizeBytes;
  }

  /** Forgets what was recorded so far. */
  clear(): void {
    this.writes.length = 0;
    this.outOfRange.length = 0;
    this.readCount = 0;
  }

  private noteRead(gpa: number, lengthBytes: number): void {
    this.readCount++;
    if (!(gpa >= 0 && gpa + lengthBytes <= this.sizeBytes)) this.outOfRange.push({ gpa, lengthBytes });
  }

  private noteWrite(gpa: number, lengthBytes: number): void {
    if (!(gpa >= 0 && gpa + lengthBytes <= this.sizeBytes)) this.outOfRange.push({ gpa, lengthBytes });
    if (this.recording) this.writes.push({ gpa, lengthBytes });
  }

  readU8(gpa: number): number { this.noteRead(gpa, 1); return this.inner.readU8(gpa); }
  readLe16(gpa: number): number { this.noteRead(gpa, 2); return this.inner.readLe16(gpa); }
  readLe32(gpa: number): number { this.noteRead(gpa, 4); return this.inner.readLe32(gpa); }
  readLe64(gpa: number): number { this.noteRead(gpa, 8); return this.inner.readLe64(gpa); }
  read(gpa: number, lengthBytes: number): Uint8Array { this.noteRead(gpa, lengthBytes); return this.inner.read(gpa, lengthBytes); }
  writeU8(gpa: number, value: number): void { this.noteWrite(gpa, 1); this.inner.writeU8(gpa, value); }
  writeLe16(gpa: number, value: number): void { this.noteWrite(gpa, 2); this.inner.writeLe16(gpa, value); }
  writeLe32(gpa: number, value: number): void { this.noteWrite(gpa, 4); this.inner.writeLe32(gpa, value); }
  writeLe64(gpa: number, value: number): void { this.noteWrite(gpa, 8); this.inner.writeLe64(gpa, value); }
  write(gpa: number, bytes: Uint8Array): void { this.noteWrite(gpa, bytes.length); this.inner.write(gpa, bytes); }
}

/** Whether [gpa, gpa + lengthBytes) lies inside one of `ranges`. */
export function insideAny(gpa: number, lengthBytes: number, ranges: readonly AccessRecord[]): boolean {
  return ranges.some((r) => gpa >= r.gpa && gpa + lengthBytes <= r.gpa + r.lengthBytes);
}
