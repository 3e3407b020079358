/**
 * How free page hinting and postcopy live together: a balloon property (DESIGN §2). The
 * device implements the device-side half of each policy; the engine-side half (what the
 * source does with hinted pages when the destination asks for them) lives in the migration
 * core and is only described here.
 *
 * | policy                | device side (this module)                                   | engine side (elsewhere)                |
 * |-----------------------|-------------------------------------------------------------|----------------------------------------|
 * | refuse (default)      | no hinting while postcopy-ram is on; the destination's      | —                                      |
 * |                       | postcopy notifier vetoes with the seed patch's error        |                                        |
 * | overrule (QEMU 6.2+)  | no hinting while postcopy-ram is on                         | —                                      |
 * | legacy (QEMU < 6.2)   | hinting runs even with postcopy-ram on                      | none: reproduces both 2021 bugs        |
 * | ignore-after-switch   | hinting runs with postcopy-ram on                           | hints dropped once postcopy starts     |
 * | track (livemig's fix) | hinting runs with postcopy-ram on; preSave sets DONE so it  | hinted-never-sent pages are tracked    |
 * |                       | travels; postLoad raises a config interrupt for DONE        | and answered once on request           |
 */

export const FREE_PAGE_HINT_POSTCOPY_POLICIES = ['refuse', 'overrule', 'legacy', 'ignore-after-switch', 'track'] as const;
export type FreePageHintPostcopyPolicy = (typeof FREE_PAGE_HINT_POSTCOPY_POLICIES)[number];
export const DEFAULT_FREE_PAGE_HINT_POSTCOPY_POLICY: FreePageHintPostcopyPolicy = 'refuse';

/** The error text of the seed patch's destination postcopy notifier (v1, never merged). */
export const FREE_PAGE_HINT_POSTCOPY_REFUSAL = "virtio-balloon: 'free-page-hint' does not support postcopy";

export function isFreePageHintPostcopyPolicy(value: string): value is FreePageHintPostcopyPolicy {
  return (FREE_PAGE_HINT_POSTCOPY_POLICIES as readonly string[]).includes(value);
}

/**
 * Whether the source's precopy notifier drives hinting when capability postcopy-ram is on.
 * refuse and overrule follow QEMU 6.2+ (no hinting); the others keep hinting and rely on the
 * engine (or, for legacy, on nothing) to cope.
 */
export function hintsWithPostcopyRam(policy: FreePageHintPostcopyPolicy): boolean {
  switch (policy) {
    case 'refuse':
    case 'overrule':
      return false;
    case 'legacy':
    case 'ignore-after-switch':
    case 'track':
      return true;
  }
}

/** Whether the destination's postcopy notifier vetoes postcopy (only with free-page-hint on). */
export function vetoesPostcopy(policy: FreePageHintPostcopyPolicy): boolean {
  return policy === 'refuse';
}

/** Whether the device itself delivers DONE across migration (pre-save DONE, post-load interrupt). */
export function deliversDoneAcrossMigration(policy: FreePageHintPostcopyPolicy): boolean {
  return policy === 'track';
}
