/**
 * Programmer-error assertions. They stay on in production: an invariant violation crashes a
 * real process and fails a simulated seed. Operating errors (bad input, a closed peer) are
 * typed values instead, never assertions.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertNever(value: never, message = 'unexpected variant'): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}

export function unreachable(message = 'unreachable'): never {
  throw new AssertionError(message);
}
