/**
 * A PageStore that reports every page an engine reads or writes, so the world can watch what
 * the migration engines do to guest RAM without decoding their stream: the source engine's
 * reads of unplugged virtio-mem pages (invariant 5: unplugged memory is never read, hence
 * never sent), and the destination engine's placements after the postcopy switch
 * (invariant 2: no page placed twice).
 *
 * It keeps the inner store's `kind`, and a compact inner store's version interface, so the
 * engines' compact fast paths (setVersion, pageVersion, transferPage) still apply.
 *
 * What it deliberately doesn't do: decide anything; the hooks record and the checkers judge.
 */
import type { PageStore, PageStoreKind, VersionedPageStore } from '../memory/page-store.ts';
import { isVersionedPageStore } from '../memory/page-store.ts';

/** Called with the page an access touched. */
export type PageAccessHook = (pageIndex: number) => void;

export class AuditedPageStore implements VersionedPageStore {
  /** The store being watched. */
  readonly inner: PageStore;
  /** The inner store as a versioned one, or null for a bytes store. */
  private readonly versioned: VersionedPageStore | null;
  /** Called before each read of a page's content (or null). */
  onRead: PageAccessHook | null = null;
  /** Called before each write of a page's content (or null). */
  onWrite: PageAccessHook | null = null;
  /** Called before each zeroing of a page (or null); a zeroing is not an `onWrite`. */
  onZero: PageAccessHook | null = null;
  /**
   * Called before a zeroing of pages [start, end) (zeroPages); when null, `onZero` is called
   * for each page instead.
   */
  onZeroRange: ((start: number, end: number) => void) | null = null;

  constructor(inner: PageStore) {
    this.inner = inner;
    this.versioned = isVersionedPageStore(inner) ? inner : null;
  }

  // The kind is the inner store's, so isVersionedPageStore answers for it. The cast is the
  // price of one class serving both kinds.
  get kind(): 'compact' {
    return this.inner.kind as PageStoreKind as 'compact';
  }

  get pageCount(): number {
    return this.inner.pageCount;
  }

  get pageSizeBytes(): number {
    return this.inner.pageSizeBytes;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  isZeroPage(pageIndex: number): boolean {
    this.onRead?.(pageIndex);
    return this.inner.isZeroPage(pageIndex);
  }

  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void {
    this.onRead?.(pageIndex);
    this.inner.copyPageOut(pageIndex, out, outOffset);
  }

  writePageFrom(pageIndex: number, bytes: Uint8Array, bytesOffset?: number): void {
    this.onWrite?.(pageIndex);
    this.inner.writePageFrom(pageIndex, bytes, bytesOffset);
  }

  zeroPage(pageIndex: number): void {
    this.onZero?.(pageIndex);
    this.inner.zeroPage(pageIndex);
  }

  zeroPages(start: number, end: number): void {
    if (this.onZeroRange !== null) this.onZeroRange(start, end);
    else if (this.onZero !== null) for (let p = start; p < end; p++) this.onZero(p);
    const inner = this.inner;
    if (inner.zeroPages !== undefined) inner.zeroPages(start, end);
    else for (let p = start; p < end; p++) inner.zeroPage(p);
  }

  bumpPage(pageIndex: number): void {
    this.onWrite?.(pageIndex);
    this.inner.bumpPage(pageIndex);
  }

  pageDigest(pageIndex: number): number {
    this.onRead?.(pageIndex);
    return this.inner.pageDigest(pageIndex);
  }

  pageEquals(other: PageStore, pageIndex: number): boolean {
    this.onRead?.(pageIndex);
    const target = other instanceof AuditedPageStore ? other.inner : other;
    return this.inner.pageEquals(target, pageIndex);
  }

  bookkeepingBytes(): number {
    return this.inner.bookkeepingBytes();
  }

  pageVersion(pageIndex: number): number {
    this.onRead?.(pageIndex);
    return this.requireVersioned().pageVersion(pageIndex);
  }

  acceptsVersion(version: number): boolean {
    return this.requireVersioned().acceptsVersion(version);
  }

  setVersion(pageIndex: number, version: number): void {
    this.onWrite?.(pageIndex);
    this.requireVersioned().setVersion(pageIndex, version);
  }

  private requireVersioned(): VersionedPageStore {
    if (this.versioned === null) throw new TypeError('AuditedPageStore: the inner store is not a compact store');
    return this.versioned;
  }
}
