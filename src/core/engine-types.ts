/**
 * The contract between the migration engine (core/source, core/dest) and the shells that run
 * it (the simulator in sim/, real processes in host/). The engine is synchronous and pure: a
 * shell calls its input methods with the current time (`nowNs`) and the engine answers with
 * effects, which the shell carries out (write bytes to a channel, stop the guest, wake a
 * faulting vCPU, emit a QMP event). The engine never reads a clock, a socket or a timer.
 *
 * The engine does not know what a balloon or a virtio-mem device is. It sees guest RAM as a
 * RamBlockList over a PageStore plus a dirty log, it is told about hinted ranges through
 * `SourceEngine.applyHint`, it asks `SourceHooks.skipRanges` for ranges never to send
 * (unplugged virtio-mem memory), and it carries device state as opaque section payloads that
 * the host encodes and decodes.
 */
import type { RangeTable } from '../lib/range-table.ts';
import type { PageStore } from '../memory/page-store.ts';
import type { RamBlockList } from '../memory/ram-block.ts';
import type { MigrationBitmap } from '../memory/migration-bitmap.ts';
import type { ReceivedMap } from '../memory/received-map.ts';
import type { MigrationStatus } from './status.ts';

/** Where bytes travel. `main` is the migration stream; `preempt` is postcopy-preempt's channel. */
export type ChannelName = 'main' | 'preempt';
/** The multifd channel with id N (its own connection; the source writes, the destination reads). */
export type MultifdChannelName = `multifd${number}`;

/** QEMU's PrecopyNotifyReason, in its order. */
export type PrecopyNotifyReason = 'setup' | 'before-bitmap-sync' | 'after-bitmap-sync' | 'complete' | 'cleanup';

/** QEMU's PostcopyNotifyReason (destination side). */
export type PostcopyNotifyReason = 'probe' | 'inbound-advise' | 'inbound-listen' | 'inbound-end';

/**
 * What to do when postcopy meets free page hinting (DESIGN §2). The source engine implements
 * the page-request side of each: `legacy` and `ignore-after-switch` drop requests for pages
 * whose dirty bit a hint cleared (QEMU's "not dirty, not sent"); `track` remembers those
 * pages and answers a request for one exactly once with a ZERO record. `refuse` and
 * `overrule` never see a hinted page under postcopy (the balloon does not hint then).
 */
export type HintPostcopyPolicy = 'refuse' | 'overrule' | 'legacy' | 'ignore-after-switch' | 'track';

/** A device section the host saved, carried opaquely by the engine. */
export interface DeviceSectionBlob {
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  /** The vmstate payload, without header or footer. */
  readonly payload: Uint8Array;
}

/** Guest RAM as the source engine sees it. */
export interface SourceRam {
  readonly blocks: RamBlockList;
  /** Page contents (bytes or compact). Page index = gpa / 4096 across all blocks. */
  readonly store: PageStore;
  /**
   * Moves the guest's dirty log into the migration bitmap (fetch-and-clear, as KVM's
   * GET_DIRTY_LOG) and returns how many pages became newly dirty.
   */
  syncDirtyLog(into: MigrationBitmap): number;
  /**
   * Optional: which pages nothing has written since the VM was built, so they are still all
   * zero. The source sends a ZERO record for such a page without reading it. A page written
   * after the query is in the dirty log and is sent again after the next sync.
   */
  readonly unwritten?: UnwrittenPages;
}

/** Runs of pages that are known never written, hence all zero (memory/written-pages.ts). */
export interface UnwrittenPages {
  /** How many pages from `page` on (at most `count`) were never written; 0 if `page` may have been. */
  unwrittenRun(page: number, count: number): number;
  /** How many pages from `page` on (at most `count`) may have been written; 0 if `page` never was. */
  writtenRun(page: number, count: number): number;
}

/** Callbacks from the source engine into its host, called synchronously inside an input. */
export interface SourceHooks {
  /** QEMU's precopy notifier chain (facts §4.1). `vmRunning` is false for the final sync. */
  precopyNotify(reason: PrecopyNotifyReason, nowNs: number, vmRunning: boolean): void;
  /** Pages never to send (virtio-mem unplugged), in page indexes; null for none. */
  skipPages(): RangeTable | null;
  /** Device sections to write at completion or into the postcopy package, in order. */
  saveDevices(nowNs: number): readonly DeviceSectionBlob[];
}

/** Guest RAM as the destination engine sees it. */
export interface DestRam {
  readonly blocks: RamBlockList;
  readonly store: PageStore;
  /** One bit per page: set once the page's content has arrived (or was zero-filled locally). */
  readonly received: ReceivedMap;
  /**
   * Optional: every page below the returned index was verified all zero by the host before the
   * stream began, and nothing but this engine has written RAM since. Together with the received
   * map (a page whose bit is clear was never written by the engine, or was zeroed when its bit
   * was cleared) this lets a precopy ZERO record skip reading such a page at all.
   */
  readonly verifiedZeroBelowPage?: () => number;
  /**
   * Optional: the pages no writer but this engine has written since the VM was built. A page
   * in such a run whose received bit is clear is still all zero, so a ZERO record (precopy or
   * postcopy) skips it unread.
   */
  readonly unwritten?: UnwrittenPages;
  /**
   * Optional, for a bytes store: copies one page (`bytes`, PAGE_SIZE_BYTES long) into guest RAM
   * at `pageIndex` natively. Without it a TypedArray `set` does the copy, which V8 carries out
   * for a SharedArrayBuffer target with relaxed loads and stores, one byte at a time when the
   * source is not 8-byte aligned (a payload's offset in a read depends on where the read began).
   * Must be equivalent to `store.bytes.set(bytes, pageIndex * PAGE_SIZE_BYTES)`.
   */
  readonly copyPageIn?: (pageIndex: number, bytes: Uint8Array) => void;
}

/** Callbacks from the destination engine into its host. */
export interface DestHooks {
  /** Loads one device section; returns an error text to fail the load (QEMU: load error). */
  loadDevice(blob: DeviceSectionBlob, nowNs: number): string | null;
  /** Destination postcopy notifiers; a non-null text vetoes (the `refuse` policy uses PROBE). */
  postcopyNotify(reason: PostcopyNotifyReason): string | null;
  /** Pages the destination fills with zeros itself instead of asking (virtio-mem unplugged). */
  localZeroPages(): RangeTable | null;
}

/** What an engine asks its shell to do. Effects are carried out in the order given. */
export type Effect =
  /** Write bytes on a channel (source: stream; destination: return path). */
  | { readonly kind: 'send'; readonly channel: ChannelName | MultifdChannelName | 'return-path'; readonly data: Uint8Array }
  /** MigrationStatus changed (source or destination). */
  | { readonly kind: 'status'; readonly from: MigrationStatus; readonly to: MigrationStatus }
  /** A QMP event to emit (MIGRATION_PASS, ...); MIGRATION itself follows from `status`. */
  | { readonly kind: 'event'; readonly name: string; readonly data?: Readonly<Record<string, unknown>> }
  /** Stop the guest's vCPUs (source at completion or at the postcopy switch). */
  | { readonly kind: 'stop-guest' }
  /** Start or resume the guest's vCPUs (destination after load; source after a failure). */
  | { readonly kind: 'run-guest' }
  /** Set the vCPU throttle (auto-converge), in percent; 0 removes it. */
  | { readonly kind: 'throttle'; readonly percent: number }
  /** Destination: page `pageIndex` is now present; wake vCPUs blocked on it. */
  | { readonly kind: 'page-ready'; readonly pageIndex: number }
  /** A rare branch was taken (coverage marks, as TigerBeetle's); tests can assert them. */
  | { readonly kind: 'mark'; readonly name: string; readonly detail?: string };

/** Everything an input produced. `pagesScanned` feeds the simulator's per-page scan cost. */
export interface StepResult {
  readonly effects: Effect[];
  /** Pages the source examined during this input (sent, zero, or skipped as clean). */
  readonly pagesScanned: number;
}

/**
 * How a PAGE record carries its payload. `bytes`: 4096 real bytes, as QEMU does. `version`:
 * the simulator's compact mode: the record header is real (be64 offset|flags, block name when
 * CONTINUE is clear) but the payload is the page's version as 8 bytes little-endian instead of
 * 4096 bytes; statistics and the link model count such a record as if it carried 4096 bytes,
 * so byte counts and timings equal those of a real stream.
 */
export type PagePayloadMode = 'bytes' | 'version';
