/**
 * Helpers for values that may or may not be promises. Controllers answer synchronously in the
 * simulator and in tests (so a whole QMP exchange runs without an event-loop turn) and
 * asynchronously in the real shell; the dispatcher stays one code path for both.
 */
import type { MaybePromise } from './controller.ts';

/** True when `value` is a thenable. */
export function isPromiseLike<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** Applies `next` to `value` now if it is plain, or when it settles. */
export function thenMaybe<T, U>(value: MaybePromise<T>, next: (resolved: T) => MaybePromise<U>): MaybePromise<U> {
  return isPromiseLike(value) ? value.then(next) : next(value);
}

/**
 * Runs `run` and routes a synchronous throw or a rejection to `onError`. The result is plain
 * when both `run` and `onError` answer plainly.
 */
export function attemptMaybe<T>(run: () => MaybePromise<T>, onError: (error: unknown) => MaybePromise<T>): MaybePromise<T> {
  let result: MaybePromise<T>;
  try {
    result = run();
  } catch (error) {
    return onError(error);
  }
  return isPromiseLike(result) ? result.then(undefined, onError) : result;
}
