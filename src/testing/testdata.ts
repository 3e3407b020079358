/**
 * Test-only access to the files under testdata/ (copied from real QEMU 7.2 runs; see
 * testdata/README.md). A `.gz` twin is decompressed transparently, so callers name the
 * original file: `readVector('qemu-7.2/pattern-16M.stream')`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const testdataDir = join(repoRoot, 'testdata');

export function readVector(relativePath: string): Uint8Array {
  const plain = join(testdataDir, relativePath);
  if (existsSync(plain)) return new Uint8Array(readFileSync(plain));
  const gz = `${plain}.gz`;
  if (existsSync(gz)) return new Uint8Array(gunzipSync(readFileSync(gz)));
  throw new Error(`test vector not found: ${relativePath} (looked for ${plain} and ${gz})`);
}

export function readVectorJson<T = unknown>(relativePath: string): T {
  return JSON.parse(new TextDecoder().decode(readVector(relativePath))) as T;
}
