/**
 * The non-zero RAM pattern of the QEMU harness: a source QEMU's RAM file (writePatternFile), and
 * the bytes a destination must hold afterwards (patternPage, patternBytes, mismatchedPages).
 * Every page is different from every other and none is zero, so QEMU sends each as a full PAGE
 * record and a misplaced page is caught.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export const PAGE_BYTES = 4096;
const WORDS_PER_PAGE = PAGE_BYTES / 4;

const WORD_MIX = (() => {
  const mix = new Uint32Array(WORDS_PER_PAGE);
  for (let w = 0; w < WORDS_PER_PAGE; w++) mix[w] = Math.imul(w + 1, 0x85ebca6b) >>> 0;
  return mix;
})();

/** Fills `words` (a whole number of pages) with the pattern of pages `firstPage`, `firstPage+1`, ... */
function fillPatternWords(words: Uint32Array, firstPage: number): void {
  const pages = words.length / WORDS_PER_PAGE;
  for (let p = 0; p < pages; p++) {
    const pageMix = Math.imul(firstPage + p + 1, 0x9e3779b1);
    const base = p * WORDS_PER_PAGE;
    for (let w = 0; w < WORDS_PER_PAGE; w++) words[base + w] = (pageMix ^ WORD_MIX[w]) | 1;
  }
}

/**
 * The bytes of page `pageIndex` of the pattern: 32-bit words (host order) that are all odd, so
 * no page is zero (QEMU sends each as a full PAGE record) and every page differs from the others.
 */
export function patternPage(pageIndex: number): Uint8Array {
  const words = new Uint32Array(WORDS_PER_PAGE);
  fillPatternWords(words, pageIndex);
  return new Uint8Array(words.buffer);
}

/** The pattern for bytes [offset, offset+sizeBytes); both page-aligned. */
export function patternBytes(offsetBytes: number, sizeBytes: number): Uint8Array {
  if (offsetBytes % PAGE_BYTES !== 0 || sizeBytes % PAGE_BYTES !== 0) throw new RangeError('pattern ranges are whole pages');
  const words = new Uint32Array(sizeBytes / 4);
  fillPatternWords(words, offsetBytes / PAGE_BYTES);
  return new Uint8Array(words.buffer);
}

/** Writes a `sizeBytes` pattern file (in 64 MiB pieces, so 2 GiB needs no 2 GiB buffer). */
export function writePatternFile(path: string, sizeBytes: number): void {
  if (sizeBytes <= 0 || sizeBytes % PAGE_BYTES !== 0) throw new RangeError(`pattern size ${sizeBytes} is not a positive number of pages`);
  const pieceBytes = Math.min(sizeBytes, 64 * 1024 * 1024);
  const words = new Uint32Array(pieceBytes / 4);
  const fd = openSync(path, 'w');
  try {
    for (let offset = 0; offset < sizeBytes; offset += pieceBytes) {
      const length = Math.min(pieceBytes, sizeBytes - offset);
      const view = words.subarray(0, length / 4);
      fillPatternWords(view, offset / PAGE_BYTES);
      const bytes = new Uint8Array(view.buffer, 0, length);
      for (let done = 0; done < length;) done += writeSync(fd, bytes, done, length - done);
    }
  } finally {
    closeSync(fd);
  }
}

/** Indexes of the pages of `bytes` (read from `offsetBytes`) that differ from the pattern (or from zero). */
export function mismatchedPages(bytes: Uint8Array, offsetBytes: number, expect: 'pattern' | 'zero'): number[] {
  const bad: number[] = [];
  const firstPage = offsetBytes / PAGE_BYTES;
  const zero = new Uint8Array(PAGE_BYTES);
  for (let at = 0; at < bytes.length; at += PAGE_BYTES) {
    const page = firstPage + at / PAGE_BYTES;
    const want = expect === 'zero' ? zero : patternPage(page);
    if (Buffer.compare(bytes.subarray(at, at + PAGE_BYTES), want) !== 0) bad.push(page);
  }
  return bad;
}
