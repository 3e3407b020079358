/**
 * The destination's checks of POSTCOPY_ADVISE (facts §3.3), as pure predicates in QEMU 7.2's
 * order (loadvm_postcopy_handle_advise). The engine runs the host-support probe (the PROBE
 * notifier) between the two groups, as QEMU does:
 *
 * 1. length against the local `postcopy-ram` capability (0 bytes with it on, 16 with it off);
 * 2. [probe]
 * 3. the RAM page-size summary (bitwise OR of every block's page size), then the target page
 *    size, against the local values;
 * 4. [INBOUND_ADVISE notifier, then all RAM is discarded]
 *
 * The other lengths (`CMD_POSTCOPY_ADVISE invalid length`) and the wrong-state case never get
 * here: the stream decoder refuses them with QEMU's texts.
 */
import type { Command } from '../../format/stream-types.ts';
import { ADVISE_TEXTS, DestError, MIG_ERR_DEST_ADVISE } from './dest-errors.ts';

/** The local values the advised ones must match. */
export interface LocalPageSizes {
  /** Bitwise OR of the page sizes of all RAM blocks (0x1000 for plain RAM). */
  readonly pageSizeSummary: number;
  /** The target page size, bytes. */
  readonly targetPageSize: number;
}

/**
 * Why an ADVISE is refused, or null. Criteria: with `local` null, only step 1 (length vs
 * capability); with `local`, only step 3 (sizes, for a 16-byte advise).
 */
export function adviseRefusal(
  command: Command & { kind: 'postcopy-advise' | 'postcopy-advise-empty' },
  postcopyRam: boolean,
  local: LocalPageSizes | null,
): DestError | null {
  if (local === null) {
    if (command.kind === 'postcopy-advise-empty') {
      return postcopyRam ? new DestError(MIG_ERR_DEST_ADVISE, ADVISE_TEXTS.enabledButEmpty) : null;
    }
    return postcopyRam ? null : new DestError(MIG_ERR_DEST_ADVISE, ADVISE_TEXTS.disabledButFull);
  }
  if (command.kind === 'postcopy-advise-empty') return null;
  if (command.pageSizeSummary !== local.pageSizeSummary) {
    return new DestError(MIG_ERR_DEST_ADVISE, ADVISE_TEXTS.pageSizes(command.pageSizeSummary, local.pageSizeSummary));
  }
  if (command.targetPageSize !== local.targetPageSize) {
    return new DestError(MIG_ERR_DEST_ADVISE, ADVISE_TEXTS.targetPageSizes(command.targetPageSize, local.targetPageSize));
  }
  return null;
}
