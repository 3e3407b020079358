/**
 * All invariant checkers of DESIGN §4 in one call, over a run's final state. The world builds
 * `CheckerInputs` at the end of a run (world-record.ts); tests build violating inputs by hand.
 */
import { checkHintRecovery, HINT_RECOVERY, type HintRecoveryInput } from './hint-recovery.ts';
import { checkIncrementerOracle, INCREMENTER_ORACLE, type IncrementerInput } from './incrementer.ts';
import { checkMemoryEquality, MEMORY_EQUALITY, type MemoryEqualityInput } from './memory-equality.ts';
import { checkPostcopyPlacement, POSTCOPY_PLACEMENT, type PostcopyPlacementInput } from './postcopy-placement.ts';
import { checkStallBound, STALL_BOUND, type StallBoundInput } from './stall-bound.ts';
import { checkStatusAndQueues, STATUS_AND_QUEUES, type StatusAndQueuesInput } from './status-and-queues.ts';
import { checkUnplugged, UNPLUGGED_MEMORY, type UnpluggedInput } from './unplugged.ts';
import type { InvariantVerdict } from './verdict.ts';

/** The invariants' names, in DESIGN §4 order (invariant n is INVARIANT_NAMES[n - 1]). */
export const INVARIANT_NAMES: readonly string[] = [
  MEMORY_EQUALITY,
  POSTCOPY_PLACEMENT,
  STALL_BOUND,
  HINT_RECOVERY,
  UNPLUGGED_MEMORY,
  STATUS_AND_QUEUES,
  INCREMENTER_ORACLE,
];

/** The inputs of every checker, in DESIGN §4 order. */
export interface CheckerInputs {
  readonly memory: MemoryEqualityInput;
  readonly placement: PostcopyPlacementInput;
  readonly stall: StallBoundInput;
  readonly hints: HintRecoveryInput;
  readonly unplugged: UnpluggedInput;
  readonly statusAndQueues: StatusAndQueuesInput;
  readonly incrementer: IncrementerInput;
}

/** Runs the seven checkers in DESIGN §4 order. */
export function runCheckers(inputs: CheckerInputs): InvariantVerdict[] {
  return [
    checkMemoryEquality(inputs.memory),
    checkPostcopyPlacement(inputs.placement),
    checkStallBound(inputs.stall),
    checkHintRecovery(inputs.hints),
    checkUnplugged(inputs.unplugged),
    checkStatusAndQueues(inputs.statusAndQueues),
    checkIncrementerOracle(inputs.incrementer),
  ];
}

export type { InvariantVerdict } from './verdict.ts';
