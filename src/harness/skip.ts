/**
 * The interop-test policy for a missing QEMU. In CI (env CI=true) interop tests must run, so
 * a missing or broken QEMU fails the test with a clear message; they are never skipped there.
 * On a developer machine without QEMU the test is skipped, and the reason is also printed to
 * stderr so that a skipped interop run is visible in the output and not silently green.
 *
 *   test('…', async (t) => {
 *     if (requireQemu(t) === null) return;
 *     …
 *   });
 */
import { qemuAvailability, QEMU_BINARY, type QemuAvailability } from './qemu-binary.ts';

/** The part of node:test's TestContext this policy uses. */
export interface SkippableTest {
  readonly name: string;
  skip(message?: string): void;
}

/** Thrown (failing the test) when QEMU is missing in CI. */
export class QemuMissingInCiError extends Error {
  override name = 'QemuMissingInCiError';
}

export const INSTALL_HINT = 'install qemu-system-x86 (apt) to run interop tests';

/** True when running in CI (env CI is `true` or `1`). */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? '').toLowerCase();
  return value === 'true' || value === '1';
}

/** The skip/failure text for an unavailable QEMU. */
export function missingQemuMessage(reason: string): string {
  return reason === `${QEMU_BINARY} not found on PATH`
    ? `${QEMU_BINARY} not found: ${INSTALL_HINT}`
    : `${reason}: ${INSTALL_HINT}`;
}

/**
 * Returns the QEMU path when it is available. Otherwise, in CI, throws QemuMissingInCiError;
 * locally, marks the test skipped, prints the reason to stderr and returns null (the caller
 * then returns at once).
 */
export function requireQemu(
  t: SkippableTest,
  options: { readonly env?: NodeJS.ProcessEnv; readonly availability?: QemuAvailability; readonly log?: (line: string) => void } = {},
): string | null {
  const env = options.env ?? process.env;
  const availability = options.availability ?? qemuAvailability();
  if (availability.ok) return availability.path;
  const message = missingQemuMessage(availability.reason);
  if (inCi(env)) {
    throw new QemuMissingInCiError(`CI=true and QEMU is unavailable, interop tests must not be skipped in CI: ${message}`);
  }
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  log(`skipping '${t.name}': ${message}`);
  t.skip(message);
  return null;
}
