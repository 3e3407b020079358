/**
 * file: channels (our addition; QEMU 7.2 has no file: URI). Outgoing opens the file as QEMU's
 * later file: migration does (create, truncate, mode 0600) and writes from `offsetBytes` on;
 * incoming reads from `offsetBytes` to the end of the file. Both use 1 MiB I/O so that a
 * stream moves in few system calls. A file channel is one-directional: there is no return
 * path, so postcopy and multifd cannot use it.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { MiB } from '../lib/units.ts';
import { StreamChannel } from './stream-channel.ts';
import { fromNodeError } from './errors.ts';

/** Size of each read and the write stream's own buffering mark. */
export const FILE_IO_CHUNK_BYTES = 1 * MiB;

export type FileDirection = 'outgoing' | 'incoming';

export interface FileChannelOptions {
  /** Where the stream starts in the file. Default 0. */
  readonly offsetBytes?: number;
  /** Write-queue high-water mark (outgoing). */
  readonly highWaterMarkBytes?: number;
}

/** Opens `path` for an outgoing (write) or incoming (read) stream; open errors close it typed. */
export function openFileChannel(path: string, direction: FileDirection, options: FileChannelOptions = {}): StreamChannel {
  const offsetBytes = options.offsetBytes ?? 0;
  const remoteAddress = offsetBytes === 0 ? `file:${path}` : `file:${path},offset=${offsetBytes}`;
  const mapError = (error: unknown) => fromNodeError(error, 'file', remoteAddress);
  if (direction === 'outgoing') {
    const writable = createWriteStream(path, { flags: 'w', mode: 0o600, start: offsetBytes, highWaterMark: FILE_IO_CHUNK_BYTES });
    return new StreamChannel({ remoteAddress, readable: null, writable, mapError, highWaterMarkBytes: options.highWaterMarkBytes });
  }
  const readable = createReadStream(path, { start: offsetBytes, highWaterMark: FILE_IO_CHUNK_BYTES });
  return new StreamChannel({ remoteAddress, readable, writable: null, mapError });
}
