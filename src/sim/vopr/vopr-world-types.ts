/**
 * The VOPR world's constants and shapes (vopr-world.ts): the shell's bounds, the attempts and
 * connections the supervisor keeps, how a seed ends, and the destination store that loses a
 * page (the injected bug that proves the VOPR catches one).
 */
import { DEFAULT_PARAMETERS, type MigrationParameters } from '../../core/params.ts';
import type { DestEngine } from '../../core/dest/dest-engine.ts';
import type { SourceEngine } from '../../core/source/source-engine.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import type { ReceivedMap } from '../../memory/received-map.ts';
import type { StatusChange } from '../checkers/status-and-queues.ts';
import type { Link } from '../link.ts';

export const PAGE_BYTES = 4096;
export const MS = 1_000_000;
/** Bytes the shell lets queue on the stream in postcopy, and one postcopy pump. */
export const POSTCOPY_QUEUE_BYTES_MAX = 128 * 1024;
export const POSTCOPY_PUMP_BYTES_MAX = 32 * 1024;
/** One precopy iteration sends at most this long (QEMU's MAX_WAIT). */
export const PRECOPY_ITERATION_NS = 50 * MS;
/** Bounds on retries (new destination) and recoveries (new connection) of one seed. */
export const ATTEMPTS_MAX = 12;
export const RECOVERIES_MAX = 12;
/** The guest runs this long after the end before the world stops. */
export const SETTLE_NS = 2 * MS;

/** The migration parameters of every attempt (no rate limit to speak of; 300 ms downtime). */
export const VOPR_PARAMETERS: MigrationParameters = { ...DEFAULT_PARAMETERS, maxBandwidthBytesPerSec: 1 << 30, downtimeLimitMs: 300 };

/** Options that exist to prove the VOPR catches bugs (tests only). */
export interface VoprWorldOptions {
  /** The destination ignores its first write of one page (chosen by the seed): a lost page. */
  readonly dropPageOnDestination?: boolean;
  /** Keep the trace lines (for printing a failing seed); the hash is kept either way. */
  readonly keepLines?: boolean;
}

/** A connection (stream + return path) of one attempt; replaced on recovery. */
export interface Connection {
  readonly id: number;
  readonly link: Link<Uint8Array, Uint8Array>;
  dead: boolean;
}

/** One `migrate` to one destination process. */
export interface Attempt {
  readonly index: number;
  readonly source: SourceEngine;
  readonly dest: DestEngine;
  readonly destStore: CompactBacking;
  readonly received: ReceivedMap;
  conn: Connection | null;
  sourceAlive: boolean;
  destAlive: boolean;
  recoveries: number;
  readonly sourceStatuses: StatusChange[];
  readonly destStatuses: StatusChange[];
}

/** How a seed ended. */
export type VoprOutcome =
  | { readonly kind: 'completed' }
  | { readonly kind: 'guest-lost'; readonly why: string }
  | { readonly kind: 'source-crashed-guest-survives'; readonly why: string }
  | { readonly kind: 'failed-cleanly'; readonly why: string }
  /** The source paused in postcopy while the destination failed before it ran the guest: whole, stopped, not restartable by QEMU. */
  | { readonly kind: 'guest-stranded'; readonly why: string }
  /**
   * The destination completed (every page, EOF) but the source did not (paused or failed
   * before SHUT, or crashed): the guest runs whole at the destination, the source kept its
   * copy stopped (the split-brain rule, termination.ts).
   */
  | { readonly kind: 'destination-completed-only'; readonly why: string };

/** A destination store that loses its first write of `victim` (the injected bug). */
export class DroppingBacking extends CompactBacking {
  private dropped = false;
  constructor(pageCount: number, private readonly victim: number) {
    super(pageCount);
  }
  override setVersion(pageIndex: number, version: number): void {
    if (pageIndex === this.victim && !this.dropped) {
      this.dropped = true;
      return;
    }
    super.setVersion(pageIndex, version);
  }
}
