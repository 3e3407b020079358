/**
 * What the world sees the engines do to guest RAM, through the AuditedPageStores of machine.ts:
 *
 * - placements: a write of a destination page while the stream is being loaded and the
 *   destination is postcopy-active (after LISTEN) places that page; a second placement of the
 *   same page is recorded (invariant 2);
 * - unplugged pages received: a destination page write from the stream to an unplugged page
 *   (a PAGE record, or a ZERO record after LISTEN; before that a zeroing of an unplugged page
 *   is the destination's own post-load zero fill), and source reads of unplugged pages
 *   (invariant 5).
 *
 * - first writes: a destination page written from the stream is reported to the host's
 *   first-touch model (dest-faults.ts), when the scenario has one.
 *
 * Also the page requests on the return path, decoded for the trace.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { DestinationFaults } from './dest-faults.ts';
import type { Machine } from './machine.ts';
import type { TraceEvents } from './trace-events.ts';

/** Duplicate placements named in a report. */
const DUPLICATES_LISTED_MAX = 64;

export class StoreWatch {
  /** Pages placed more than once after LISTEN (the first few), and how many. */
  readonly duplicatePlacements: number[] = [];
  duplicatePlacementCount = 0;
  /** True while the destination engine loads stream bytes. */
  loadingStream = false;
  /** Pages placed after LISTEN (null until the first). */
  private placed: Bitmap | null = null;

  constructor(machine: Machine, inPostcopy: () => boolean, firstWrites: DestinationFaults | null = null) {
    const audit = machine.audit;
    const place = (p: number, zero: boolean): void => {
      if (!this.loadingStream) return;
      if (!zero) firstWrites?.onWrite(p);
      const postcopy = inPostcopy();
      if (audit.isUnplugged(p) && (!zero || postcopy)) audit.receivedUnplugged.record(p);
      if (!postcopy) return;
      if (this.placed === null) this.placed = new Bitmap(machine.pageCount);
      if (this.placed.testAndSet(p)) return;
      this.duplicatePlacementCount++;
      if (this.duplicatePlacements.length < DUPLICATES_LISTED_MAX) this.duplicatePlacements.push(p);
    };
    machine.destinationEngineStore.onWrite = (p) => place(p, false);
    machine.destinationEngineStore.onZero = (p) => place(p, true);
    // A zeroing before LISTEN records nothing (see `place`): a precopy run costs one check.
    // After LISTEN, the pages placed before (rare) are found per word, then the run is marked.
    machine.destinationEngineStore.onZeroRange = (start, end) => {
      if (!this.loadingStream || !inPostcopy()) return;
      if (this.placed === null) this.placed = new Bitmap(machine.pageCount);
      const placed = this.placed;
      if (audit.unpluggedInRange(start, end)) {
        for (let p = start; p < end; p++) if (audit.isUnplugged(p)) audit.receivedUnplugged.record(p);
      }
      for (let p = placed.nextSetBelow(start, end); p !== -1; p = placed.nextSetBelow(p + 1, end)) {
        this.duplicatePlacementCount++;
        if (this.duplicatePlacements.length < DUPLICATES_LISTED_MAX) this.duplicatePlacements.push(p);
      }
      placed.setRange(start, end);
    };
    const source = machine.sourceEngineStore;
    if ('onRead' in source) {
      const before = source.onRead; // KVM manual protect's CLEAR before a send (stale-faults.ts)
      source.onRead = (p) => {
        before?.(p);
        if (audit.isUnplugged(p)) audit.sourceUnpluggedReads.record(p);
      };
    }
  }
}

/** Traces the page requests of return-path bytes: REQ_PAGES(_ID) are be16 type 3 or 4, be16 length, be64 start. */
export function traceRequests(trace: TraceEvents, bytes: Uint8Array, nowNs: number): void {
  for (let at = 0; at + 4 <= bytes.length;) {
    const type = (bytes[at] << 8) | bytes[at + 1];
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    if ((type === 3 || type === 4) && at + 12 <= bytes.length) {
      let start = 0;
      for (let i = 0; i < 8; i++) start = start * 256 + bytes[at + 4 + i];
      trace.request(nowNs, Math.floor(start / TARGET_PAGE_SIZE));
    }
    at += 4 + length;
  }
}
