/**
 * Invariant 6 (DESIGN §4): status moves only along QEMU's legal MigrationStatus transitions
 * (core/status.ts, the same tables the engines use), on the source and on the destination;
 * and every bounded queue stays within its bound (the high-water mark the world observed).
 */
import { checkStatusSequence } from '../../core/status.ts';
import type { InvariantVerdict } from './verdict.ts';

export const STATUS_AND_QUEUES = 'status-and-queues';

/** One status change as an engine reported it. */
export interface StatusChange {
  readonly from: string;
  readonly to: string;
}

/** One bounded queue's high-water mark. */
export interface QueueMark {
  /** What the queue is. */
  readonly name: string;
  /** The most entries it held at once. */
  readonly highWater: number;
  /** Its bound. */
  readonly bound: number;
}

/** What the checker reads. */
export interface StatusAndQueuesInput {
  /** The source's status changes, in order. */
  readonly source: readonly StatusChange[];
  /** The destination's status changes, in order. */
  readonly destination: readonly StatusChange[];
  readonly queues: readonly QueueMark[];
}

/** The sequence of statuses a list of changes walks; null when a change does not start where the previous ended. */
function sequenceOf(changes: readonly StatusChange[]): string[] | { broken: number } {
  if (changes.length === 0) return [];
  const sequence = [changes[0].from];
  for (let i = 0; i < changes.length; i++) {
    if (changes[i].from !== sequence[sequence.length - 1]) return { broken: i };
    sequence.push(changes[i].to);
  }
  return sequence;
}

/** Checks invariant 6; see the module comment. */
export function checkStatusAndQueues(input: StatusAndQueuesInput): InvariantVerdict {
  const problems: string[] = [];
  const walks: string[] = [];
  for (const side of ['source', 'destination'] as const) {
    const sequence = sequenceOf(input[side]);
    if (!Array.isArray(sequence)) {
      const c = input[side][sequence.broken];
      problems.push(`${side}: change ${sequence.broken} starts at ${c.from}, not where the previous one ended`);
      continue;
    }
    const verdict = checkStatusSequence(sequence, side, { allowRepeats: false });
    if (!verdict.ok) problems.push(`${side}: ${verdict.detail}`);
    walks.push(`${side} ${sequence.join(' > ') || '(none)'}`);
  }
  for (const q of input.queues) {
    if (q.highWater > q.bound) problems.push(`queue ${q.name} reached ${q.highWater}, bound ${q.bound}`);
  }
  if (problems.length > 0) return { name: STATUS_AND_QUEUES, ok: false, detail: problems.join('; ') };
  const marks = input.queues.map((q) => `${q.name} ${q.highWater}/${q.bound}`).join(', ');
  return { name: STATUS_AND_QUEUES, ok: true, detail: `${walks.join('; ')}; queues ${marks || '(none)'}` };
}
