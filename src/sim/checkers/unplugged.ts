/**
 * Invariant 5 (DESIGN §4): the guest never reads unplugged virtio-mem memory, and that memory
 * is never sent. The world counts, per unplugged page: reads of the source's page store by
 * the source engine (reading precedes sending: QEMU never reads unplugged memory), pages the
 * destination received from the stream, and guest accesses through the targets it controls.
 */
import { listPages, notApplicable, type InvariantVerdict } from './verdict.ts';

export const UNPLUGGED_MEMORY = 'unplugged-memory';

/** Accesses to unplugged pages of one kind. */
export interface UnpluggedAccesses {
  /** How many accesses. */
  readonly count: number;
  /** The first pages accessed, ascending by first access. */
  readonly pages: readonly number[];
}

/** What the checker reads. */
export interface UnpluggedInput {
  /** Unplugged pages during the migration; 0 without virtio-mem. */
  readonly unpluggedPages: number;
  /** Reads of unplugged pages by the source engine. */
  readonly sourceReads: UnpluggedAccesses;
  /** Unplugged pages the destination received from the stream. */
  readonly received: UnpluggedAccesses;
  /** Guest reads or writes of unplugged pages. */
  readonly guestAccesses: UnpluggedAccesses;
}

/** Checks invariant 5; see the module comment. */
export function checkUnplugged(input: UnpluggedInput): InvariantVerdict {
  if (input.unpluggedPages === 0) return notApplicable(UNPLUGGED_MEMORY, 'no unplugged memory');
  const problems: string[] = [];
  const add = (what: string, a: UnpluggedAccesses): void => {
    if (a.count > 0) problems.push(`${a.count} ${what} (pages ${listPages(a.pages, a.count)})`);
  };
  add('source reads of unplugged pages', input.sourceReads);
  add('unplugged pages sent to the destination', input.received);
  add('guest accesses to unplugged pages', input.guestAccesses);
  if (problems.length > 0) return { name: UNPLUGGED_MEMORY, ok: false, detail: problems.join('; ') };
  return { name: UNPLUGGED_MEMORY, ok: true, detail: `${input.unpluggedPages} unplugged pages never read, sent or touched` };
}
