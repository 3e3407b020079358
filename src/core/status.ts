/**
 * MigrationStatus: QEMU 7.2's migration states (the QMP strings, in enum order) and the legal
 * moves between them, kept as data. The source and the destination have different tables: the
 * destination never passes through `setup` (its state field goes none → active even though a
 * `MIGRATION {"status":"setup"}` event is emitted) and cannot be cancelled.
 *
 * Why data: the state machines built on this module call `transition()` for every move, and the
 * simulator's invariant checker (DESIGN §4.6) replays recorded sequences through
 * `checkStatusSequence()`. Both read the same tables, so they cannot disagree.
 *
 * What it deliberately doesn't do: decide *when* to move (that is the source and destination
 * machines' job), emit events, or model QEMU 9.1's `postcopy-recover-setup`.
 */

/** The QMP strings of MigrationStatus, in QEMU 7.2's enum order. */
export const MIGRATION_STATUSES = [
  'none',
  'setup',
  'cancelling',
  'cancelled',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'completed',
  'failed',
  'colo',
  'pre-switchover',
  'device',
  'wait-unplug',
] as const;

export type MigrationStatus = (typeof MIGRATION_STATUSES)[number];

/** Which end of a migration a status belongs to; the two ends have different tables. */
export type MigrationSide = 'source' | 'destination';

/** One legal move, with the QEMU event that causes it (for messages and documentation). */
export interface StatusTransition {
  /** The status before the move. */
  readonly from: MigrationStatus;
  /** The status after the move. */
  readonly to: MigrationStatus;
  /** What makes QEMU take this move. */
  readonly trigger: string;
}

/**
 * Statuses that count as "a migration is running" (QEMU's migration_is_running): they block a
 * new `migrate` and capability changes (`There's a migration process in progress`).
 */
const RUNNING_STATUSES: ReadonlySet<MigrationStatus> = new Set<MigrationStatus>([
  'setup',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'pre-switchover',
  'device',
  'wait-unplug',
  'cancelling',
]);

function moves(from: readonly MigrationStatus[], to: MigrationStatus, trigger: string): StatusTransition[] {
  return from.map((f) => ({ from: f, to, trigger }));
}

/** The source's legal transitions in QEMU 7.2 (facts §4.7), one row per (from, to) pair. */
export const SOURCE_TRANSITIONS: readonly StatusTransition[] = Object.freeze([
  ...moves(['none', 'completed', 'failed', 'cancelled'], 'setup', '`migrate` accepted (state reset)'),
  ...moves(['setup'], 'active', 'setup sections written'),
  ...moves(['setup'], 'wait-unplug', 'a failover device unplug is pending after setup'),
  ...moves(['wait-unplug'], 'active', 'the failover device unplug finished'),
  ...moves(['active'], 'completed', 'precopy completion succeeded (after SHUT if there is a return path)'),
  ...moves(['active'], 'pre-switchover', 'capability pause-before-switchover at completion or at the postcopy switch'),
  ...moves(['pre-switchover'], 'device', '`migrate-continue {state: "pre-switchover"}` during precopy completion'),
  ...moves(['device'], 'completed', 'device state sent after pre-switchover'),
  ...moves(['active', 'pre-switchover'], 'postcopy-active', 'postcopy switch'),
  ...moves(['postcopy-active'], 'completed', 'postcopy finished'),
  ...moves(['postcopy-active', 'postcopy-recover'], 'postcopy-paused', 'I/O error or `migrate-pause` (from recover: the resume handshake failed)'),
  ...moves(['postcopy-paused'], 'postcopy-recover', '`migrate` with `resume: true`'),
  ...moves(['postcopy-recover'], 'postcopy-active', 'RESUME_ACK received'),
  ...moves(
    ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'pre-switchover', 'device', 'wait-unplug'],
    'cancelling',
    '`migrate_cancel` while running',
  ),
  ...moves(['cancelling'], 'cancelled', 'cleanup after `migrate_cancel`'),
  ...moves(
    ['setup', 'wait-unplug', 'active', 'pre-switchover', 'device', 'postcopy-active'],
    'failed',
    'connection, setup or stream error (an I/O error in postcopy-active pauses instead)',
  ),
  ...moves(['active'], 'colo', 'capability x-colo'),
  // Not in the facts table: QEMU's COLO failover ends a `colo` migration as completed. Without
  // it `colo` would be a dead end, which no QEMU run shows.
  ...moves(['colo'], 'completed', 'COLO failover'),
]);

/** The destination's legal transitions in QEMU 7.2 (facts §4.7). */
export const DESTINATION_TRANSITIONS: readonly StatusTransition[] = Object.freeze([
  ...moves(['none'], 'active', 'the incoming stream starts'),
  ...moves(['active'], 'completed', 'precopy load finished'),
  ...moves(['active'], 'postcopy-active', 'the listen thread starts (POSTCOPY_LISTEN)'),
  ...moves(['postcopy-active'], 'completed', 'EOF on the postcopy stream'),
  ...moves(['active'], 'failed', 'load error (QEMU then exits 1)'),
  // Not in the facts table: QEMU's listen thread fails a postcopy load on a non-I/O error.
  ...moves(['postcopy-active'], 'failed', 'postcopy load error that is not an I/O error'),
  ...moves(['postcopy-active'], 'postcopy-paused', 'I/O error or `migrate-pause`'),
  ...moves(['postcopy-paused'], 'postcopy-recover', '`migrate-recover` and the source connected'),
  ...moves(['postcopy-recover'], 'postcopy-active', 'POSTCOPY_RESUME received'),
  // Not in the facts table (§3.11 has it for the source only): QEMU's postcopy_pause_incoming
  // pauses from either postcopy-active or postcopy-recover ("Current state can be either
  // ACTIVE or RECOVER"), so a recovery connection that fails before POSTCOPY_RESUME pauses again.
  ...moves(['postcopy-recover'], 'postcopy-paused', 'the recovery connection failed before POSTCOPY_RESUME'),
]);

function indexTable(table: readonly StatusTransition[]): ReadonlyMap<MigrationStatus, ReadonlySet<MigrationStatus>> {
  const map = new Map<MigrationStatus, Set<MigrationStatus>>();
  for (const t of table) {
    let targets = map.get(t.from);
    if (targets === undefined) map.set(t.from, (targets = new Set()));
    targets.add(t.to);
  }
  return map;
}

const SOURCE_INDEX = indexTable(SOURCE_TRANSITIONS);
const DESTINATION_INDEX = indexTable(DESTINATION_TRANSITIONS);

/** The transition table of one side. */
export function transitionsOf(side: MigrationSide): readonly StatusTransition[] {
  return side === 'source' ? SOURCE_TRANSITIONS : DESTINATION_TRANSITIONS;
}

/** Stable codes of status errors. */
export type MigrationStatusErrorCode = 'MIG_ERR_ILLEGAL_TRANSITION' | 'MIG_ERR_UNKNOWN_STATUS';

/** A refused status move, or a string that is not a MigrationStatus. */
export class MigrationStatusError extends Error {
  override name = 'MigrationStatusError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: MigrationStatusErrorCode,
    /** The status moved from (or the unknown string). */
    readonly from: string,
    /** The status moved to (or the unknown string). */
    readonly to: string,
    /** The side whose table refused the move. */
    readonly side: MigrationSide,
    message: string,
  ) {
    super(message);
  }
}

/** The outcome of `transition`: the new status, or the reason it is illegal. */
export type TransitionResult =
  | { readonly ok: true; readonly status: MigrationStatus }
  | { readonly ok: false; readonly error: MigrationStatusError };

/** True when `value` is one of the 14 QMP MigrationStatus strings. */
export function isMigrationStatus(value: unknown): value is MigrationStatus {
  return typeof value === 'string' && (MIGRATION_STATUSES as readonly string[]).includes(value);
}

/**
 * True when `from → to` is a legal move on `side`. Criteria: the pair is a row of that side's
 * table. Staying in the same status is not a move and is never legal here.
 */
export function isLegalTransition(from: MigrationStatus, to: MigrationStatus, side: MigrationSide): boolean {
  const index = side === 'source' ? SOURCE_INDEX : DESTINATION_INDEX;
  return index.get(from)?.has(to) ?? false;
}

/**
 * Checks one move (on the source unless `side` says otherwise). Returns the new status, or a
 * typed error naming both ends and the side.
 */
export function transition(from: MigrationStatus, to: MigrationStatus, side: MigrationSide = 'source'): TransitionResult {
  if (isLegalTransition(from, to, side)) return { ok: true, status: to };
  return {
    ok: false,
    error: new MigrationStatusError(
      'MIG_ERR_ILLEGAL_TRANSITION',
      from,
      to,
      side,
      `illegal ${side} migration status transition: ${from} -> ${to}`,
    ),
  };
}

/**
 * QEMU's migration_is_running. Criteria: setup, active, postcopy-active, postcopy-paused,
 * postcopy-recover, pre-switchover, device, wait-unplug or cancelling. While it holds, a new
 * `migrate` and capability changes are refused.
 */
export function isRunningStatus(status: MigrationStatus): boolean {
  return RUNNING_STATUSES.has(status);
}

/**
 * QEMU's migration_in_postcopy. Criteria: postcopy-active, postcopy-paused or postcopy-recover
 * (the destination may be running the guest, so the source must never fall back to precopy).
 */
export function isPostcopyStatus(status: MigrationStatus): boolean {
  return status === 'postcopy-active' || status === 'postcopy-paused' || status === 'postcopy-recover';
}

/**
 * QEMU's migration_is_active. Criteria: active or postcopy-active (the migration thread is
 * moving pages).
 */
export function isActiveStatus(status: MigrationStatus): boolean {
  return status === 'active' || status === 'postcopy-active';
}

/**
 * The end of a migration. Criteria: completed, failed or cancelled (from these the source may
 * start a new migration; the destination stays).
 */
export function isFinalStatus(status: MigrationStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** The verdict of `checkStatusSequence`. */
export interface StatusSequenceVerdict {
  /** True when every move of the sequence is legal. */
  readonly ok: boolean;
  /** One sentence: what was checked, or the first bad step. */
  readonly detail: string;
  /** Index in the sequence of the first bad element, when there is one. */
  readonly index?: number;
}

/** Options of `checkStatusSequence`. */
export interface StatusSequenceOptions {
  /**
   * When true (the default), an element equal to the one before it is not a move and is
   * skipped, so sampled sequences (polled query-migrate) can be checked. When false a repeat is
   * reported, which suits sequences recorded from transitions.
   */
  readonly allowRepeats?: boolean;
}

/**
 * The "status moves only along legal transitions" invariant (DESIGN §4.6). Checks every
 * consecutive pair of `sequence` against `side`'s table; the first element may be any status.
 * Unknown strings are reported. An empty sequence is fine.
 */
export function checkStatusSequence(
  sequence: readonly string[],
  side: MigrationSide,
  options: StatusSequenceOptions = {},
): StatusSequenceVerdict {
  const allowRepeats = options.allowRepeats ?? true;
  let moveCount = 0;
  for (let i = 0; i < sequence.length; i++) {
    const current = sequence[i];
    if (!isMigrationStatus(current)) {
      return { ok: false, index: i, detail: `step ${i}: '${current}' is not a MigrationStatus` };
    }
    if (i === 0) continue;
    const previous = sequence[i - 1] as MigrationStatus;
    if (previous === current) {
      if (allowRepeats) continue;
      return { ok: false, index: i, detail: `step ${i}: ${current} repeated (not a transition)` };
    }
    if (!isLegalTransition(previous, current, side)) {
      return { ok: false, index: i, detail: `step ${i}: ${previous} -> ${current} is not a legal ${side} transition` };
    }
    moveCount++;
  }
  return { ok: true, detail: `${moveCount} ${side} transitions over ${sequence.length} statuses, all legal` };
}
