/**
 * The destination side of a migration: the engine, its options and statistics, its errors
 * and its phase machine. See dest-engine.ts for the whole picture.
 */
export { DestEngine } from './dest-engine.ts';
export type { ChannelReplacedResult, DestCommandResult, DestEngineOptions, DestStats, FaultResult, OutstandingFault } from './dest-types.ts';
export { DestError, DEST_ERROR_CODES, POSTCOPY_PAUSED_TEXT, RECOVERY_TEXTS } from './dest-errors.ts';
export type { DestErrorCode } from './dest-errors.ts';
export { statusOfPhase, stepPhase } from './dest-phase.ts';
export type { DestPhase, PhaseEvent } from './dest-phase.ts';
