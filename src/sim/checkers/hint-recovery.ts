/**
 * Invariant 4 (DESIGN §4): after migration the guest gets its hinted blocks back: DONE is
 * delivered to the (destination) guest's balloon driver, and the memory the driver held for
 * hints is returned, so guest free memory recovers. `legacy` is expected to break this in
 * postcopy (no final sync, so no DONE), and the verdict says so. A run in which the guest
 * hinted nothing passes trivially.
 */
import { formatBytes } from '../../lib/units.ts';
import type { InvariantVerdict } from './verdict.ts';

export const HINT_RECOVERY = 'hint-recovery';

/** What the checker reads. */
export interface HintRecoveryInput {
  /** Pages the source cleared because of hints during the migration. */
  readonly hintedPages: number;
  /** Hint blocks the guest driver reported during the migration. */
  readonly hintRangeCount: number;
  /** Whether the guest driver that runs at the end saw DONE after the migration. */
  readonly doneDelivered: boolean;
  /** Bytes the guest's balloon driver still holds for hints at the end of the run. */
  readonly heldAfterMigrationBytes: number;
  /** Guest free memory just before `migrate`, bytes. */
  readonly freeBytesBefore: number;
  /** Guest free memory at the end of the run, bytes. */
  readonly freeBytesAfter: number;
  /** The free-page-hint × postcopy policy, for the verdict's wording. */
  readonly policy: string | null;
  /** Whether the run switched to postcopy. */
  readonly postcopy: boolean;
}

/** Checks invariant 4; see the module comment. */
export function checkHintRecovery(input: HintRecoveryInput): InvariantVerdict {
  const free = `free memory ${formatBytes(input.freeBytesBefore)} before, ${formatBytes(input.freeBytesAfter)} after`;
  if (input.hintRangeCount === 0 && input.heldAfterMigrationBytes === 0) {
    return { name: HINT_RECOVERY, ok: true, detail: `no hints given; ${free}` };
  }
  const problems: string[] = [];
  if (!input.doneDelivered) problems.push('DONE never reached the guest driver');
  if (input.heldAfterMigrationBytes > 0) problems.push(`the guest still holds ${formatBytes(input.heldAfterMigrationBytes)} of hinted memory`);
  const head = `${input.hintRangeCount} hint blocks, ${input.hintedPages} pages skipped`;
  if (problems.length === 0) return { name: HINT_RECOVERY, ok: true, detail: `${head}; DONE delivered, nothing held; ${free}` };
  const expected = input.policy === 'legacy' && input.postcopy ? ' (expected: legacy has no final sync in postcopy, so no DONE)' : '';
  return { name: HINT_RECOVERY, ok: false, detail: `${head}; ${problems.join('; ')}; ${free}${expected}` };
}
