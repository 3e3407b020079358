/**
 * The extra connections of multifd (capability multifd, parameter multifd-channels) in a real
 * process, on the same tcp: or unix: URI as the main stream, with the same TLS settings.
 *
 * Source (`MultifdConnections`): QEMU 7.2's destination takes its first connection as the main
 * stream, so the channels are opened only once the main one is connected, one after the other,
 * in channel id order. Bytes for a channel not connected yet wait in its queue. A packet is
 * written as the engine made it (one write per packet, no batching needed at 512 KiB).
 *
 * The same class carries postcopy-preempt's single extra connection (outgoing.ts), opened after
 * the main one as QEMU 7.2 does when the migration starts.
 *
 * Destination (`acceptMultifd`): after the main connection, the next multifd-channels
 * connections are the channels, indexed in arrival order (each names its id in its init
 * packet, which the engine checks).
 */
import { TRANSPORT_ERR_CLOSED, TransportError } from '../transport/errors.ts';
import type { Channel, ReadOptions } from '../transport/channel.ts';
import { openOutgoing, type IncomingEndpoint, type OpenOptions } from '../transport/open.ts';
import { parseMigrationUri } from '../transport/uri.ts';

/** livemig's refusal of multifd on a URI other than tcp: or unix: (QEMU 7.2 opens channels on sockets only). */
export function multifdUriRefusal(uri: string): string | null {
  const kind = parseMigrationUri(uri).kind;
  return kind === 'tcp' || kind === 'unix' ? null : `multifd is not supported by the ${kind}: migration URI`;
}

export class MultifdConnections {
  private readonly channels: Array<Channel | null>;
  private readonly pending: Uint8Array[][];
  private readonly onError: (error: Error) => void;
  private closed = false;

  constructor(count: number, onError: (error: Error) => void) {
    this.channels = new Array<Channel | null>(count).fill(null);
    this.pending = Array.from({ length: count }, () => []);
    this.onError = onError;
  }

  /** Opens every channel in id order (after the main connection). */
  async connect(uri: string, open: OpenOptions): Promise<void> {
    for (let id = 0; id < this.channels.length; id++) {
      let channel: Channel;
      try {
        channel = await openOutgoing(uri, open);
      } catch (error) {
        this.onError(error as Error);
        return;
      }
      if (this.closed) {
        channel.destroy();
        return;
      }
      this.channels[id] = channel;
      channel.onClose((error) => {
        if (error !== null && !this.closed) this.onError(error);
      });
      for (const data of this.pending[id].splice(0)) channel.write(data);
    }
  }

  write(id: number, data: Uint8Array): void {
    const channel = this.channels[id];
    if (channel === null) this.pending[id].push(data);
    else if (!channel.closed) channel.write(data);
  }

  /** A connected channel whose queue is over its high-water mark, or null. */
  needingDrain(): Channel | null {
    for (const channel of this.channels) if (channel !== null && channel.needsDrain) return channel;
    return null;
  }

  /** Bytes not yet with the kernel, over every channel (queued before connecting included). */
  get queuedBytes(): number {
    let total = 0;
    for (let id = 0; id < this.channels.length; id++) {
      const channel = this.channels[id];
      total += channel === null ? this.pending[id].reduce((n, d) => n + d.length, 0) : channel.queuedBytes;
    }
    return total;
  }

  /** Bytes handed to the connected channels (queued ones included), over every channel. */
  get bytesWritten(): number {
    let total = 0;
    for (const channel of this.channels) total += channel?.bytesWritten ?? 0;
    return total;
  }

  /** Completed: each channel ends once its bytes are out. */
  end(): void {
    this.closed = true;
    for (const channel of this.channels) channel?.end();
  }

  /** Failed or cancelled: every channel is dropped. */
  destroy(): void {
    this.closed = true;
    for (const channel of this.channels) channel?.destroy();
  }
}

/**
 * Accepts `count` channel connections on `endpoint` and hands each chunk to `onData(index,
 * chunk)`, read as `readOptions` say (with reuseBufferBytes, a chunk is valid only during the
 * call); a channel that breaks before the end reports through `onError`.
 */
export async function acceptMultifd(
  endpoint: IncomingEndpoint,
  count: number,
  handlers: { onData(index: number, chunk: Uint8Array): void; onError(error: Error): void; isOver(): boolean },
  timeoutMs: number,
  readOptions: ReadOptions = {},
): Promise<Channel[]> {
  const accepted: Channel[] = [];
  for (let index = 0; index < count; index++) {
    let channel: Channel;
    try {
      channel = await endpoint.accept(timeoutMs);
    } catch (error) {
      handlers.onError(error instanceof Error ? error : new TransportError(TRANSPORT_ERR_CLOSED, String(error)));
      return accepted;
    }
    accepted.push(channel);
    channel.onData((chunk) => handlers.onData(index, chunk), readOptions);
    channel.onClose((error) => {
      if (error !== null && !handlers.isOver()) handlers.onError(error);
    });
  }
  return accepted;
}
