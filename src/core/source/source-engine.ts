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
 * Postcopy pause and recovery (facts §3.11; recovery.ts), as a shell drives it:
 *
 * ```ts
 * apply(engine.channelError(now));        // or engine.migratePause(now): status → postcopy-paused;
 *                                         // the shell drops both connections (bytes in flight are lost)
 * const r = engine.resume(now);           // QMP migrate {resume: true}: refused unless paused
 * if (r.error === null) apply(r);         // postcopy-recover; RECV_BITMAP per block, sent on the
 *                                         // NEW main connection (no header, no CONFIGURATION)
 * apply(engine.onReturnPath(now, bytes)); // the new return path: RECV_BITMAP replies → POSTCOPY_RESUME,
 *                                         // RESUME_ACK → postcopy-active; pumps go on as before
 * ```
 *
 * The completion of a postcopy migration (the END section) spans pumps, each serving queued
 * page requests first (postcopy.ts), so `readiness` says `pump` until EOF is written.
 *
 * What it deliberately doesn't do: multifd, xbzrle, compression, pause-before-switchover,
 * x-colo (refused at construction).
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
import { iterationGoesOn } from './iterate.ts';
import { stepSource } from './source-step.ts';
import type { SourceCounters, SourceEngineConfig, SourceError, SourceInput, SourceReadiness } from './source-types.ts';

/** The result of a QMP command (`startPostcopy`, `migratePause`, `resume`): effects and QEMU's refusal, if any. */
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

  /**
   * Postcopy: answers the queued page requests now, with no background page (postcopy.ts).
   * A shell calls it as soon as return-path bytes were handled, so a request never waits for
   * its next pump (a rate limiter's window, a full main channel, a pump timer).
   */
  serveRequests(nowNs: number): StepResult {
    return this.run({ kind: 'serve-requests', nowNs });
  }

  /** `migrate-start-postcopy`: the switch happens at a later pump, when convergence allows it. */
  startPostcopy(nowNs: number): CommandResult {
    return this.command({ kind: 'start-postcopy', nowNs });
  }

  /** Bytes received on the return path (any chunking). */
  onReturnPath(nowNs: number, bytes: Uint8Array): StepResult {
    return this.run({ kind: 'return-path', nowNs, bytes });
  }

  /** A free page hint: pages [startPage, startPage + pageCount) are free in the guest. */
  applyHint(nowNs: number, startPage: number, pageCount: number): StepResult {
    return this.run({ kind: 'hint', nowNs, startPage, pageCount });
  }

  /**
   * QMP `migrate-pause`: postcopy-active → postcopy-paused, as if the channel broke (the shell
   * then shuts the connections down, as QEMU does). Refused in any other status with QEMU's text.
   */
  migratePause(nowNs: number): CommandResult {
    return this.command({ kind: 'migrate-pause', nowNs });
  }

  /**
   * QMP `migrate` with `resume: true`: postcopy-paused → postcopy-recover. The effects are the
   * first bytes of the new main connection (RECV_BITMAP per block); the return-path bytes that
   * follow must come from the new connection's return path. Refused unless postcopy-paused
   * (`Cannot resume if there is no paused migration`) or with capability release-ram.
   */
  resume(nowNs: number): CommandResult {
    return this.command({ kind: 'resume', nowNs });
  }

  /** `migrate_cancel`. */
  cancel(nowNs: number): StepResult {
    return this.run({ kind: 'cancel', nowNs });
  }

  /** The migration channel broke; `reason` becomes the error-desc of a failed migration. */
  channelError(nowNs: number, reason = 'Migration channel error'): StepResult {
    return this.run({ kind: 'channel-error', nowNs, reason });
  }

  /** Everything emitted so far is written to the connection (ends a completion under option awaitWritten). */
  written(nowNs: number): StepResult {
    return this.run({ kind: 'written', nowNs });
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

  /**
   * True while a precopy iteration that spans pumps runs (option iterationNsMin): QEMU's
   * migration thread is inside ram_save_iterate and holds bitmap_mutex.
   */
  get iterationOpen(): boolean {
    const phase = this.ctx.phase;
    return phase.kind === 'precopy' && phase.iteration !== null;
  }

  /** True when a pump now, with `budgetBytes`, would go on with the running iteration (no check). */
  iterationGoesOn(nowNs: number, budgetBytes: number): boolean {
    return iterationGoesOn(this.ctx, nowNs, budgetBytes);
  }

  /** The error that failed the migration, if it failed. */
  get error(): SourceError | null {
    return this.ctx.error;
  }

  /** The migration bitmap (read it; only the engine writes it). */
  get migrationBitmap(): MigrationBitmap {
    return this.ctx.bitmap;
  }

  /** Postcopy recoveries begun (`resume` accepted). */
  get recoveries(): number {
    return this.ctx.recoveries;
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
      case 'final-pass':
      case 'completing':
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
    return { ...this.ctx.counters, dirtySyncs: this.ctx.stats.dirtySyncCount };
  }

  private command(input: SourceInput): CommandResult {
    this.ctx.beginInput(input.nowNs);
    const error = stepSource(this.ctx, input);
    return { effects: this.ctx.effects, pagesScanned: this.ctx.pagesScanned, error };
  }

  private run(input: SourceInput): StepResult {
    this.ctx.beginInput(input.nowNs);
    stepSource(this.ctx, input);
    return { effects: this.ctx.effects, pagesScanned: this.ctx.pagesScanned };
  }
}
