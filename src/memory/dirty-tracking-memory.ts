/**
 * Guest memory with dirty logging on: a GuestMemory over a backing that marks every page a
 * write touches in a DirtyLog, as KVM's dirty logging does for a running guest. A multi-byte
 * write that crosses a page boundary marks both pages. Reads are passed through.
 *
 * Each write reaches the backing first and is marked second (see dirty-log.ts for why the
 * order matters when a sync runs concurrently). Page-level writers (writePageFrom, zeroPage,
 * bumpPage) are offered too, so a simulated workload that moves whole pages or bumps compact
 * versions is logged the same way.
 */
import type { DirtyLog } from './dirty-log.ts';
import type { GuestMemory } from './guest-memory.ts';
import { PAGE_SIZE_BYTES } from './page-content.ts';
import { MemoryConfigError, pageIndexOfGpa, type PageStore } from './page-store.ts';

/** A backing usable under dirty tracking: byte-level and page-level access to the same RAM. */
export type TrackableBacking = GuestMemory & PageStore;

export class DirtyTrackingMemory<B extends TrackableBacking = TrackableBacking> implements GuestMemory {
  /** The memory written through. */
  readonly backing: B;
  /** The log every write marks. */
  readonly log: DirtyLog;
  /** Total bytes of guest RAM (the backing's). */
  readonly sizeBytes: number;

  constructor(backing: B, log: DirtyLog) {
    if (log.pageCount !== backing.pageCount) {
      throw new MemoryConfigError('bad-size', `dirty log covers ${log.pageCount} pages, memory has ${backing.pageCount}`);
    }
    this.backing = backing;
    this.log = log;
    this.sizeBytes = backing.sizeBytes;
  }

  /** Marks the pages of [gpa, gpa + lengthBytes) (already written, so in range). */
  private mark(gpa: number, lengthBytes: number): void {
    const first = pageIndexOfGpa(gpa);
    this.log.markDirty(first);
    if (lengthBytes <= 1) return;
    const last = pageIndexOfGpa(gpa + lengthBytes - 1);
    if (last === first) return;
    if (last === first + 1) this.log.markDirty(last);
    else this.log.markRange(first + 1, last + 1);
  }

  readU8(gpa: number): number {
    return this.backing.readU8(gpa);
  }

  readLe16(gpa: number): number {
    return this.backing.readLe16(gpa);
  }

  readLe32(gpa: number): number {
    return this.backing.readLe32(gpa);
  }

  readLe64(gpa: number): number {
    return this.backing.readLe64(gpa);
  }

  read(gpa: number, lengthBytes: number): Uint8Array {
    return this.backing.read(gpa, lengthBytes);
  }

  writeU8(gpa: number, value: number): void {
    this.backing.writeU8(gpa, value);
    this.log.markDirty(pageIndexOfGpa(gpa));
  }

  writeLe16(gpa: number, value: number): void {
    this.backing.writeLe16(gpa, value);
    this.mark(gpa, 2);
  }

  writeLe32(gpa: number, value: number): void {
    this.backing.writeLe32(gpa, value);
    this.mark(gpa, 4);
  }

  writeLe64(gpa: number, value: number): void {
    this.backing.writeLe64(gpa, value);
    this.mark(gpa, 8);
  }

  write(gpa: number, bytes: Uint8Array): void {
    this.backing.write(gpa, bytes);
    if (bytes.length > 0) this.mark(gpa, bytes.length);
  }

  /** Replaces a whole page and marks it. */
  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset = 0): void {
    this.backing.writePageFrom(pageIndex, bytes, bytesOffset);
    this.log.markDirty(pageIndex);
  }

  /** Zeroes a whole page and marks it. */
  zeroPage(pageIndex: number): void {
    this.backing.zeroPage(pageIndex);
    this.log.markDirty(pageIndex);
  }

  /** Bumps a page (see PageStore.bumpPage) and marks it. */
  bumpPage(pageIndex: number): void {
    this.backing.bumpPage(pageIndex);
    this.log.markDirty(pageIndex);
  }

  /** The guest physical address of page `pageIndex`. */
  static gpaOfPage(pageIndex: number): number {
    return pageIndex * PAGE_SIZE_BYTES;
  }
}
