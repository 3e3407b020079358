/**
 * The public shapes of the destination engine: its construction options, the result of a
 * guest fault, and its statistics. The engine itself is in dest-engine.ts; the contract it
 * implements (DestRam, DestHooks, Effect, StepResult) is core/engine-types.ts.
 */
import type { StreamLimits } from '../../format/stream-errors.ts';
import type { DeviceSectionDecoder } from '../../format/stream-types.ts';
import type { MigrationCapabilities } from '../capabilities.ts';
import type { DestHooks, DestRam, PagePayloadMode, StepResult } from '../engine-types.ts';
import type { DestError } from './dest-errors.ts';
import type { OutstandingFault } from './fault-tracker.ts';

export type { OutstandingFault } from './fault-tracker.ts';

/** How a DestEngine is set up; fixed for its lifetime (one incoming migration). */
export interface DestEngineOptions {
  /** The guest RAM to load into: blocks, page store and received map (all pages missing). */
  readonly ram: DestRam;
  /** The host's device loading, postcopy notifiers and unplugged ranges. */
  readonly hooks: DestHooks;
  /** The destination guest's vCPU count (fault stalls and blocktime are per vCPU). */
  readonly vcpuCount: number;
  /**
   * The destination's migration capabilities (QMP names). Read: `postcopy-ram` (QEMU needs it
   * on both sides; ADVISE is checked against it), `postcopy-blocktime`, and `postcopy-preempt`
   * (a postcopy EOF then completes only after the preempt channel's EOS). Missing = off.
   */
  readonly capabilities?: Partial<MigrationCapabilities>;
  /** Start the guest once loaded (QEMU without `-S`); default true. */
  readonly autostart?: boolean;
  /** How PAGE records carry their payload; default 'bytes'. */
  readonly payloadMode?: PagePayloadMode;
  /**
   * Reads the payloads of device sections other than `timer` and `globalstate`, so the engine
   * knows where each ends (typically built from the host's device list or a VMDESCRIPTION).
   * The raw payload bytes it consumed are what `DestHooks.loadDevice` receives. Without one,
   * such a section fails the load with the decoder's opaque-section error.
   */
  readonly deviceDecoder?: DeviceSectionDecoder;
  /** Overrides of the stream decoder's limits. */
  readonly limits?: Partial<StreamLimits>;
  /** With capability `multifd`: the channels the source opens (multifd-channels); default 2. */
  readonly multifdChannels?: number;
}

/** What `onGuestFault` returns: the effects, and whether the vCPU may go on. */
export interface FaultResult extends StepResult {
  /**
   * True when the page can be accessed now (it was received, or it was zero-filled locally);
   * false when the vCPU must wait for a `page-ready` effect naming the page.
   */
  readonly present: boolean;
}

/** What a QMP command on the destination returns: its effects and QEMU's refusal, if any. */
export interface DestCommandResult extends StepResult {
  /** Why the command was refused (QMP GenericError text), or null. */
  readonly error: DestError | null;
}

/** What `onChannelReplaced` returns: its effects and whether the new connection was taken. */
export interface ChannelReplacedResult extends StepResult {
  /** False when the engine does not expect a new connection (the shell should close it). */
  readonly accepted: boolean;
}

/** Destination statistics (all counters monotonic over one incoming migration). */
export interface DestStats {
  /** Bytes pushed on the main channel. */
  readonly bytesReceived: number;
  /** PAGE records loaded (precopy and postcopy). */
  readonly pagesReceived: number;
  /** ZERO records loaded (precopy and postcopy). */
  readonly zeroPagesReceived: number;
  /** Pages placed after LISTEN, each exactly once. */
  readonly postcopyPagesPlaced: number;
  /** Pages zero-filled locally instead of requested (virtio-mem unplugged). */
  readonly localZeroPages: number;
  /** Received pages that a discard (ADVISE, RAM_DISCARD) made missing again. */
  readonly discardedPages: number;
  /** Page requests sent on the return path (REQ_PAGES and REQ_PAGES_ID). */
  readonly requestsSent: number;
  /** Postcopy records for pages already placed (each fails the load; should be 0). */
  readonly placedTwiceAttempts: number;
  /** Faults reported while postcopy trapped them, and how many of them had to wait. */
  readonly faults: number;
  readonly faultsWaited: number;
  /** Waits ended by the end of postcopy instead of their page (the page reads as zero). */
  readonly faultsReleasedAtEnd: number;
  /** The longest ended wait of each vCPU, ns. */
  readonly maxStallNsPerVcpu: readonly number[];
  /** The longest ended wait of any vCPU, ns. */
  readonly maxStallNs: number;
  /** The sum of ended waits of each vCPU, ns. */
  readonly totalStallNsPerVcpu: readonly number[];
  /** vCPUs waiting now (an "every fault served" check wants this empty at the end). */
  readonly outstandingFaults: readonly OutstandingFault[];
  /** Pages not received (nor zero-filled locally). */
  readonly missingPages: number;
  /** run-guest effects emitted (0 or 1). */
  readonly runGuestCount: number;
}
