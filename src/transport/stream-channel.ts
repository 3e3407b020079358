/**
 * StreamChannel: the one Channel implementation, over Node streams. A socket (TCP, unix,
 * TLS) is one Duplex; an exec: channel is a child's stdin or stdout plus its exit status; a
 * file: channel is a single fs stream. The adapters build the parts and this class does the
 * bookkeeping common to all of them:
 *
 * - writes go straight to the stream as Buffers that view the caller's bytes (no copy); the
 *   channel's own high-water mark (default 4 MiB, well above Node's 16 KiB) decides when
 *   `write` returns false, and Node's 'drain' (always pending by then) ends the wait;
 * - reading starts at the first `onData` (or `end`), so bytes that arrive before the consumer
 *   is ready wait in the paused stream; `peek` looks at the first bytes without consuming them;
 * - with ReadOptions.reuseBufferBytes and an adapter that can (installReadBuffer: plain
 *   sockets), reads go into one reused buffer and each chunk is a view of it, valid during the
 *   handler's call; bytes the stream buffered before (a peek's) still come first, as 'data';
 * - the channel closes once every stream has closed and the adapter's completion (a child's
 *   exit) has settled. The reported error is, in order: the local `destroy` error, the
 *   completion's error (an exec exit status explains a broken pipe better than EPIPE does),
 *   then the first stream error;
 * - an end of stream is checked with the adapter's `probeEnd` (TCP: was it really a reset?)
 *   unless we ended first.
 */
import type { Readable, Writable } from 'node:stream';
import { assert } from '../lib/assert.ts';
import { MiB } from '../lib/units.ts';
import type { Channel, ReadOptions } from './channel.ts';
import { TransportError, TRANSPORT_ERR_ABORTED, TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_TIMEOUT } from './errors.ts';

/** Default write-queue high-water mark: enough to keep loopback busy between drains. */
export const DEFAULT_HIGH_WATER_MARK_BYTES = 4 * MiB;

export interface StreamChannelParts {
  /** Peer description for messages and `remoteAddress`. */
  readonly remoteAddress: string;
  readonly readable: Readable | null;
  readonly writable: Writable | null;
  /** Maps a stream's error event to a TransportError. */
  readonly mapError: (error: unknown) => TransportError;
  /** Settles when an extra resource is done (an exec child exited), with its verdict. */
  readonly completion?: Promise<TransportError | null>;
  /** Hard abort for `destroy` (a TCP reset, killing a child). Default: destroy the streams. */
  readonly abort?: () => void;
  /**
   * Asked at the readable's end of stream, unless we ended first: an error when the "end" was
   * really the peer aborting (see probeReset), else null.
   */
  readonly probeEnd?: () => TransportError | null;
  /** Write-queue high-water mark. Default DEFAULT_HIGH_WATER_MARK_BYTES. */
  readonly highWaterMarkBytes?: number;
  /**
   * Makes the readable read into `buffer` from now on, reused for every read, calling
   * `onRead(nread)` with `buffer[0, nread)` synchronously after each read (ReadOptions). False
   * when the stream cannot: reads then keep arriving as 'data' events. Absent: never.
   */
  readonly installReadBuffer?: (buffer: Uint8Array, onRead: (nread: number) => void) => boolean;
}

/** Views `data` as a Buffer without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Adds `handler` to `list`; the returned function removes it again (idempotent). */
function subscribe<T>(list: T[], handler: T): () => void {
  list.push(handler);
  return () => {
    const index = list.indexOf(handler);
    if (index >= 0) list.splice(index, 1);
  };
}

export class StreamChannel implements Channel {
  readonly remoteAddress: string;
  bytesWritten = 0;
  bytesRead = 0;
  needsDrain = false;
  closed = false;
  private readonly parts: StreamChannelParts;
  private readonly highWaterMarkBytes: number;
  private readonly dataHandlers: Array<(chunk: Uint8Array) => void> = [];
  private readonly drainHandlers: Array<() => void> = [];
  private readonly closeHandlers: Array<(error: TransportError | null) => void> = [];
  /** Streams that have not emitted 'close' yet. */
  private readonly openStreams = new Set<Readable | Writable>();
  /** True once data flows to handlers (or is being discarded after `end`). */
  private reading = false;
  /** The reused read buffer, once installed (ReadOptions.reuseBufferBytes). */
  private readBuffer: Uint8Array | null = null;
  private pausedByUser = false;
  /** Set by `end`: no more writes from the caller. */
  private ending = false;
  /** Set by `destroy`: the local verdict wins over anything the streams report. */
  private destroyedLocally = false;
  private localError: TransportError | null = null;
  private firstError: TransportError | null = null;
  private completionSettled: boolean;
  private completionError: TransportError | null = null;
  private result: TransportError | null = null;
  private readonly closedPromise: Promise<TransportError | null>;
  private resolveClosed!: (error: TransportError | null) => void;

  constructor(parts: StreamChannelParts) {
    this.parts = parts;
    this.remoteAddress = parts.remoteAddress;
    this.highWaterMarkBytes = Math.max(parts.highWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK_BYTES, parts.writable?.writableHighWaterMark ?? 0);
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    for (const stream of [parts.readable, parts.writable]) {
      if (stream === null || this.openStreams.has(stream)) continue;
      this.openStreams.add(stream);
      stream.on('error', (error: unknown) => this.streamFailed(error));
      stream.once('close', () => {
        this.openStreams.delete(stream);
        this.maybeFinish();
      });
    }
    parts.writable?.on('drain', () => this.drained());
    // Prepended: Node's own 'end' handler shuts our side down, which would spoil the probe.
    parts.readable?.prependListener('end', () => {
      if (this.ending || this.destroyedLocally || parts.probeEnd === undefined) return;
      const reset = parts.probeEnd();
      if (reset !== null) this.streamFailed(reset);
    });
    this.completionSettled = parts.completion === undefined;
    parts.completion?.then((error) => {
      this.completionSettled = true;
      this.completionError = error;
      this.maybeFinish();
    });
  }

  get queuedBytes(): number {
    return this.parts.writable?.writableLength ?? 0;
  }

  write(data: Uint8Array): boolean {
    const writable = this.parts.writable;
    if (writable === null) throw new TransportError(TRANSPORT_ERR_CLOSED, `Channel ${this.remoteAddress} is read-only`);
    if (this.ending || this.destroyedLocally) throw new TransportError(TRANSPORT_ERR_CLOSED, `Write after end on ${this.remoteAddress}`);
    // A channel that failed on its own drops the bytes: onClose is about to say why.
    if (this.closed || this.firstError !== null || writable.destroyed) return false;
    if (data.length === 0) return !this.needsDrain;
    this.bytesWritten += data.length;
    const belowStreamMark = writable.write(asBuffer(data));
    if (!belowStreamMark && writable.writableLength >= this.highWaterMarkBytes) {
      // Node's own mark (smaller than ours) was passed too, so its 'drain' is pending.
      this.needsDrain = true;
    }
    return !this.needsDrain;
  }

  cork(): void {
    this.parts.writable?.cork();
  }

  uncork(): void {
    this.parts.writable?.uncork();
  }

  onDrain(handler: () => void): () => void {
    return subscribe(this.drainHandlers, handler);
  }

  onData(handler: (chunk: Uint8Array) => void, options: ReadOptions = {}): void {
    this.dataHandlers.push(handler);
    this.startReading(options.reuseBufferBytes);
  }

  /** True once reads go into one reused buffer (ReadOptions.reuseBufferBytes was honoured). */
  get readsIntoReusedBuffer(): boolean {
    return this.readBuffer !== null;
  }

  onClose(handler: (error: TransportError | null) => void): () => void {
    if (this.closed) {
      const result = this.result;
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) handler(result);
      });
      return () => {
        cancelled = true;
      };
    }
    return subscribe(this.closeHandlers, handler);
  }

  whenClosed(): Promise<TransportError | null> {
    return this.closedPromise;
  }

  pause(): void {
    this.pausedByUser = true;
    this.parts.readable?.pause();
  }

  resume(): void {
    this.pausedByUser = false;
    if (this.reading) this.parts.readable?.resume();
  }

  end(): void {
    if (this.ending || this.destroyedLocally || this.closed) return;
    this.ending = true;
    // Nobody reads: discard what arrives so that the peer's close is seen and we close too.
    this.startReading();
    this.parts.writable?.end();
  }

  destroy(error?: Error): void {
    if (this.closed || this.destroyedLocally) return;
    this.destroyedLocally = true;
    if (error !== undefined) {
      this.localError = new TransportError(TRANSPORT_ERR_ABORTED, `Channel ${this.remoteAddress} aborted: ${error.message}`, { cause: error });
    }
    if (this.parts.abort !== undefined) this.parts.abort();
    else this.destroyStreams();
  }

  /**
   * Resolves with the first `lengthBytes` bytes without consuming them (they are delivered to
   * `onData` later as usual), or fewer when the stream ends first. Only before reading starts.
   * Rejects with TRANSPORT_ERR_TIMEOUT after `timeoutMs`, or TRANSPORT_ERR_ABORTED when
   * `signal` fires; the channel is then untouched and can still be read.
   */
  peek(lengthBytes: number, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const readable = this.parts.readable;
    assert(readable !== null && !this.reading, 'peek needs a readable channel that is not being read yet');
    return new Promise((resolve, reject) => {
      const finish = (outcome: Uint8Array | TransportError): void => {
        clearTimeout(timer);
        readable.removeListener('readable', onReadable);
        readable.removeListener('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (outcome instanceof TransportError) reject(outcome);
        else resolve(outcome);
      };
      const onReadable = (): void => {
        const chunk = readable.read(lengthBytes) as Buffer | null;
        if (chunk === null) return;
        readable.unshift(chunk);
        finish(new Uint8Array(chunk));
      };
      const onClose = (): void => finish(new Uint8Array(0));
      const onAbort = (): void => finish(new TransportError(TRANSPORT_ERR_ABORTED, `Peek on ${this.remoteAddress} abandoned`));
      const timer = setTimeout(() => {
        finish(new TransportError(TRANSPORT_ERR_TIMEOUT, `No ${lengthBytes} bytes from ${this.remoteAddress} within ${timeoutMs} ms`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort);
      readable.on('readable', onReadable);
      readable.once('close', onClose);
      if (signal?.aborted === true) onAbort();
      else onReadable();
    });
  }

  private startReading(reuseBufferBytes?: number): void {
    const readable = this.parts.readable;
    if (readable === null || this.reading) return;
    this.reading = true;
    // Bytes already buffered by the stream (a peek's) still come as 'data', before any read
    // into the reused buffer: the flow starts on the next tick, reads in a later poll phase.
    readable.on('data', (chunk: Buffer) => this.deliver(chunk));
    if (reuseBufferBytes !== undefined && reuseBufferBytes > 0 && this.parts.installReadBuffer !== undefined) {
      // A plain Uint8Array: a consumer's subarray of it is V8's own, not a Buffer's FastBuffer.
      const buffer = new Uint8Array(reuseBufferBytes);
      if (this.parts.installReadBuffer(buffer, (nread) => this.deliver(buffer.subarray(0, nread)))) this.readBuffer = buffer;
    }
    if (!this.pausedByUser) readable.resume();
  }

  private deliver(chunk: Uint8Array): void {
    this.bytesRead += chunk.length;
    for (const handler of this.dataHandlers) handler(chunk);
  }

  private drained(): void {
    if (!this.needsDrain) return;
    this.needsDrain = false;
    for (const handler of [...this.drainHandlers]) handler();
  }

  private streamFailed(error: unknown): void {
    if (this.destroyedLocally || this.firstError !== null) return;
    this.firstError = this.parts.mapError(error);
    // One failed stream fails the channel: tear down the others (an exec child then sees
    // EOF or EPIPE and exits by itself, so its exit status still gets reported).
    this.destroyStreams();
  }

  private destroyStreams(): void {
    for (const stream of [this.parts.readable, this.parts.writable]) {
      if (stream !== null && !stream.destroyed) stream.destroy();
    }
  }

  private maybeFinish(): void {
    if (this.closed || this.openStreams.size > 0 || !this.completionSettled) return;
    this.closed = true;
    this.result = this.destroyedLocally ? this.localError : this.completionError ?? this.firstError;
    const result = this.result;
    this.resolveClosed(result);
    // A writer waiting for drain must not wait forever on a dead channel.
    if (this.needsDrain) this.drained();
    for (const handler of [...this.closeHandlers]) handler(result);
  }
}
