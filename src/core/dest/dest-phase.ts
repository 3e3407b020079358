/**
 * The destination's phase machine: which part of an incoming migration the engine is in, as a
 * tagged union with data only where it is valid, and the one pure step function that moves
 * between phases. The MigrationStatus each phase shows (QEMU's incoming `mis->state`, facts
 * §4.7) follows from the phase, so every status change the engine reports is a phase change
 * checked against core/status.ts's destination table.
 *
 * ```mermaid
 * stateDiagram-v2
 *   idle --> precopy: stream-start (none → active)
 *   precopy --> precopy: advise (16-byte POSTCOPY_ADVISE accepted)
 *   precopy --> postcopy: listen (active → postcopy-active)
 *   postcopy --> postcopy: run (POSTCOPY_RUN; guest may start)
 *   precopy --> completed: eof
 *   postcopy --> completed: eof
 *   precopy --> failed: error
 *   postcopy --> failed: error before RUN
 *   postcopy --> paused: error after RUN (postcopy-paused)
 *   paused --> recover: recover (migrate-recover, then the source's new connection)
 *   recover --> postcopy: resume (POSTCOPY_RESUME; running)
 *   recover --> paused: error (the new connection failed before POSTCOPY_RESUME)
 * ```
 *
 * An error in `paused`, `completed` or `failed` leaves the phase as it is (bytes after the end,
 * a second error after the first); any other event there is a programmer error, as is an
 * event the stream decoder's own command-order checks would have refused (RUN before LISTEN).
 *
 * What it deliberately doesn't do: COLO.
 */
import { assertNever, unreachable } from '../../lib/assert.ts';
import type { MigrationStatus } from '../status.ts';
import type { DestError } from './dest-errors.ts';

export type DestPhase =
  /** Nothing received yet (status none). Left by the first bytes. */
  | { readonly kind: 'idle' }
  /**
   * Loading a precopy stream (status active), including the postcopy setup commands before
   * LISTEN. `ramAdvised`: a 16-byte POSTCOPY_ADVISE was accepted, so every page started out
   * missing and LISTEN will trap faults.
   */
  | { readonly kind: 'precopy'; readonly ramAdvised: boolean }
  /**
   * After POSTCOPY_LISTEN (status postcopy-active): pages are placed exactly once and faults
   * are trapped. `running`: POSTCOPY_RUN was processed (QEMU's PostcopyState RUNNING); an error
   * then pauses instead of failing.
   */
  | { readonly kind: 'postcopy'; readonly running: boolean }
  /** An error after RUN (status postcopy-paused): faults wait; nothing is requested. */
  | { readonly kind: 'paused'; readonly error: DestError }
  /**
   * Postcopy recovery on a new connection (status postcopy-recover, facts §3.11): RECV_BITMAP
   * commands are answered; faults wait without requests until POSTCOPY_RESUME.
   */
  | { readonly kind: 'recover' }
  /** The stream's EOF was loaded (status completed). */
  | { readonly kind: 'completed' }
  /** A load error before RUN (status failed); QEMU would now exit 1. */
  | { readonly kind: 'failed'; readonly error: DestError };

/** What moves the phase machine. */
export type PhaseEvent =
  | { readonly kind: 'stream-start' }
  | { readonly kind: 'advise' }
  | { readonly kind: 'listen' }
  | { readonly kind: 'run' }
  | { readonly kind: 'eof' }
  | { readonly kind: 'error'; readonly error: DestError }
  /** The source connected again after migrate-recover. */
  | { readonly kind: 'recover' }
  /** POSTCOPY_RESUME was received in postcopy-recover. */
  | { readonly kind: 'resume' };

export const IDLE_PHASE: DestPhase = Object.freeze({ kind: 'idle' });

/** The MigrationStatus a destination in `phase` reports. */
export function statusOfPhase(phase: DestPhase): MigrationStatus {
  switch (phase.kind) {
    case 'idle':
      return 'none';
    case 'precopy':
      return 'active';
    case 'postcopy':
      return 'postcopy-active';
    case 'paused':
      return 'postcopy-paused';
    case 'recover':
      return 'postcopy-recover';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'failed';
    default:
      return assertNever(phase);
  }
}

function illegal(phase: DestPhase, event: PhaseEvent): never {
  return unreachable(`destination phase ${phase.kind} does not accept event ${event.kind}`);
}

/** The one step function of the phase machine (see the diagram above). */
export function stepPhase(phase: DestPhase, event: PhaseEvent): DestPhase {
  switch (phase.kind) {
    case 'idle':
      if (event.kind === 'stream-start') return { kind: 'precopy', ramAdvised: false };
      return illegal(phase, event);
    case 'precopy':
      return stepPrecopy(phase, event);
    case 'postcopy':
      return stepPostcopy(phase, event);
    case 'paused':
      if (event.kind === 'recover') return { kind: 'recover' };
      if (event.kind === 'error') return phase;
      return illegal(phase, event);
    case 'recover':
      if (event.kind === 'resume') return { kind: 'postcopy', running: true };
      if (event.kind === 'error') return { kind: 'paused', error: event.error };
      return illegal(phase, event);
    case 'completed':
    case 'failed':
      if (event.kind === 'error') return phase;
      return illegal(phase, event);
    default:
      return assertNever(phase);
  }
}

function stepPrecopy(phase: DestPhase & { kind: 'precopy' }, event: PhaseEvent): DestPhase {
  switch (event.kind) {
    case 'advise':
      return { kind: 'precopy', ramAdvised: true };
    case 'listen':
      return { kind: 'postcopy', running: false };
    case 'eof':
      return { kind: 'completed' };
    case 'error':
      return { kind: 'failed', error: event.error };
    case 'stream-start':
    case 'run':
    case 'recover':
    case 'resume':
      return illegal(phase, event);
    default:
      return assertNever(event);
  }
}

function stepPostcopy(phase: DestPhase & { kind: 'postcopy' }, event: PhaseEvent): DestPhase {
  switch (event.kind) {
    case 'run':
      return { kind: 'postcopy', running: true };
    case 'eof':
      return { kind: 'completed' };
    case 'error':
      // QEMU pauses only once the guest may run (PostcopyState RUNNING, facts §3.5, §3.11).
      return phase.running ? { kind: 'paused', error: event.error } : { kind: 'failed', error: event.error };
    case 'stream-start':
    case 'advise':
    case 'listen':
    case 'recover':
    case 'resume':
      return illegal(phase, event);
    default:
      return assertNever(event);
  }
}
