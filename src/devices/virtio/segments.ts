/**
 * Copying between plain bytes and a chain's segments (QEMU's iov_to_buf / iov_from_buf).
 * Device code reads requests and writes replies only through these, so a device never
 * touches guest memory outside the buffers the driver lent it: the segments were checked to
 * lie inside guest memory when the chain was walked, and the copies never go past them.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { Segment } from './descriptor-chain.ts';

/** Total bytes in `segments`. */
export function segmentsLengthBytes(segments: readonly Segment[]): number {
  let total = 0;
  for (const s of segments) total += s.lengthBytes;
  return total;
}

/**
 * Reads up to `maxLengthBytes` bytes from the segments, starting `offsetBytes` into them.
 * Returns fewer bytes when the segments are shorter.
 */
export function readFromSegments(mem: GuestMemory, segments: readonly Segment[], maxLengthBytes: number, offsetBytes = 0): Uint8Array {
  const available = Math.max(0, segmentsLengthBytes(segments) - offsetBytes);
  const out = new Uint8Array(Math.min(maxLengthBytes, available));
  let skip = offsetBytes;
  let filled = 0;
  for (const s of segments) {
    if (filled === out.length) break;
    if (skip >= s.lengthBytes) {
      skip -= s.lengthBytes;
      continue;
    }
    const n = Math.min(s.lengthBytes - skip, out.length - filled);
    out.set(mem.read(s.gpa + skip, n), filled);
    filled += n;
    skip = 0;
  }
  return out;
}

/**
 * Writes `bytes` into the segments, starting `offsetBytes` into them, and returns how many
 * bytes fitted (the rest is dropped, as iov_from_buf does).
 */
export function writeToSegments(mem: GuestMemory, segments: readonly Segment[], bytes: Uint8Array, offsetBytes = 0): number {
  let skip = offsetBytes;
  let written = 0;
  for (const s of segments) {
    if (written === bytes.length) break;
    if (skip >= s.lengthBytes) {
      skip -= s.lengthBytes;
      continue;
    }
    const n = Math.min(s.lengthBytes - skip, bytes.length - written);
    mem.write(s.gpa + skip, bytes.subarray(written, written + n));
    written += n;
    skip = 0;
  }
  return written;
}
