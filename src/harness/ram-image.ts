/**
 * Guest RAM images for interop runs: seeded random content with chosen all-zero pages, a
 * recognisable per-page pattern, and the command-line pieces that put such a file under a
 * QEMU guest as a shared `memory-backend-file` (share=on, so QEMU reads and writes the file
 * itself and the test can compare it byte for byte). Also the temp-directory helper every
 * harness user shares: under /dev/shm when it is writable (RAM-backed, fast), else os.tmpdir().
 */
import { accessSync, constants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Prng } from '../lib/prng.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';

export interface RandomRamOptions {
  /** Seed of the content; the same seed gives the same bytes. */
  readonly seed: number;
  /** Every page whose index is a multiple of this is left all-zero (0 = none). Default 7. */
  readonly zeroPageEvery?: number;
  /** Extra page indexes to leave all-zero. */
  readonly zeroPages?: readonly number[];
  readonly pageSizeBytes?: number;
}

/** Seeded random bytes, with some whole pages left zero so both ZERO and PAGE records occur. */
export function makeRandomRam(sizeBytes: number, options: RandomRamOptions): Uint8Array {
  const pageSizeBytes = options.pageSizeBytes ?? TARGET_PAGE_SIZE;
  if (sizeBytes % pageSizeBytes !== 0) throw new RangeError(`RAM size ${sizeBytes} is not a multiple of ${pageSizeBytes}`);
  const bytes = new Uint8Array(sizeBytes);
  const words = new Uint32Array(bytes.buffer);
  const prng = new Prng(options.seed);
  for (let i = 0; i < words.length; i++) words[i] = prng.u32();
  const every = options.zeroPageEvery ?? 7;
  const pageCount = sizeBytes / pageSizeBytes;
  if (every > 0) {
    for (let page = 0; page < pageCount; page += every) bytes.fill(0, page * pageSizeBytes, (page + 1) * pageSizeBytes);
  }
  for (const page of options.zeroPages ?? []) {
    if (page >= 0 && page < pageCount) bytes.fill(0, page * pageSizeBytes, (page + 1) * pageSizeBytes);
  }
  return bytes;
}

/** The vectors' pattern: page i holds little-endian u32 i repeated (page 0 is therefore zero). */
export function makePatternRam(sizeBytes: number, pageSizeBytes = TARGET_PAGE_SIZE): Uint8Array {
  const bytes = new Uint8Array(sizeBytes);
  const view = new DataView(bytes.buffer);
  for (let offset = 0; offset + 4 <= sizeBytes; offset += 4) view.setUint32(offset, Math.floor(offset / pageSizeBytes), true);
  return bytes;
}

/** Count of all-zero pages in an image (useful to assert a test exercises ZERO records). */
export function countZeroPages(bytes: Uint8Array, pageSizeBytes = TARGET_PAGE_SIZE): number {
  let zero = 0;
  for (let offset = 0; offset < bytes.length; offset += pageSizeBytes) {
    const page = bytes.subarray(offset, offset + pageSizeBytes);
    if (page.every((b) => b === 0)) zero++;
  }
  return zero;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `bytes` to `path` (the file a memory-backend-file maps). */
export function writeRamFile(path: string, bytes: Uint8Array): string {
  writeFileSync(path, bytes);
  return path;
}

export interface MemoryBackendFileOptions {
  /** The backend id, which is also the RAM block name a `-M none,memory-backend=ID` guest migrates. */
  readonly id: string;
  readonly sizeBytes: number;
  readonly memPath: string;
  /** Default true: QEMU maps the file MAP_SHARED, so the file is the guest RAM. */
  readonly share?: boolean;
}

/** `-object memory-backend-file,…` arguments. Sizes are given in bytes to avoid suffix rounding. */
export function memoryBackendFileArgs(options: MemoryBackendFileOptions): string[] {
  const share = (options.share ?? true) ? 'on' : 'off';
  return ['-object', `memory-backend-file,id=${options.id},size=${options.sizeBytes},mem-path=${options.memPath},share=${share}`];
}

/** `-M none,memory-backend=ID -m SIZE` plus the backend: a CPU-less guest whose RAM is the file. */
export function noneMachineWithFileArgs(options: MemoryBackendFileOptions): string[] {
  return ['-M', `none,memory-backend=${options.id}`, '-m', `${options.sizeBytes}B`, ...memoryBackendFileArgs(options)];
}

function writableDir(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return false;
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Creates a private temp directory (under /dev/shm when writable, else os.tmpdir()). */
export function makeTempDir(prefix = 'livemig-'): string {
  const base = writableDir('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, prefix));
}

/** Removes a temp directory and everything in it; never throws. */
export function removeTempDir(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    // Best effort: a leftover temp dir must not fail a test.
  }
}
