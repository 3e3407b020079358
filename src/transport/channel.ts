/**
 * The channel contract between the real shell and the byte transports, and ChannelWriter,
 * which batches small writes into large ones.
 *
 * A Channel is one ordered, reliable byte stream in each direction (a TCP or unix socket, a
 * TLS session, an exec: pipe pair, a file). The pure engine never sees it: the shell turns
 * the engine's `send` effects into `write` calls and `onData` chunks into `bytes` inputs.
 * Chunk boundaries are arbitrary on both sides. Flow control is explicit: `write` queues and
 * returns false once the queue passes the channel's high-water mark, and the writer then
 * waits for `onDrain`; reading can be paused the same way. A channel reports its end exactly
 * once through `onClose`, with null for a clean close and a TransportError otherwise.
 *
 * Why batching matters: Node moves about 0.6 GB/s through a socket in 4 KiB writes but
 * several times that in 1 MiB writes, because every write has a fixed cost. ChannelWriter
 * copies small pieces (record headers, single pages) into a batch buffer and hands each full
 * batch to the channel as one write; pieces that are already large go through uncopied.
 */
import { assert } from '../lib/assert.ts';
import { MiB, KiB } from '../lib/units.ts';
import type { TransportError } from './errors.ts';

/** How a channel reads (Channel.onData). */
export interface ReadOptions {
  /**
   * Read into one buffer of this many bytes, reused for every read, instead of a fresh
   * buffer per read (Node allocates 64 KiB per socket read, which the GC then collects). A
   * chunk is then a view of that buffer, valid only until the handler returns: the handler
   * must consume it (or copy what it keeps) before returning. Plain TCP and unix sockets do
   * this; other transports (TLS, exec, file) ignore the option and hand out owned chunks.
   */
  readonly reuseBufferBytes?: number;
}

export interface Channel {
  /** Human-readable peer: `tcp:127.0.0.1:4444`, `unix:/run/x.sock`, `exec:cat (pid 12)`, `file:/x`. */
  readonly remoteAddress: string;
  /** Bytes accepted by `write` so far (queued or sent). */
  readonly bytesWritten: number;
  /** Bytes delivered to `onData` handlers so far. */
  readonly bytesRead: number;
  /** Bytes written but not yet handed to the kernel (or file system). */
  readonly queuedBytes: number;
  /** True from a `write` that returned false until the following drain. */
  readonly needsDrain: boolean;
  /** True once `onClose` has fired. */
  readonly closed: boolean;
  /**
   * Queues `data` (no copy is made: do not modify it until the channel drains). Returns false
   * when the queue is at or above the high-water mark: wait for `onDrain` before writing more.
   * Throws TransportError TRANSPORT_ERR_CLOSED after `end`, `destroy` or close.
   */
  write(data: Uint8Array): boolean;
  /**
   * Holds writes back until `uncork`, which hands everything held to the kernel at once (one
   * writev of many pieces, e.g. record headers and zero-copy page views). Calls nest.
   */
  cork(): void;
  uncork(): void;
  /** Called each time the queue drains after a `write` returned false. Returns an unsubscriber. */
  onDrain(handler: () => void): () => void;
  /**
   * Registers a data handler and starts reading. Data that arrived earlier is kept (the
   * stream is paused until the first handler), so no byte is lost between accept and setup.
   * `options` count only for the first handler (the one that starts reading).
   */
  onData(handler: (chunk: Uint8Array) => void, options?: ReadOptions): void;
  /**
   * Called once when the channel is fully closed: null when clean, else the first error.
   * Registered after the close, the handler runs in a microtask. Returns an unsubscriber.
   */
  onClose(handler: (error: TransportError | null) => void): () => void;
  /** Stops delivering data (read-side flow control) until `resume`. */
  pause(): void;
  resume(): void;
  /** Flushes the queue and closes our sending side; a channel nobody reads is drained and discarded. */
  end(): void;
  /** Aborts at once (a TCP reset, a killed child); `onClose` gets TRANSPORT_ERR_ABORTED when `error` is given. */
  destroy(error?: Error): void;
  /** Resolves (never rejects) with what `onClose` receives. */
  whenClosed(): Promise<TransportError | null>;
}

/** Resolves when `channel` has drained, or at once when it is closed. */
export function waitForDrain(channel: Channel): Promise<void> {
  if (channel.closed) return Promise.resolve();
  return new Promise((resolve) => {
    // Both handlers go away on the first call: a long transfer waits for drain many times.
    const settle = (): void => {
      stopDrain();
      stopClose();
      resolve();
    };
    const stopDrain = channel.onDrain(settle);
    const stopClose = channel.onClose(settle);
  });
}

export interface ChannelWriterOptions {
  /** Size of a batch: small writes accumulate until this many bytes. Default 1 MiB. */
  readonly batchBytes?: number;
  /** Writes at least this large bypass the batch uncopied (after flushing it). Default 64 KiB. */
  readonly directWriteMinBytes?: number;
}

/** A flushed batch is filled on while at least 1/REUSE_FRACTION of it is free. */
const REUSE_FRACTION = 4;

/** Accumulates small writes into large batches for a Channel. */
export class ChannelWriter {
  readonly channel: Channel;
  /** Batch size in bytes. */
  readonly batchBytes: number;
  /** Threshold for writing through without copying. */
  readonly directWriteMinBytes: number;
  /**
   * The current batch: bytes [startBytes, fillBytes) are pending; those before `startBytes`
   * were handed to the channel and are never written again. A flush that leaves at least
   * `batchBytes / REUSE_FRACTION` free goes on filling the same batch after its bytes (a
   * shell that flushes 64 KiB at a time would otherwise allocate 1 MiB per flush, and the
   * garbage collector's pauses for that external memory fell on postcopy page requests).
   */
  private batch: Uint8Array;
  private startBytes = 0;
  private fillBytes = 0;
  /** Batches allocated so far (the first included). */
  batchAllocations = 1;
  /** Number of writes handed to the channel (batches plus direct writes). */
  channelWrites = 0;

  constructor(channel: Channel, options: ChannelWriterOptions = {}) {
    this.channel = channel;
    this.batchBytes = options.batchBytes ?? 1 * MiB;
    this.directWriteMinBytes = Math.min(options.directWriteMinBytes ?? 64 * KiB, this.batchBytes);
    assert(this.batchBytes >= 1 && this.directWriteMinBytes >= 1, 'ChannelWriter sizes must be positive');
    this.batch = Buffer.allocUnsafeSlow(this.batchBytes);
  }

  /** Bytes accepted but not yet handed to the channel. */
  get pendingBytes(): number {
    return this.fillBytes - this.startBytes;
  }

  /** False when the channel asked us to wait for drain (`waitForDrain(writer.channel)`). */
  get canWrite(): boolean {
    return !this.channel.needsDrain;
  }

  /**
   * Adds `data` to the batch (copying it) or, when it is large, writes it through after the
   * batch. Returns false when the caller should wait for the channel to drain.
   */
  write(data: Uint8Array): boolean {
    if (data.length >= this.directWriteMinBytes) {
      this.flush();
      this.channelWrites++;
      return this.channel.write(data);
    }
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(data.length - offset, this.batchBytes - this.fillBytes);
      this.batch.set(data.subarray(offset, offset + take), this.fillBytes);
      this.fillBytes += take;
      offset += take;
      if (this.fillBytes === this.batchBytes) this.flush();
    }
    return this.canWrite;
  }

  /** Hands the pending batch to the channel now. Returns the channel's answer. */
  flush(): boolean {
    if (this.fillBytes === this.startBytes) return this.canWrite;
    const chunk = this.batch.subarray(this.startBytes, this.fillBytes);
    // The channel keeps a reference to `chunk` until it is sent: its bytes are not reused.
    this.startBytes = this.fillBytes;
    if (this.batchBytes - this.fillBytes < this.batchBytes / REUSE_FRACTION) {
      this.batch = Buffer.allocUnsafeSlow(this.batchBytes);
      this.batchAllocations++;
      this.startBytes = 0;
      this.fillBytes = 0;
    }
    this.channelWrites++;
    return this.channel.write(chunk);
  }

  /** Flushes and ends the channel. */
  end(): void {
    this.flush();
    this.channel.end();
  }
}
