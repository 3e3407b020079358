/**
 * SourceEngine: QEMU 7.2's outgoing migration as a synchronous, deterministic object. A thin
 * class over a SourceContext and `stepSource`: each method is one input, takes the current
 * time, runs to completion and returns the effects for the shell to carry out, in order.
 *
 * @example
 * ```ts
 * const engine = new SourceEngine({ ram, hooks, capabilities, parameters, payloadMode: 'bytes' });
 * apply(engine.start(now));
 * for (;;) {
 *   const ready = engine.readiness(now);
 *   if (ready.kind === 'idle') break;              // waiting for SHUT, paused, or finished
 *   if (ready.kind === 'wait') now = ready.untilNs; // rate limited (a page request wakes it)
 *   apply(engine.pump(now, linkBudgetBytes));      // send effects go to the link
 * }                                                // return-path bytes → engine.onReturnPath
 * ```
 * (The `drive` loop of source-harness.test-util.ts is this loop.)
 *
 * `StepResult.pagesScanned` counts the pages whose records an input wrote, plus requested
 * pages examined and dropped; clean bitmap words skipped by the word scan are not counted
 * (QEMU skips them with find_next_bit, at a cost far below a page's).
 *
 * What it deliberately doesn't do: postcopy recovery (postcopy-paused is reached and stays),
 * multifd, xbzrle, compression, pause-before-switchover, x-colo (refused at construction).
 */
import { BUFFER_DELAY_MS } from '../bandwidth.ts';
import { NS_PER_MS } from '../../lib/units.ts';
import type { MigrationBitmap } from '../../memory/migration-bitmap.ts';
import type { StepResult } from '../engine-types.ts';
import type { MigrationParameters } from '../params.ts';
import { isOverBudget } from '../rate-limiter.ts';
import type { MigrationInfoQmp } from '../stats.ts';
import type { MigrationStatus } from '../status.ts';
import { SourceContext, type SourcePhase } from './source-context.ts';
import { stepSource } from './source-step.ts';
import type { SourceCounters, SourceEngineConfig, SourceError, SourceInput, SourceReadiness } from './source-types.ts';

/** The result of `startPostcopy`: effects (none) and QEMU's refusal, if any. */
export interface CommandResult extends StepResult {
  /** Why the command was refused (QMP GenericError text), or null. */
  readonly error: SourceError | null;
}

export class SourceEngine {
  /** The engine's whole state. */
  private readonly ctx: SourceContext;

  constructor(config: SourceEngineConfig) {
    this.ctx = new SourceContext(config);
  }

  // --- inputs ------------------------------------------------------------------------------

  /** `migrate`: header, CONFIGURATION, return path, ADVISE, RAM setup; status none → setup → active. */
  start(nowNs: number): StepResult {
    return this.run({ kind: 'start', nowNs });
  }

  /** One iteration: at most about `budgetBytes` wire bytes of background pages (requests and the completion ignore it). */
  pump(nowNs: number, budgetBytes: number): StepResult {
    return this.run({ kind: 'pump', nowNs, budgetBytes });
  }

  /** `migrate-start-postcopy`: the switch happens at a later pump, when convergence allows it. */
  startPostcopy(nowNs: number): CommandResult {
    this.ctx.beginInput(nowNs);
    const error = stepSource(this.ctx, { kind: 'start-postcopy', nowNs });
    return { effects: this.ctx.effects, pagesScanned: this.ctx.pagesScanned, error };
  }

  /** Bytes received on the return path (any chunking). */
  onReturnPath(nowNs: number, bytes: Uint8Array): StepResult {
    return this.run({ kind: 'return-path', nowNs, bytes });
  }

  /** A free page hint: pages [startPage, startPage + pageCount) are free in the guest. */
  applyHint(nowNs: number, startPage: number, pageCount: number): StepResult {
    return this.run({ kind: 'hint', nowNs, startPage, pageCount });
  }

  /** `migrate_cancel`. */
  cancel(nowNs: number): StepResult {
    return this.run({ kind: 'cancel', nowNs });
  }

  /** The migration channel broke; `reason` becomes the error-desc of a failed migration. */
  channelError(nowNs: number, reason = 'Migration channel error'): StepResult {
    return this.run({ kind: 'channel-error', nowNs, reason });
  }

  /** Time passed: statistics of the bandwidth window. */
  tick(nowNs: number): StepResult {
    return this.run({ kind: 'tick', nowNs });
  }

  /** `migrate-set-parameters` during the migration (validated by the caller). */
  setParameters(nowNs: number, parameters: MigrationParameters): StepResult {
    return this.run({ kind: 'set-parameters', nowNs, parameters });
  }

  // --- queries (no effects) ------------------------------------------------------------------

  /** The QMP status. */
  get status(): MigrationStatus {
    return this.ctx.status;
  }

  /** Where the engine is (see source-context.ts). */
  get phase(): SourcePhase['kind'] {
    return this.ctx.phase.kind;
  }

  /** The error that failed the migration, if it failed. */
  get error(): SourceError | null {
    return this.ctx.error;
  }

  /** The migration bitmap (read it; only the engine writes it). */
  get migrationBitmap(): MigrationBitmap {
    return this.ctx.bitmap;
  }

  /** `track` only: true when `pageIndex` was hinted before the destination had it, and not answered yet. */
  isHintedNeverSent(pageIndex: number): boolean {
    return this.ctx.hintedNeverSent?.test(pageIndex) ?? false;
  }

  /**
   * What the shell should do next: pump now, wait for the rate limiter's window (a page
   * request arriving meanwhile makes it pump at once), or nothing.
   */
  readiness(nowNs: number): SourceReadiness {
    const ctx = this.ctx;
    switch (ctx.phase.kind) {
      case 'stopping':
        return { kind: 'pump' };
      case 'precopy':
      case 'postcopy': {
        if (!ctx.requests.isEmpty || !isOverBudget(ctx.limiter)) return { kind: 'pump' };
        const untilNs = (ctx.window.startMs + BUFFER_DELAY_MS) * NS_PER_MS;
        return untilNs <= nowNs ? { kind: 'pump' } : { kind: 'wait', untilNs };
      }
      default:
        return { kind: 'idle' };
    }
  }

  /** The source's `query-migrate` reply now. */
  queryMigrate(nowNs: number): MigrationInfoQmp {
    this.ctx.updateRemaining();
    return this.ctx.stats.toQueryMigrate(this.ctx.status, nowNs);
  }

  /** Counters beyond the QMP statistics (hints, requests, pings, discards). */
  counters(): SourceCounters {
    return { ...this.ctx.counters };
  }

  private run(input: SourceInput): StepResult {
    this.ctx.beginInput(input.nowNs);
    stepSource(this.ctx, input);
    return { effects: this.ctx.effects, pagesScanned: this.ctx.pagesScanned };
  }
}
