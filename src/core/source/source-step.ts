/**
 * The one dispatch of the source engine: every input goes through `stepSource`, which hands it
 * to the module that owns it. Inputs that make no sense in the current phase are ignored with a
 * coverage mark rather than failing the migration, because they race with the engine in real
 * life (a hint arriving as the migration ends, a pump after completion); `start` twice is the
 * exception (a programming error of the shell, reported as a typed error).
 *
 *   start          → setup.ts            hint           → hints.ts
 *   pump, tick     → iterate.ts          cancel         → termination.ts
 *   start-postcopy → here                channel-error  → termination.ts
 *   return-path    → return-path-input.ts set-parameters → here
 *   written        → switchover.ts        serve-requests → postcopy.ts
 */
import { assertNever } from '../../lib/assert.ts';
import { setRateLimit } from '../rate-limiter.ts';
import type { MigrationParameters } from '../params.ts';
import { applyHint } from './hints.ts';
import { pump, tick } from './iterate.ts';
import { serveRequestsNow } from './postcopy.ts';
import { migratePause, resumePostcopy } from './recovery.ts';
import { onReturnPathBytes } from './return-path-input.ts';
import { startMigration } from './setup.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError, type SourceInput } from './source-types.ts';
import { onWritten } from './switchover.ts';
import { cancelMigration, onChannelError } from './termination.ts';

/** QEMU's texts for a refused migrate-start-postcopy. */
export const POSTCOPY_NOT_ENABLED_TEXT = 'Enable postcopy with migrate_set_capability before the start of migration';
export const POSTCOPY_NOT_STARTED_TEXT = 'Postcopy must be started after migration has been started';

/** Runs one input. Returns the refusal of a command (start-postcopy, migrate-pause, resume), else null. */
export function stepSource(ctx: SourceContext, input: SourceInput): SourceError | null {
  switch (input.kind) {
    case 'start':
      startMigration(ctx, input.nowNs);
      return null;
    case 'pump':
      pump(ctx, input.nowNs, input.budgetBytes);
      return null;
    case 'start-postcopy':
      return startPostcopy(ctx);
    case 'return-path':
      onReturnPathBytes(ctx, input.nowNs, input.bytes);
      return null;
    case 'serve-requests':
      serveRequestsNow(ctx, input.nowNs);
      return null;
    case 'hint':
      applyHint(ctx, input.startPage, input.pageCount);
      return null;
    case 'cancel':
      cancelMigration(ctx, input.nowNs);
      return null;
    case 'channel-error':
      onChannelError(ctx, input.nowNs, input.reason);
      return null;
    case 'tick':
      tick(ctx, input.nowNs);
      return null;
    case 'set-parameters':
      setParameters(ctx, input.parameters);
      return null;
    case 'migrate-pause':
      return migratePause(ctx, input.nowNs);
    case 'resume':
      return resumePostcopy(ctx);
    case 'written':
      onWritten(ctx, input.nowNs);
      return null;
    default:
      return assertNever(input);
  }
}

/**
 * QEMU's qmp_migrate_start_postcopy: refused without capability postcopy-ram or before any
 * migration; otherwise it only sets the flag (also when the migration already ended: QEMU
 * does not error there, since that would race with the command).
 */
function startPostcopy(ctx: SourceContext): SourceError | null {
  if (!ctx.caps['postcopy-ram']) return new SourceError('MIG_ERR_POSTCOPY_NOT_ENABLED', POSTCOPY_NOT_ENABLED_TEXT);
  if (ctx.status === 'none') return new SourceError('MIG_ERR_POSTCOPY_NOT_STARTED', POSTCOPY_NOT_STARTED_TEXT);
  ctx.postcopyRequested = true;
  return null;
}

/** New parameters apply at once: the rate limit of the current phase follows them. */
function setParameters(ctx: SourceContext, parameters: MigrationParameters): void {
  ctx.params = parameters;
  if (ctx.phase.kind === 'precopy') ctx.limiter = setRateLimit(ctx.limiter, parameters.maxBandwidthBytesPerSec);
  else if (ctx.phase.kind === 'postcopy') ctx.limiter = setRateLimit(ctx.limiter, parameters.maxPostcopyBandwidthBytesPerSec);
}
