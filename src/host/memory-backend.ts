/**
 * `-object memory-backend-file,mem-path=FILE,size=N[,share=on]` in a process whose guest RAM
 * is a SharedArrayBuffer (vCPU threads write it), so the file cannot be mmap-ed as QEMU does.
 * Instead:
 *
 * - at start the file's content is read into guest RAM (a missing file is created, a short
 *   one reads as zeros past its end and is extended to the backend's size, as QEMU's
 *   ftruncate does);
 * - with share=on, guest RAM is written back to the file when the VM exits (QMP `quit`, a
 *   signal, or the end of `livemig-qemu`), and on `syncToFile()`. Between those moments the
 *   file does not follow the guest; another process that maps the same file sees the old
 *   content. With share=off (QEMU's MAP_PRIVATE) the file is never written.
 *
 * Reads and writes go in 64 MiB pieces, so a 2 GiB backend needs no second 2 GiB buffer.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { MiB } from '../lib/units.ts';
import type { BytesBacking } from '../memory/bytes-backing.ts';
import type { MemoryBackendSpec } from './vm-args.ts';

const PIECE_BYTES = 64 * MiB;

/** The backend file could not be read or written. */
export class MemoryBackendError extends Error {
  override name = 'MemoryBackendError';
  constructor(message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
  }
}

function withFile<T>(path: string, flags: string, what: string, body: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (error) {
    throw new MemoryBackendError(`can't open backing store ${path} for guest RAM: ${(error as Error).message}`, { cause: error });
  }
  try {
    return body(fd);
  } catch (error) {
    throw new MemoryBackendError(`${what} ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a memory-backend-file's content into guest RAM (see the module comment). Returns how
 * many bytes from the start of RAM it may have written (0 for other backends).
 */
export function loadBackendFile(spec: MemoryBackendSpec, backing: BytesBacking): number {
  const path = spec.memPath;
  if (spec.kind !== 'file' || path === null) return 0;
  const exists = existsSync(path);
  const flags = !exists ? 'w+' : spec.share ? 'r+' : 'r';
  return withFile(path, flags, 'cannot read', (fd) => {
    const fileBytes = fstatSync(fd).size;
    const readable = Math.min(fileBytes, spec.sizeBytes);
    let offset = 0;
    while (offset < readable) {
      const length = Math.min(PIECE_BYTES, readable - offset);
      const got = readSync(fd, backing.bytes, offset, length, offset);
      if (got <= 0) break;
      offset += got;
    }
    if (spec.share && fileBytes < spec.sizeBytes) ftruncateSync(fd, spec.sizeBytes);
    return offset;
  });
}

/** Writes guest RAM back to a share=on memory-backend-file (nothing for other backends). */
export function writeBackBackendFile(spec: MemoryBackendSpec | null, backing: BytesBacking): void {
  if (spec === null || spec.kind !== 'file' || !spec.share || spec.memPath === null) return;
  withFile(spec.memPath, 'r+', 'cannot write', (fd) => {
    for (let offset = 0; offset < spec.sizeBytes;) {
      const length = Math.min(PIECE_BYTES, spec.sizeBytes - offset);
      offset += writeSync(fd, backing.bytes, offset, length, offset);
    }
  });
}
