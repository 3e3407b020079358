/**
 * The end of a run: the checkers' inputs read from the world's final state (checkers/), and
 * the run's result: query-migrate of both sides, the progress rows, the invariant verdicts,
 * balloon and postcopy figures, and the trace hash.
 */
import type { MigrationInfoQmp } from '../core/stats.ts';
import { DEFAULT_REQUEST_QUEUE_LIMIT } from '../core/source/source-types.ts';
import { IncrementerWorkload } from '../guest/workloads/incrementer.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { runCheckers, type CheckerInputs, type InvariantVerdict } from './checkers/index.ts';
import { stallBoundNs } from './checkers/stall-bound.ts';
import { GUEST_VCPU_COUNT } from './guest-runner.ts';
import type { Scenario } from './scenario/scenario.ts';
import type { TraceWriter } from './trace.ts';
import { POSTCOPY_PUMP_BYTES_MAX, STREAM_QUEUE_BYTES_MAX, type EndReason, type Refusal, type World } from './world.ts';
import type { ProgressRow } from './world-progress.ts';

/** Bytes of one page record on the wire: header word, block name (at most 256) and the page. */
const PAGE_RECORD_BYTES_MAX = 8 + 256 + TARGET_PAGE_SIZE;
/** Bytes of a zero-page record: the be64 header word and the fill byte. */
const ZERO_RECORD_BYTES = 9;
/** The link's default bound on queued messages (link.ts). */
const LINK_QUEUE_MESSAGES_MAX = 1 << 20;

/** Everything a run produced. */
export interface SimRunResult {
  readonly scenario: Scenario;
  readonly seed: number;
  /** Why the run ended, and the source's final status. */
  readonly endReason: EndReason;
  readonly status: string;
  /** A refusal or failure text, when there is one. */
  readonly errorText: string | null;
  /** The destination's refusal of postcopy-ram (QMP error and stderr lines), when it refused. */
  readonly refusal: Refusal | null;
  /** A destination device that could not finish loading (fails the run). */
  readonly deviceError: string | null;
  /** Whether the run ended with the status the scenario expects. */
  readonly statusAsExpected: boolean;
  /** The source's and the destination's query-migrate at the end. */
  readonly source: MigrationInfoQmp;
  readonly destination: MigrationInfoQmp;
  readonly progress: readonly ProgressRow[];
  readonly verdicts: readonly InvariantVerdict[];
  readonly balloon: {
    readonly hintedPages: number;
    readonly heldAfterMigrationBytes: number;
    readonly doneDelivered: boolean;
    readonly freeBytesBefore: number;
    readonly freeBytesAfter: number;
    /** Memory the guest's direct reclaim took back from held hint blocks (the shrinker). */
    readonly reclaimedBytes: number;
    /** Hints the destination balloon took during incoming migration (ignored). */
    readonly destinationHints: number;
    /** Hints that reached the source once it was postcopy-active (`ignore-after-switch` drops them). */
    readonly hintsAfterSwitch: number;
  };
  /** The destination host's first writes into 2 MiB regions (scenario host.destination-fault), or null. */
  readonly destinationFaults: { readonly regions: number; readonly stalledNs: number } | null;
  readonly postcopy: {
    readonly switched: boolean;
    readonly faults: number;
    readonly requests: number;
    readonly maxStallNs: number;
    readonly stallBoundNs: number;
    readonly blocktimeMs: number | null;
    /** Requests for hinted never-sent pages answered with a ZERO record (`track`). */
    readonly hintedZeroPages: number;
    /** Requested pages the source dropped as not dirty. */
    readonly requestsDropped: number;
    /** Faults on pages that were hinted and free in the guest at the switchover. */
    readonly faultsOnHinted: number;
  };
  /** Virtual time at the end, ns. */
  readonly endNs: number;
  readonly traceHash: string;
  readonly traceLines: number;
  /** True when every invariant held and the status is the expected one. */
  readonly ok: boolean;
}

/** Reads the checkers' inputs from a finished world. */
export function checkerInputsOf(world: World): CheckerInputs {
  const { machine, scenario, guestRunner } = world;
  const { audit, guest } = machine;
  const endNs = world.scheduler.nowNs;
  const unserved = guestRunner.unservedFaults(endNs);
  const stream = scenario.link.stream;
  const counters = world.source.counters();
  const completed = world.endReason === 'completed';
  const workload = guest.workload;
  return {
    memory: {
      notApplicableReason: completed ? null : `the migration ended ${world.endReason}`,
      source: machine.sourceBacking,
      destination: machine.destinationBacking,
      writtenAfterResume: audit.writtenAfterResume,
      firstWriteMismatch: audit.firstWriteMismatch,
      allowedToDiffer: audit.allowedToDiffer,
    },
    placement: {
      postcopy: world.postcopy,
      duplicatePlacements: world.stores.duplicatePlacements,
      duplicatePlacementCount: world.stores.duplicatePlacementCount,
      faultCount: guestRunner.faultCount,
      unservedFaults: unserved,
      missingAtPrecopyResume: world.missingAtPrecopyResume,
      allowedToDiffer: audit.allowedToDiffer,
    },
    stall: {
      boundNs: stallBoundNs({
        streamLatencyNs: stream.latencyNs,
        returnLatencyNs: scenario.link.returnPath.latencyNs,
        streamBytesPerSec: stream.bandwidthBytesPerSec,
        // The engine may pass a pump's budget by one record, so one pump more can be queued.
        streamQueueBytesMax: STREAM_QUEUE_BYTES_MAX + POSTCOPY_PUMP_BYTES_MAX,
        pageRecordBytes: PAGE_RECORD_BYTES_MAX,
        pumpBytesMax: POSTCOPY_PUMP_BYTES_MAX,
        zeroRecordBytes: ZERO_RECORD_BYTES,
        scanNsPerPage: stream.scanCostNsPerPage ?? 0,
        tickNs: scenario.guest.tickNs,
      }),
      longestStallNs: guestRunner.longestStallNs,
      longestStallPage: guestRunner.longestStallPage,
      faultCount: guestRunner.faultCount,
      policy: scenario.balloon?.postcopyPolicy ?? null,
    },
    hints: {
      hintedPages: counters.hintedPages,
      hintRangeCount: audit.hintRangeCount,
      doneDelivered: (guest.balloon?.hinting?.stats().dones ?? 0) > 0,
      heldAfterMigrationBytes: guest.heldHintBytes(),
      freeBytesBefore: world.freeBytesBefore,
      freeBytesAfter: guest.freeBytes(),
      policy: scenario.balloon?.postcopyPolicy ?? null,
      postcopy: world.postcopy,
    },
    unplugged: {
      unpluggedPages: audit.unpluggedPageCount,
      sourceReads: audit.sourceUnpluggedReads,
      received: audit.receivedUnplugged,
      guestAccesses: audit.guestUnpluggedAccesses,
    },
    statusAndQueues: {
      source: world.sourceStatuses,
      destination: world.destinationStatuses,
      queues: [
        { name: 'stream messages', highWater: world.streamQueueHighWater, bound: LINK_QUEUE_MESSAGES_MAX },
        { name: 'return-path messages', highWater: world.returnQueueHighWater, bound: LINK_QUEUE_MESSAGES_MAX },
        { name: 'page requests', highWater: counters.requestQueueHighWater, bound: DEFAULT_REQUEST_QUEUE_LIMIT },
        { name: 'waiting vCPUs', highWater: guestRunner.waitingHighWater, bound: GUEST_VCPU_COUNT },
      ],
    },
    incrementer: {
      incrementer: workload instanceof IncrementerWorkload
        ? {
            pageCount: workload.pages.pageCount,
            pageAt: (i: number) => workload.pages.pageAt(i),
            readByte0: (p: number) => machine.guestMemory.current.readU8(p * TARGET_PAGE_SIZE),
            cursor: workload.cursor,
          }
        : null,
    },
  };
}

/** Judges a finished world and collects its result. */
export function resultOf(world: World, seed: number, trace: TraceWriter): SimRunResult {
  const inputs = checkerInputsOf(world);
  const verdicts = runCheckers(inputs);
  const nowNs = world.scheduler.nowNs;
  const source = world.source.queryMigrate(nowNs);
  const destination = world.destination.queryMigrate(nowNs);
  const status = world.endReason === 'refused' ? 'none' : (source.status ?? 'none');
  const expected = world.scenario.expectedStatus;
  const statusAsExpected = world.endReason === 'refused' ? expected === 'failed' : status === expected;
  const dest = world.destination.stats();
  const counters = world.source.counters();
  return {
    scenario: world.scenario,
    seed,
    endReason: world.endReason ?? 'stuck',
    status,
    errorText: world.errorText,
    refusal: world.refusal,
    deviceError: world.deviceError,
    statusAsExpected,
    source,
    destination,
    progress: world.progress.rows,
    verdicts,
    balloon: {
      hintedPages: inputs.hints.hintedPages,
      heldAfterMigrationBytes: inputs.hints.heldAfterMigrationBytes,
      doneDelivered: inputs.hints.doneDelivered,
      freeBytesBefore: inputs.hints.freeBytesBefore,
      freeBytesAfter: inputs.hints.freeBytesAfter,
      reclaimedBytes: world.machine.guest.allocator.reclaimedPages * TARGET_PAGE_SIZE,
      destinationHints: world.machine.devices.destinationHints,
      hintsAfterSwitch: world.hintsAfterSwitch,
    },
    destinationFaults: world.destinationFaults === null ? null : { regions: world.destinationFaults.faults, stalledNs: world.destinationFaults.stalledNs },
    postcopy: {
      switched: world.postcopy,
      faults: world.guestRunner.faultCount,
      requests: dest.requestsSent,
      maxStallNs: inputs.stall.longestStallNs,
      stallBoundNs: inputs.stall.boundNs,
      blocktimeMs: destination['postcopy-blocktime'] ?? null,
      hintedZeroPages: counters.hintedZeroPagesSent,
      requestsDropped: counters.requestedPagesDropped,
      faultsOnHinted: world.faultsOnHinted,
    },
    endNs: nowNs,
    traceHash: trace.traceHash(),
    traceLines: trace.lineCount,
    ok: statusAsExpected && world.deviceError === null && verdicts.every((v) => v.ok),
  };
}
