/**
 * "Are these bytes all zero?" for large ranges of guest RAM: the test behind QEMU's
 * buffer_is_zero, used by the source to choose ZERO records and by the destination to skip
 * zeroing pages that already are zero.
 *
 * The pure layers compare 32-bit words in a JS loop (about 1 GB/s here). A real process can
 * do much better with a native comparison (Buffer.compare against a zero buffer: 5-7 GB/s on
 * touched memory, far more on memory never touched); since the pure layers may not use Node
 * APIs, the shell installs that comparison once with `installZeroRangeTest`
 * (host/native-zero.ts) and every caller here gets it. The answer is the same either way;
 * only the speed differs, so a simulation is deterministic with or without it.
 */

/** True when `bytes[start, end)` are all zero. */
export type ZeroRangeTest = (bytes: Uint8Array, start: number, end: number) => boolean;

/** The portable test: 32-bit words OR-folded eight at a time where aligned, else bytes. */
export function isZeroRangeJs(bytes: Uint8Array, start: number, end: number): boolean {
  if (((bytes.byteOffset + start) & 3) === 0 && ((end - start) & 31) === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + start, (end - start) >>> 2);
    for (let i = 0; i < words.length; i += 8) {
      if ((words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]) !== 0) {
        return false;
      }
    }
    return true;
  }
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}

let installed: ZeroRangeTest = isZeroRangeJs;

/** True when `bytes[start, end)` are all zero, with the installed test. */
export function isZeroRange(bytes: Uint8Array, start: number, end: number): boolean {
  return installed(bytes, start, end);
}

/** Replaces the test (a shell's native one); returns the previous, for tests to restore. */
export function installZeroRangeTest(test: ZeroRangeTest): ZeroRangeTest {
  const previous = installed;
  installed = test;
  return previous;
}

/**
 * The number of leading whole pages of `bytes[start, start + pageCount * pageBytes)` that are
 * all zero. Tests spans of up to `spanPages` pages at once and narrows down inside the first
 * span that is not all zero, so a long zero run costs a few large comparisons, and a page
 * with data near its start costs one word read before the (rarely needed) full test.
 */
export function zeroPagesAt(bytes: Uint8Array, start: number, pageCount: number, pageBytes: number, spanPages = 256): number {
  let done = 0;
  while (done < pageCount) {
    const span = Math.min(spanPages, pageCount - done);
    const at = start + done * pageBytes;
    if (span > 1 && installed(bytes, at, at + span * pageBytes)) {
      done += span;
      continue;
    }
    for (let k = 0; k < span; k++) {
      const p = start + (done + k) * pageBytes;
      if (bytes[p] !== 0 || !installed(bytes, p, p + pageBytes)) return done + k;
    }
    done += span;
  }
  return done;
}
