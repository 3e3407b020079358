/**
 * The public vocabulary of the source engine (core/source): its configuration, the inputs it
 * takes, what it tells its shell besides effects (readiness, counters), its typed errors, and the
 * `wireBytes` annotation of its `send` effects.
 *
 * Inputs, each carrying `nowNs` (integer nanoseconds, never decreasing):
 *
 *   start ─ pump* ─ (startPostcopy)? ─ onReturnPath* ─ applyHint* ─ tick* ─ cancel | channelError
 *   postcopy only: (channelError | migratePause) ─ resume ─ onReturnPath* (RECV_BITMAP…, RESUME_ACK) ─ pump* …
 *
 * Wire bytes: in `version` payload mode a PAGE record carries 8 bytes where a real stream carries
 * 4096 (engine-types.ts PagePayloadMode). Every `send` effect the source emits is a
 * SourceSendEffect whose `wireBytes` is the size the same bytes would have on a real stream, so
 * a link model can time them as a real stream (equal to `data.length` in `bytes` mode).
 *
 * What it deliberately doesn't do: define the shell's side (sim/, host/), or the destination's
 * inputs (core/dest).
 */
import type { DeviceSectionBlob, Effect, HintPostcopyPolicy, PagePayloadMode, SourceHooks, SourceRam } from '../engine-types.ts';
import type { MigrationCapabilities } from '../capabilities.ts';
import type { MigrationParameters } from '../params.ts';

/** Options of the source engine beyond capabilities and parameters; all have defaults. */
export interface SourceOptions {
  /** How PAGE records carry their payload (default 'bytes', QEMU's). */
  readonly payloadMode?: PagePayloadMode;
  /** Free page hinting × postcopy policy (DESIGN §2); the engine implements its request side. Default 'refuse'. */
  readonly hintPolicy?: HintPostcopyPolicy;
  /** Machine type name of the CONFIGURATION record (default 'none', as `-M none`). */
  readonly machine?: string;
  /** 16-byte VM UUID, sent in CONFIGURATION when capability validate-uuid is on. */
  readonly uuid?: Uint8Array;
  /** Section id of the `ram` handler (default 2, as QEMU 7.2 `-M none` and `-M pc`). */
  readonly ramSectionId?: number;
  /**
   * Section id of a device section. Default: `timer` 0, `globalstate` 4 (QEMU 7.2 `-M none`),
   * every other (idstr, instance) from 5 on in order of first appearance.
   */
  readonly sectionIdOf?: (idstr: string, instanceId: number) => number;
  /** Write the VMDESCRIPTION record after EOF of a precopy stream (QEMU's default; default true). */
  readonly sendVmdesc?: boolean;
  /** The VMDESCRIPTION JSON for the device sections written (default: vmdesc-json.ts). */
  readonly vmdescriptionJson?: (devices: readonly DeviceSectionBlob[], pageSizeBytes: number) => string;
  /**
   * Most background pages in one RAM chunk (default DEFAULT_MAX_CHUNK_PAGES). Without
   * iterationNsMin a chunk is an iteration, a deterministic stand-in for QEMU's 50 ms MAX_WAIT
   * check; with it, this is the most pages one pump of an iteration sends, and sets how often
   * it looks at the clock (the iteration's pages all go in one RAM PART, as QEMU writes them).
   */
  readonly maxChunkPages?: number;
  /**
   * QEMU's iteration bound, ns: a precopy iteration goes on over pumps, without a convergence
   * check, until it has lasted this long (ram_save_iterate leaves at the first 64-page look with
   * more than MAX_WAIT = 50 whole ms spent: 51 ms), the rate limiter stops it, or the pass ends.
   * The pumps' chunks (maxChunkPages) then set how finely the end is found. Default: none, an
   * iteration is one chunk.
   */
  readonly iterationNsMin?: number;
  /** Most queued page requests (REQ_PAGES messages); one more fails the migration (default 65536). */
  readonly requestQueueLimit?: number;
  /** Size of the stream encoders' chunk buffers, bytes (default 256 KiB). */
  readonly chunkSizeBytes?: number;
  /**
   * Supplies the main stream's chunk buffers (a shell's pool that recycles buffers the
   * channel has finished with); default fresh arrays. See ChunkWriter.
   */
  readonly allocChunk?: (bytes: number, retiredEndBytes: number) => Uint8Array;
  /**
   * Keep a "sent after the postcopy switch" bitmap and assert that no page is sent twice after
   * the switch (one more bit per page; default false).
   */
  readonly debugChecks?: boolean;
  /**
   * Without a return path, stay `active` after EOF until the shell reports the stream written
   * (`written`): QEMU's completion ends with a blocking qemu_fflush, so its downtime and total
   * time include writing the last pass to the socket. Default false: completed as soon as EOF
   * is emitted (for shells that cannot tell when their writes finish).
   */
  readonly awaitWritten?: boolean;
  /**
   * The precopy completion's last pass spans pumps: each pump sends at most its budget of the
   * remaining dirty pages, and the one that sends the last page closes the stream (EOS,
   * devices, EOF). The stream's bytes are the same; a real shell then never holds the whole
   * last pass in memory, and the socket carries it while it is being encoded. Default false:
   * the whole completion in one pump.
   */
  readonly completionSpansPumps?: boolean;
  /**
   * Bytes-mode pages of the background scan leave as views of guest RAM between the record
   * headers (StreamEncoder option pageViews): no copy, the shell writes the pieces with writev.
   * Sound because a page the guest writes after it was sent is dirty and goes again; the
   * shell must not hold views across a RAM change it cannot see (it never does: RAM lives as
   * long as the VM). Default false.
   */
  readonly pageViews?: boolean;
  /**
   * The shell carries multifd channels (`send` effects on `multifdN`, N < multifd-channels):
   * capability `multifd` is accepted (precopy only, bytes payload). Default false: refused.
   */
  readonly multifd?: boolean;
}

/** Everything a source engine is built from. */
export interface SourceEngineConfig extends SourceOptions {
  /** Guest RAM: blocks, page store, dirty log access. */
  readonly ram: SourceRam;
  /** Callbacks into the host (notifiers, skip ranges, device state). */
  readonly hooks: SourceHooks;
  /** Capabilities, validated by the caller (capabilities.ts applyCapabilities). */
  readonly capabilities: MigrationCapabilities;
  /** Parameters, validated by the caller (params.ts). */
  readonly parameters: MigrationParameters;
}

/** Default MAX_WAIT-like bound on background pages per RAM chunk. */
export const DEFAULT_MAX_CHUNK_PAGES = 16384;
/** Default bound on queued page requests. */
export const DEFAULT_REQUEST_QUEUE_LIMIT = 65536;
/** Default chunk buffer size of the source's encoders. */
export const DEFAULT_SOURCE_CHUNK_BYTES = 256 * 1024;

/** One input of the source engine (the class methods build these and call `stepSource`). */
export type SourceInput =
  /** `migrate`: write the setup and go active. */
  | { readonly kind: 'start'; readonly nowNs: number }
  /** One iteration of the migration thread, with at most `budgetBytes` wire bytes to write. */
  | { readonly kind: 'pump'; readonly nowNs: number; readonly budgetBytes: number }
  /** `migrate-start-postcopy`. */
  | { readonly kind: 'start-postcopy'; readonly nowNs: number }
  /** Bytes from the return path. */
  | { readonly kind: 'return-path'; readonly nowNs: number; readonly bytes: Uint8Array }
  /** Answer the queued page requests now, without background pages (postcopy). */
  | { readonly kind: 'serve-requests'; readonly nowNs: number }
  /** A free page hint: pages [startPage, startPage + pageCount) are free in the guest. */
  | { readonly kind: 'hint'; readonly nowNs: number; readonly startPage: number; readonly pageCount: number }
  /** `migrate_cancel`. */
  | { readonly kind: 'cancel'; readonly nowNs: number }
  /** The migration channel broke (write error, peer gone). */
  | { readonly kind: 'channel-error'; readonly nowNs: number; readonly reason: string }
  /** Time passed: close the bandwidth window if due. */
  | { readonly kind: 'tick'; readonly nowNs: number }
  /** `migrate-set-parameters` during the migration. */
  | { readonly kind: 'set-parameters'; readonly nowNs: number; readonly parameters: MigrationParameters }
  /** `migrate-pause` (postcopy-active only). */
  | { readonly kind: 'migrate-pause'; readonly nowNs: number }
  /** `migrate` with `resume: true`: postcopy recovery on a new connection. */
  | { readonly kind: 'resume'; readonly nowNs: number }
  /** Everything emitted so far has been written to the connection (option awaitWritten). */
  | { readonly kind: 'written'; readonly nowNs: number };

/** What the shell should do next with the engine. */
export type SourceReadiness =
  /** Call `pump` now. */
  | { readonly kind: 'pump' }
  /** Rate limited: call `pump` at `untilNs` (or at once when a page request arrives). */
  | { readonly kind: 'wait'; readonly untilNs: number }
  /** Nothing to pump: before start, waiting for SHUT, paused, recovering, or finished. */
  | { readonly kind: 'idle' };

/** Counters the QMP statistics don't have (all cumulative over the migration). */
export interface SourceCounters {
  /** Pages whose migration-bitmap bit a free page hint cleared. */
  readonly hintedPages: number;
  /** Pages a hint cleared that had never been sent (recorded in hintedNeverSent; `track` only). */
  readonly hintedNeverSentPages: number;
  /** Requests for hinted never-sent pages answered with a ZERO record (`track` only). */
  readonly hintedZeroPagesSent: number;
  /** Requested pages dropped because their bit was clear ("not dirty → not sent"). */
  readonly requestedPagesDropped: number;
  /** Requested pages sent. */
  readonly requestedPagesSent: number;
  /** Page requests received (REQ_PAGES and REQ_PAGES_ID messages). */
  readonly requestsReceived: number;
  /** Most requests ever queued at once. */
  readonly requestQueueHighWater: number;
  /** PONG messages received, and the last value. */
  readonly pongs: number;
  readonly lastPong: number | null;
  /** DISCARD commands sent at the postcopy switch, and the ranges they carried. */
  readonly discardCommands: number;
  readonly discardRanges: number;
  /**
   * Precopy convergence checks so far (QEMU's migrate_pending trace point), and the last one:
   * the pending bytes it compared (after any sync it ran first), the threshold, its decision.
   */
  readonly convergenceChecks: number;
  readonly lastCheckPendingBytes: number;
  readonly lastCheckThresholdBytes: number;
  readonly lastCheckDecision: 'iterate' | 'complete' | 'postcopy' | null;
  /**
   * Dirty bitmap syncs so far (QEMU's migration_bitmap_sync_end trace point), and the pages the
   * last one counted: newly dirty since the sync period began (QEMU's num_dirty_pages_period,
   * which a period of more than 1 s resets), so within the first second the count is cumulative.
   */
  readonly dirtySyncs: number;
  readonly lastSyncPeriodDirtyPages: number;
  /**
   * Iterations that ended on their time bound (option iterationNsMin; QEMU's
   * ram_save_iterate_big_wait trace point), and the last one's: whole milliseconds spent and
   * pages saved (zero and normal), as QEMU's trace prints them.
   */
  readonly bigWaits: number;
  readonly lastBigWaitMs: number;
  readonly lastBigWaitPages: number;
}

/** Stable codes of the source engine's operating errors. */
export type SourceErrorCode =
  | 'MIG_ERR_SOURCE_CONFIG'
  | 'MIG_ERR_SOURCE_UNSUPPORTED'
  | 'MIG_ERR_SOURCE_STATE'
  | 'MIG_ERR_POSTCOPY_NOT_ENABLED'
  | 'MIG_ERR_POSTCOPY_NOT_STARTED'
  | 'MIG_ERR_RP_MISALIGNED_REQUEST'
  | 'MIG_ERR_RP_NO_PREVIOUS_BLOCK'
  | 'MIG_ERR_RP_UNKNOWN_BLOCK'
  | 'MIG_ERR_RP_REQUEST_OVERRUN'
  | 'MIG_ERR_RP_MESSAGE'
  | 'MIG_ERR_RP_SIBLING_ERROR'
  | 'MIG_ERR_RP_UNEXPECTED'
  | 'MIG_ERR_REQUEST_QUEUE_FULL'
  | 'MIG_ERR_CHANNEL'
  | 'MIG_ERR_PAUSE_NOT_POSTCOPY'
  | 'MIG_ERR_RESUME_NOT_PAUSED'
  | 'MIG_ERR_RESUME_RELEASE_RAM';

/** An operating error of the source: refused input, bad return-path message, broken channel. */
export class SourceError extends Error {
  override name = 'SourceError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: SourceErrorCode,
    /** QEMU's text where QEMU has one (also the QMP error-desc). */
    message: string,
  ) {
    super(message);
  }
}

/** A `send` effect of the source, with the size the bytes have on a real stream. */
export type SourceSendEffect = Extract<Effect, { readonly kind: 'send' }> & {
  /** Bytes on a real (bytes-mode) stream: data.length plus the version-mode adjustment. */
  readonly wireBytes: number;
};

/** The wire size of a send effect: its `wireBytes` when a source made it, else its length. */
export function wireBytesOf(effect: Extract<Effect, { readonly kind: 'send' }>): number {
  const wire = (effect as Partial<SourceSendEffect>).wireBytes;
  return wire ?? effect.data.length;
}
