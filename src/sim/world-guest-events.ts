/**
 * Two things the world does to the machine from the outside, kept apart from its event loop:
 *
 * - `probePostcopy`: the destination enables capability postcopy-ram before `migrate`
 *   (migrate-set-capabilities while inmigrate, facts §3.3). QEMU's host-support probe runs the
 *   postcopy notifiers with reason PROBE; a veto (the `refuse` policy's balloon) fails the
 *   command with the core's own text, "Postcopy is not supported", after the notifier's line on
 *   stderr ("virtio-balloon: 'free-page-hint' does not support postcopy").
 * - `pressureWorkload`: the scenario's memory-hungry phase, an alloc-then-free workload that
 *   allocates single pages (reclaiming through the hint shrinker when short) and frees them
 *   all after the rule's hold (never, without one).
 */
import { applyCapabilities, DEFAULT_CAPABILITY_CONTEXT, defaultCapabilities } from '../core/capabilities.ts';
import type { Guest } from '../guest/guest.ts';
import { createWorkload, type Workload } from '../guest/workloads/index.ts';
import { Prng } from '../lib/prng.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { PressureRule } from './scenario/scenario.ts';

/**
 * The destination's refusal of postcopy-ram: the QMP error of migrate-set-capabilities and the
 * lines QEMU reports on stderr before it (the postcopy notifier's veto).
 */
export interface Refusal {
  readonly errorClass: 'GenericError';
  readonly desc: string;
  readonly reports: readonly string[];
}

/** Enables postcopy-ram on the destination; `veto` is the PROBE notifiers' error, if any. */
export function probePostcopy(veto: string | null): Refusal | null {
  const applied = applyCapabilities(defaultCapabilities(), [{ capability: 'postcopy-ram', state: true }], {
    ...DEFAULT_CAPABILITY_CONTEXT,
    incoming: true,
    postcopySupportedByHost: veto === null,
  });
  if (applied.ok) return null;
  return { errorClass: 'GenericError', desc: applied.error.desc, reports: veto === null ? [] : [veto] };
}

/** The text a run reports for a refusal: the stderr lines, then the QMP error, joined by '; '. */
export function refusalText(refusal: Refusal): string {
  return [...refusal.reports, refusal.desc].join('; ');
}

/** The workload of a pressure phase over `guest`'s allocator. */
export function pressureWorkload(rule: PressureRule, guest: Guest): Workload {
  return createWorkload(
    {
      kind: 'alloc-then-free',
      rateBytesPerS: rule.rateBytesPerS,
      fillFraction: rule.sizeBytes / (guest.pageCount * TARGET_PAGE_SIZE),
      order: 0,
      holdNs: rule.holdNs ?? Number.POSITIVE_INFINITY,
    },
    // alloc-then-free makes no random choices; the PRNG is required by the interface only.
    { pageCount: guest.pageCount, prng: new Prng(0), allocator: guest.allocator },
  );
}
