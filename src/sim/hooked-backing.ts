/**
 * Guest memory whose backing can be swapped and whose accesses can be watched: the memory
 * the simulated guest (and the devices built on it) runs on.
 *
 * Why swap: the guest is one set of objects (allocator, drivers, workload) that runs on the
 * source until the switchover and on the destination after it, as a real guest's vCPUs
 * continue on the destination host. The world points the guest's backing at the
 * destination's store when the destination starts the guest (`retarget`), so every later
 * guest access (workload, drivers, the devices' ring writes) reaches the destination's pages.
 *
 * Why watch: every access is reported to `beforeAccess` (first and last page touched, and
 * whether it writes) before it happens: the world counts guest accesses to unplugged
 * virtio-mem memory and audits each destination page at its first write (memory-audit.ts).
 * A null hook costs one branch.
 *
 * What it deliberately doesn't do: block on missing pages (workloads ask `isPresent` through
 * their target; the world keeps the drivers' ring pages present) or mark a dirty log (the
 * guest's DirtyTrackingMemory over this object does).
 */
import type { GuestMemory } from '../memory/guest-memory.ts';
import type { TrackableBacking } from '../memory/dirty-tracking-memory.ts';
import { pageIndexOfGpa, type PageStore } from '../memory/page-store.ts';

/** Reports an access to pages [firstPage, lastPage] before it happens. */
export type AccessHook = (firstPage: number, lastPage: number, write: boolean) => void;

export class HookedBacking implements GuestMemory, PageStore {
  /** The store accesses go to now. */
  private target: TrackableBacking;
  /** The watcher, or null. */
  beforeAccess: AccessHook | null = null;

  constructor(target: TrackableBacking) {
    this.target = target;
  }

  /** Points every later access at `next` (same size). */
  retarget(next: TrackableBacking): void {
    if (next.pageCount !== this.target.pageCount) throw new RangeError(`retarget to ${next.pageCount} pages from ${this.target.pageCount}`);
    this.target = next;
  }

  /** The store accesses go to now. */
  get current(): TrackableBacking {
    return this.target;
  }

  get kind(): PageStore['kind'] {
    return this.target.kind;
  }

  get pageCount(): number {
    return this.target.pageCount;
  }

  get pageSizeBytes(): number {
    return this.target.pageSizeBytes;
  }

  get sizeBytes(): number {
    return this.target.sizeBytes;
  }

  private touch(gpa: number, lengthBytes: number, write: boolean): void {
    const hook = this.beforeAccess;
    if (hook === null || lengthBytes <= 0) return;
    hook(pageIndexOfGpa(gpa), pageIndexOfGpa(gpa + lengthBytes - 1), write);
  }

  private touchPage(pageIndex: number, write: boolean): void {
    this.beforeAccess?.(pageIndex, pageIndex, write);
  }

  // ---- GuestMemory -------------------------------------------------------------------------

  readU8(gpa: number): number {
    this.touch(gpa, 1, false);
    return this.target.readU8(gpa);
  }

  readLe16(gpa: number): number {
    this.touch(gpa, 2, false);
    return this.target.readLe16(gpa);
  }

  readLe32(gpa: number): number {
    this.touch(gpa, 4, false);
    return this.target.readLe32(gpa);
  }

  readLe64(gpa: number): number {
    this.touch(gpa, 8, false);
    return this.target.readLe64(gpa);
  }

  read(gpa: number, lengthBytes: number): Uint8Array {
    this.touch(gpa, lengthBytes, false);
    return this.target.read(gpa, lengthBytes);
  }

  writeU8(gpa: number, value: number): void {
    this.touch(gpa, 1, true);
    this.target.writeU8(gpa, value);
  }

  writeLe16(gpa: number, value: number): void {
    this.touch(gpa, 2, true);
    this.target.writeLe16(gpa, value);
  }

  writeLe32(gpa: number, value: number): void {
    this.touch(gpa, 4, true);
    this.target.writeLe32(gpa, value);
  }

  writeLe64(gpa: number, value: number): void {
    this.touch(gpa, 8, true);
    this.target.writeLe64(gpa, value);
  }

  write(gpa: number, bytes: Uint8Array): void {
    this.touch(gpa, bytes.length, true);
    this.target.write(gpa, bytes);
  }

  // ---- PageStore ---------------------------------------------------------------------------

  isZeroPage(pageIndex: number): boolean {
    this.touchPage(pageIndex, false);
    return this.target.isZeroPage(pageIndex);
  }

  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void {
    this.touchPage(pageIndex, false);
    this.target.copyPageOut(pageIndex, out, outOffset);
  }

  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset?: number): void {
    this.touchPage(pageIndex, true);
    this.target.writePageFrom(pageIndex, bytes, bytesOffset);
  }

  zeroPage(pageIndex: number): void {
    this.touchPage(pageIndex, true);
    this.target.zeroPage(pageIndex);
  }

  bumpPage(pageIndex: number): void {
    this.touchPage(pageIndex, true);
    this.target.bumpPage(pageIndex);
  }

  pageDigest(pageIndex: number): number {
    this.touchPage(pageIndex, false);
    return this.target.pageDigest(pageIndex);
  }

  pageEquals(other: PageStore, pageIndex: number): boolean {
    this.touchPage(pageIndex, false);
    return this.target.pageEquals(other, pageIndex);
  }

  bookkeepingBytes(): number {
    return this.target.bookkeepingBytes();
  }
}
