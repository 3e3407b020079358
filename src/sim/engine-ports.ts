/**
 * What the simulated world needs from the two migration engines, as narrow interfaces. The
 * world is written against these, so tests can drive it with stand-ins and the real engines
 * (core/source, core/dest) plug in through `createEngines` (engines.ts).
 *
 * Every input takes `nowNs` last and returns the contract's StepResult (engine-types.ts).
 */
import type { ChannelName, StepResult } from '../core/engine-types.ts';
import type { SourceCounters, SourceReadiness } from '../core/source/source-types.ts';
import type { DestStats, FaultResult } from '../core/dest/dest-types.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { MigrationStatus } from '../core/status.ts';
import type { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';

/** The source engine as the world drives it. */
export interface SourcePort {
  /** MigrationStatus now. */
  readonly status: MigrationStatus;
  start(nowNs: number): StepResult;
  /** One iteration with at most `budgetBytes` wire bytes. */
  pump(budgetBytes: number, nowNs: number): StepResult;
  onReturnPath(bytes: Uint8Array, nowNs: number): StepResult;
  /** Pages [startPage, startPage + pageCount) are free in the guest (a free page hint). */
  applyHint(startPage: number, pageCount: number, nowNs: number): StepResult;
  /** `migrate-start-postcopy`; the error text when refused. */
  startPostcopy(nowNs: number): StepResult | string;
  cancel(nowNs: number): StepResult;
  channelError(reason: string, nowNs: number): StepResult;
  tick(nowNs: number): StepResult;
  /** Everything sent so far has left the sender (ends a completion without a return path). */
  written(nowNs: number): StepResult;
  /** True while a completion without a return path waits for `written`. */
  readonly awaitingWritten: boolean;
  /** What the shell should do next. */
  readiness(nowNs: number): SourceReadiness;
  /** True while a precopy iteration that spans pumps runs (QEMU holds bitmap_mutex). */
  readonly iterationOpen: boolean;
  /** True when a pump now would go on with the running iteration, without a check. */
  iterationGoesOn(budgetBytes: number, nowNs: number): boolean;
  queryMigrate(nowNs: number): MigrationInfoQmp;
  counters(): SourceCounters;
}

/** The destination engine as the world drives it (DestEngine fits as is). */
export interface DestPort {
  readonly status: MigrationStatus;
  onBytes(channel: ChannelName, bytes: Uint8Array, nowNs: number): StepResult;
  onChannelClosed(channel: ChannelName, nowNs: number): StepResult;
  onGuestFault(vcpuIndex: number, pageIndex: number, nowNs: number): FaultResult;
  queryMigrate(nowNs: number): MigrationInfoQmp;
  stats(): DestStats;
  readonly lastError: { readonly message: string } | null;
}

/** Builds the engines once the machine exists (engines.ts wires the real ones). */
export interface EngineFactory {
  source(machine: Machine, scenario: Scenario, hooks: WorldSourceHooks): SourcePort;
  destination(machine: Machine, scenario: Scenario): DestPort;
}

/** What the world tells the source-engine factory to call back. */
export interface WorldSourceHooks {
  precopyNotify(reason: string, nowNs: number, vmRunning: boolean): void;
  /** Main-stream bytes the destination has decoded, from the first byte (for chunk reuse). */
  consumedStreamBytes(): number;
}

/** Why a run ended. */
export type EndReason = 'completed' | 'failed' | 'cancelled' | 'refused' | 'time-limit' | 'stuck';
