/**
 * Locating the QEMU binary: env QEMU (a path or a name on PATH) or qemu-system-x86_64 on PATH,
 * and whether it actually runs (`--version`), cached per process.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export const QEMU_BINARY = 'qemu-system-x86_64';

export type QemuAvailability =
  | { readonly ok: true; readonly path: string; readonly version: string }
  | { readonly ok: false; readonly reason: string };

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function searchPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * The QEMU binary to use: env QEMU (a path, or a name looked up on PATH) when set, else
 * qemu-system-x86_64 on PATH. Null when not found.
 */
export function findQemu(): string | null {
  const fromEnv = process.env.QEMU;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.includes('/')) return isExecutable(fromEnv) ? resolve(fromEnv) : null;
    return searchPath(fromEnv);
  }
  return searchPath(QEMU_BINARY);
}

let availabilityCache: QemuAvailability | null = null;

/** Whether a runnable QEMU exists (found and answers `--version`); cached per process. */
export function qemuAvailability(): QemuAvailability {
  if (availabilityCache !== null) return availabilityCache;
  const path = findQemu();
  if (path === null) {
    const fromEnv = process.env.QEMU;
    const reason = fromEnv !== undefined && fromEnv !== ''
      ? `QEMU=${fromEnv} is not an executable file`
      : `${QEMU_BINARY} not found on PATH`;
    availabilityCache = { ok: false, reason };
    return availabilityCache;
  }
  const run = spawnSync(path, ['--version'], { timeout: 15_000, encoding: 'utf8' });
  if (run.error !== undefined || run.status !== 0) {
    const why = run.error?.message ?? `exit status ${run.status}: ${(run.stderr ?? '').trim()}`;
    availabilityCache = { ok: false, reason: `${path} --version failed: ${why}` };
    return availabilityCache;
  }
  availabilityCache = { ok: true, path, version: run.stdout.split('\n')[0].trim() };
  return availabilityCache;
}
