/**
 * The source side of migration (QEMU 7.2's outgoing migration) as one import for shells:
 * the engine, its configuration and vocabulary types, and `wireBytesOf` for link models.
 */
export { SourceEngine, type CommandResult } from './source-engine.ts';
export type { SourcePhase } from './source-context.ts';
export {
  DEFAULT_MAX_CHUNK_PAGES,
  DEFAULT_REQUEST_QUEUE_LIMIT,
  DEFAULT_SOURCE_CHUNK_BYTES,
  SourceError,
  wireBytesOf,
  type SourceCounters,
  type SourceEngineConfig,
  type SourceErrorCode,
  type SourceInput,
  type SourceOptions,
  type SourceReadiness,
  type SourceSendEffect,
} from './source-types.ts';
export { POSTCOPY_NOT_ENABLED_TEXT, POSTCOPY_NOT_STARTED_TEXT } from './source-step.ts';
export { MIGRATE_PAUSE_NOT_POSTCOPY_TEXT, RESUME_NOT_PAUSED_TEXT, RESUME_RELEASE_RAM_TEXT } from './recovery.ts';
export { POSTCOPY_PAUSED_TEXT } from './termination.ts';
