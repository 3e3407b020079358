/**
 * The state the destination engine's parts share while one input is handled: the phase
 * (dest-phase.ts), the effects collected so far, the input's time, and the few flags both the
 * stream side (incoming-stream.ts) and the fault side (dest-engine.ts) read. Every phase
 * change goes through `move`, which checks the status change against core/status.ts's
 * destination table and reports it as a `status` effect.
 *
 * One context per incoming migration; `begin` starts an input with a fresh effect list and
 * `finish` hands the list over. Every move to postcopy-paused is marked with QEMU's log line
 * ("Detected IO failure for postcopy. Migration paused.").
 */
import { assert } from '../../lib/assert.ts';
import type { Effect, StepResult } from '../engine-types.ts';
import { transition, type MigrationStatus } from '../status.ts';
import { POSTCOPY_PAUSED_TEXT } from './dest-errors.ts';
import type { DestError } from './dest-errors.ts';
import { IDLE_PHASE, statusOfPhase, stepPhase, type DestPhase, type PhaseEvent } from './dest-phase.ts';

export class DestContext {
  /** Where the migration is; changed only by `move`. */
  phase: DestPhase = IDLE_PHASE;
  /** Effects of the input being handled (a fresh array per input, owned by the caller after finish). */
  effects: Effect[] = [];
  /** `nowNs` of the input being handled. */
  nowNs = 0;
  /** The first error, once the load failed or paused. */
  error: DestError | null = null;
  /** OPEN_RETURN_PATH was received: PONG, page requests and SHUT may be sent. Set by the stream side. */
  returnPathOpen = false;
  /**
   * True from LISTEN of a RAM-advised stream until postcopy ends (QEMU's userfaultfd
   * registration): pages are placed exactly once and faults are trapped. Set by the stream side.
   */
  trapFaults = false;
  /** Times the migration moved to postcopy-paused (a migrate-recover is good for one of them). */
  pauses = 0;

  /** The MigrationStatus now. */
  get status(): MigrationStatus {
    return statusOfPhase(this.phase);
  }

  /** Starts an input at `nowNs`. */
  begin(nowNs: number): void {
    this.nowNs = nowNs;
    this.effects = [];
  }

  /** Ends an input: its effects. */
  finish(): StepResult {
    return { effects: this.effects, pagesScanned: 0 };
  }

  /** Moves the phase machine and reports a status change. */
  move(event: PhaseEvent): void {
    const from = statusOfPhase(this.phase);
    this.phase = stepPhase(this.phase, event);
    const to = statusOfPhase(this.phase);
    if (from === to) return;
    const checked = transition(from, to, 'destination');
    assert(checked.ok, checked.ok ? '' : checked.error.message);
    this.effects.push({ kind: 'status', from, to });
    if (to === 'postcopy-paused') {
      this.pauses++;
      this.mark('postcopy-paused', POSTCOPY_PAUSED_TEXT);
    }
  }

  /**
   * A load error: fails before RUN, pauses after (dest-phase.ts); after the end it is only
   * marked. `error` keeps the error that caused the latest failure or pause.
   */
  loadError(error: DestError): void {
    const kind = this.phase.kind;
    if (kind === 'completed') return this.mark('error-after-end', `${error.code}: ${error.message}`);
    if (this.error === null || (kind !== 'paused' && kind !== 'failed')) this.error = error;
    this.mark('load-error', `${error.code}: ${error.message}`);
    this.move({ kind: 'error', error });
  }

  /** Queues bytes for the return path. */
  send(data: Uint8Array): void {
    this.effects.push({ kind: 'send', channel: 'return-path', data });
  }

  /** A coverage mark for a rare branch. */
  mark(name: string, detail?: string): void {
    this.effects.push(detail === undefined ? { kind: 'mark', name } : { kind: 'mark', name, detail });
  }
}
