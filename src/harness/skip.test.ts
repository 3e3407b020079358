/**
 * The missing-QEMU policy: skip with a printed reason locally, fail in CI, pass through when
 * QEMU is available. Uses injected availability, so it runs everywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inCi, QemuMissingInCiError, requireQemu } from './skip.ts';

function fakeTest(): { name: string; skipped: string[]; skip(message?: string): void } {
  const skipped: string[] = [];
  return { name: 'fake interop test', skipped, skip: (message?: string) => void skipped.push(message ?? '') };
}

const missing = { ok: false, reason: 'qemu-system-x86_64 not found on PATH' } as const;

test('a missing QEMU skips locally with the install hint, printed to stderr', () => {
  const t = fakeTest();
  const lines: string[] = [];
  const path = requireQemu(t, { env: {}, availability: missing, log: (line) => lines.push(line) });
  assert.equal(path, null);
  assert.deepEqual(t.skipped, ['qemu-system-x86_64 not found: install qemu-system-x86 (apt) to run interop tests']);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /fake interop test.*qemu-system-x86_64 not found: install qemu-system-x86 \(apt\)/);
});

test('a missing QEMU fails the test in CI instead of skipping', () => {
  const t = fakeTest();
  assert.throws(
    () => requireQemu(t, { env: { CI: 'true' }, availability: missing, log: () => undefined }),
    (error: unknown) => error instanceof QemuMissingInCiError && /must not be skipped in CI/.test(error.message),
  );
  assert.deepEqual(t.skipped, []);
});

test('an available QEMU returns its path and does not skip', () => {
  const t = fakeTest();
  const path = requireQemu(t, { env: { CI: 'true' }, availability: { ok: true, path: '/usr/bin/qemu-system-x86_64', version: 'x' } });
  assert.equal(path, '/usr/bin/qemu-system-x86_64');
  assert.deepEqual(t.skipped, []);
});

test('CI detection accepts true and 1 only', () => {
  assert.equal(inCi({ CI: 'true' }), true);
  assert.equal(inCi({ CI: 'TRUE' }), true);
  assert.equal(inCi({ CI: '1' }), true);
  assert.equal(inCi({ CI: 'false' }), false);
  assert.equal(inCi({}), false);
});
