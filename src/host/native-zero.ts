/**
 * The native zero test for lib/zero-range.ts: Buffer.compare of the range against a zero
 * buffer, a chunk at a time (a memcmp; see that file for the figures). Installed by every
 * process that runs a VM (vm-core.ts) and by the codec benchmark.
 */
import { installZeroRangeTest } from '../lib/zero-range.ts';

const ZERO_CHUNK_BYTES = 1024 * 1024;
const zeros = Buffer.alloc(ZERO_CHUNK_BYTES);

/** True when `bytes[start, end)` are all zero. */
export function nativeIsZeroRange(bytes: Uint8Array, start: number, end: number): boolean {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = start; at < end; at += ZERO_CHUNK_BYTES) {
    const n = Math.min(ZERO_CHUNK_BYTES, end - at);
    if (buf.compare(zeros, 0, n, at, at + n) !== 0) return false;
  }
  return true;
}

let done = false;

/** Installs nativeIsZeroRange once per process. */
export function installNativeZeroTest(): void {
  if (done) return;
  done = true;
  installZeroRangeTest(nativeIsZeroRange);
}
