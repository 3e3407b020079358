/**
 * Input files for the CLI, read in chunks so that a multi-GiB stream never has to fit in
 * memory: a plain file, a gzip file (recognised by its magic 0x1f 0x8b, whatever its name),
 * or bytes already in memory. A source gives its size, its first and last bytes (magic
 * detection, the VMDESCRIPTION search) and its chunks in order. A gzip file is decompressed
 * twice when both the tail and the chunks are needed: once to learn the size and keep the
 * tail, once to decode; memory stays bounded by the tail and one chunk.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { UsageError } from './io.ts';

export const GZIP_MAGIC_0 = 0x1f;
export const GZIP_MAGIC_1 = 0x8b;

export interface ByteSource {
  /** For messages: the path, or a label for in-memory bytes. */
  readonly label: string;
  /** Bytes on disk (the compressed size for gzip), or the in-memory length. */
  readonly fileBytes: number;
  /** True when the file is gzip and what follows is its decompressed content. */
  readonly gzip: boolean;
  /** Size of the (decompressed) content. */
  contentBytes(): Promise<number>;
  /** The first `n` bytes of the content (fewer when it is shorter). */
  head(n: number): Promise<Uint8Array>;
  /** The last `n` bytes of the content (fewer when it is shorter). */
  tail(n: number): Promise<Uint8Array>;
  /** The content in order, in chunks of `chunkBytes` (the last may be shorter). */
  chunks(chunkBytes: number): AsyncIterable<Uint8Array>;
}

/** Opens `path` as a source; a missing or unreadable file is a UsageError (exit 2). */
export function openFileSource(path: string): ByteSource {
  let sizeBytes: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${path}: not a regular file`);
    sizeBytes = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${code ?? String(e)})`);
  }
  const first = readRange(path, 0, 2);
  const gzip = first.length === 2 && first[0] === GZIP_MAGIC_0 && first[1] === GZIP_MAGIC_1;
  return gzip ? new GzipFileSource(path, sizeBytes) : new PlainFileSource(path, sizeBytes);
}

/** A source over bytes in memory (the `start` command's bundled vector, tests). */
export function memorySource(label: string, bytes: Uint8Array): ByteSource {
  return {
    label,
    fileBytes: bytes.length,
    gzip: false,
    contentBytes: async () => bytes.length,
    head: async (n) => bytes.subarray(0, Math.min(n, bytes.length)),
    tail: async (n) => bytes.subarray(Math.max(0, bytes.length - n)),
    chunks: (chunkBytes) => memoryChunks(bytes, chunkBytes),
  };
}

async function* memoryChunks(bytes: Uint8Array, chunkBytes: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += chunkBytes) yield bytes.subarray(at, Math.min(bytes.length, at + chunkBytes));
}

function readRange(path: string, position: number, lengthBytes: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const out = new Uint8Array(lengthBytes);
    let got = 0;
    while (got < lengthBytes) {
      const n = readSync(fd, out, got, lengthBytes - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return out.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

class PlainFileSource implements ByteSource {
  readonly gzip = false;
  constructor(
    readonly label: string,
    readonly fileBytes: number,
  ) {}

  async contentBytes(): Promise<number> {
    return this.fileBytes;
  }

  async head(n: number): Promise<Uint8Array> {
    return readRange(this.label, 0, Math.min(n, this.fileBytes));
  }

  async tail(n: number): Promise<Uint8Array> {
    const take = Math.min(n, this.fileBytes);
    return readRange(this.label, this.fileBytes - take, take);
  }

  async *chunks(chunkBytes: number): AsyncIterable<Uint8Array> {
    const fd = openSync(this.label, 'r');
    try {
      let position = 0;
      for (;;) {
        // A fresh buffer per chunk: the decoder may hand out views of it while it decodes.
        const buf = new Uint8Array(chunkBytes);
        let got = 0;
        while (got < chunkBytes) {
          const n = readSync(fd, buf, got, chunkBytes - got, position + got);
          if (n === 0) break;
          got += n;
        }
        if (got === 0) return;
        position += got;
        yield got === chunkBytes ? buf : buf.subarray(0, got);
        if (got < chunkBytes) return;
      }
    } finally {
      closeSync(fd);
    }
  }
}

class GzipFileSource implements ByteSource {
  readonly gzip = true;
  private sizeBytes: number | null = null;
  private tailBytes: Uint8Array | null = null;
  private tailWanted = 0;

  constructor(
    readonly label: string,
    readonly fileBytes: number,
  ) {}

  async contentBytes(): Promise<number> {
    if (this.sizeBytes === null) await this.scan(0);
    return this.sizeBytes as number;
  }

  async head(n: number): Promise<Uint8Array> {
    for await (const chunk of this.chunks(Math.max(1, n))) return chunk.subarray(0, n);
    return new Uint8Array(0);
  }

  async tail(n: number): Promise<Uint8Array> {
    if (this.tailBytes === null || this.tailWanted < n) await this.scan(n);
    const t = this.tailBytes as Uint8Array;
    return t.subarray(Math.max(0, t.length - n));
  }

  /** One decompression pass: the content size and its last `keepBytes` bytes. */
  private async scan(keepBytes: number): Promise<void> {
    const kept: Uint8Array[] = [];
    let keptBytes = 0;
    let total = 0;
    for await (const piece of this.raw()) {
      total += piece.length;
      if (keepBytes === 0) continue;
      kept.push(piece);
      keptBytes += piece.length;
      while (kept.length > 1 && keptBytes - kept[0].length >= keepBytes) keptBytes -= (kept.shift() as Uint8Array).length;
    }
    const joined = new Uint8Array(keptBytes);
    let at = 0;
    for (const k of kept) {
      joined.set(k, at);
      at += k.length;
    }
    this.sizeBytes = total;
    this.tailBytes = joined.subarray(Math.max(0, joined.length - keepBytes));
    this.tailWanted = keepBytes;
  }

  /** Decompressed pieces as zlib produces them. */
  private async *raw(): AsyncIterable<Uint8Array> {
    const gunzip = createGunzip();
    const input = createReadStream(this.label);
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    try {
      for await (const piece of gunzip) yield new Uint8Array((piece as Buffer).buffer, (piece as Buffer).byteOffset, (piece as Buffer).byteLength);
    } catch (e) {
      throw new GzipError(`${this.label}: gzip data is corrupt or truncated (${(e as Error).message})`);
    } finally {
      input.destroy();
      gunzip.destroy();
    }
  }

  async *chunks(chunkBytes: number): AsyncIterable<Uint8Array> {
    let buf = new Uint8Array(chunkBytes);
    let fill = 0;
    for await (const piece of this.raw()) {
      let at = 0;
      while (at < piece.length) {
        const take = Math.min(chunkBytes - fill, piece.length - at);
        buf.set(piece.subarray(at, at + take), fill);
        fill += take;
        at += take;
        if (fill === chunkBytes) {
          yield buf;
          buf = new Uint8Array(chunkBytes);
          fill = 0;
        }
      }
    }
    if (fill > 0) yield buf.subarray(0, fill);
  }
}

/** The gzip layer of an input failed (the bytes inside were never reached). */
export class GzipError extends Error {
  override name = 'GzipError';
}
