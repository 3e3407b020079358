/**
 * Invariant 3 (DESIGN §4): no vCPU stalls on a fault longer than a bound derived from the
 * link: a round trip, plus serializing one page behind what the shell keeps queued on the
 * stream, plus the sender's scan time for the most pages one pump may send (its byte budget
 * over the smallest page record, a zero page), doubled for margin, plus one guest tick.
 * The `legacy` policy is expected to break this (a hinted page is never sent, so its fault
 * waits until postcopy ends), and the verdict says so.
 */
import { NS_PER_MS } from '../../lib/units.ts';
import type { InvariantVerdict } from './verdict.ts';

export const STALL_BOUND = 'stall-bound';

/** The link facts the bound is derived from. */
export interface StallBoundLink {
  /** One-way latency of the stream, ns. */
  readonly streamLatencyNs: number;
  /** One-way latency of the return path, ns. */
  readonly returnLatencyNs: number;
  /** Stream bandwidth, bytes/s. */
  readonly streamBytesPerSec: number;
  /** Bytes the shell lets queue on the stream ahead of a requested page. */
  readonly streamQueueBytesMax: number;
  /** Bytes of one page record. */
  readonly pageRecordBytes: number;
  /** Wire bytes of one pump after the postcopy switch. */
  readonly pumpBytesMax: number;
  /** Smallest page record on the wire (a zero page), bytes. */
  readonly zeroRecordBytes: number;
  /** Sender time to examine one page, ns. */
  readonly scanNsPerPage: number;
  /** The guest's step period, ns. */
  readonly tickNs: number;
}

/** The stall bound for a link, ns (see the module comment). */
export function stallBoundNs(link: StallBoundLink): number {
  const rtt = link.streamLatencyNs + link.returnLatencyNs;
  const serialize = Math.ceil(((link.streamQueueBytesMax + link.pageRecordBytes) * 1e9) / link.streamBytesPerSec);
  const scan = Math.ceil(link.pumpBytesMax / link.zeroRecordBytes) * link.scanNsPerPage;
  return 2 * (rtt + serialize + scan) + link.tickNs;
}

/** What the checker reads. */
export interface StallBoundInput {
  /** The bound, ns (stallBoundNs of the run's link). */
  readonly boundNs: number;
  /** The longest stall, ns (0 without faults); an unserved fault counts until the run's end. */
  readonly longestStallNs: number;
  /** The page of the longest stall, or -1. */
  readonly longestStallPage: number;
  /** Faults in total. */
  readonly faultCount: number;
  /** The free-page-hint × postcopy policy, for the verdict's wording. */
  readonly policy: string | null;
}

function ms(ns: number): string {
  return `${(ns / NS_PER_MS).toFixed(3)} ms`;
}

/** Checks invariant 3; see the module comment. */
export function checkStallBound(input: StallBoundInput): InvariantVerdict {
  const head = `longest stall ${ms(input.longestStallNs)} over ${input.faultCount} faults, bound ${ms(input.boundNs)}`;
  if (input.longestStallNs <= input.boundNs) return { name: STALL_BOUND, ok: true, detail: head };
  const expected = input.policy === 'legacy' ? ' (expected: the legacy policy leaves hinted pages unanswered)' : '';
  return { name: STALL_BOUND, ok: false, detail: `${head}: page ${input.longestStallPage} stalled too long${expected}` };
}
