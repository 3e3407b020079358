/**
 * Test helpers that move real bytes through channels: `pumpBytes` writes a buffer in
 * arbitrary, seeded write sizes (tiny pieces batched by a ChannelWriter, large ones written
 * through), always honouring backpressure, and records the largest write queue it saw;
 * `collect` hashes whatever a channel delivers and reports how it closed. Used by the round
 * trip, backpressure and cut-connection tests of every adapter.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { Prng } from '../lib/prng.ts';
import { ChannelWriter, waitForDrain, type Channel, type ReadOptions } from './channel.ts';
import type { TransportError } from './errors.ts';

export const MiB = 1024 * 1024;

/** Fresh random bytes (not seeded: content does not matter, equality does). */
export function randomBytes(sizeBytes: number): Uint8Array {
  return randomFillSync(new Uint8Array(sizeBytes));
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface PumpResult {
  /** Largest `queuedBytes` seen right after a write. */
  readonly maxQueuedBytes: number;
  /** Largest single write handed to the channel (batch or direct). */
  readonly maxWriteBytes: number;
  /** Number of times the writer waited for drain. */
  readonly drainWaits: number;
}

/** A seeded write size: a third tiny, a third page-sized, a third up to 2 MiB. */
function nextWriteSize(prng: Prng): number {
  const kind = prng.u32() % 3;
  if (kind === 0) return 1 + (prng.u32() % 64);
  if (kind === 1) return 1 + (prng.u32() % 8192);
  return 1 + (prng.u32() % (2 * MiB));
}

/** Writes all of `data` in arbitrary pieces, waiting for drain whenever asked; then ends. */
export async function pumpBytes(channel: Channel, data: Uint8Array, seed: number, options: { readonly end?: boolean } = {}): Promise<PumpResult> {
  const prng = new Prng(seed);
  const writer = new ChannelWriter(channel, { batchBytes: 1 * MiB });
  let maxQueuedBytes = 0;
  let maxWriteBytes = 0;
  let drainWaits = 0;
  for (let offset = 0; offset < data.length && !channel.closed;) {
    const size = Math.min(nextWriteSize(prng), data.length - offset);
    const ok = writer.write(data.subarray(offset, offset + size));
    offset += size;
    maxWriteBytes = Math.max(maxWriteBytes, size >= writer.directWriteMinBytes ? size : writer.batchBytes);
    maxQueuedBytes = Math.max(maxQueuedBytes, channel.queuedBytes);
    if (!ok) {
      drainWaits++;
      await waitForDrain(channel);
    }
  }
  writer.flush();
  maxQueuedBytes = Math.max(maxQueuedBytes, channel.queuedBytes);
  if (options.end !== false) channel.end();
  return { maxQueuedBytes, maxWriteBytes, drainWaits };
}

export interface Collected {
  readonly sha256: string;
  readonly bytes: number;
  readonly chunks: number;
  /** The first bytes received (up to 64), for magic checks. */
  readonly head: Uint8Array;
  readonly error: TransportError | null;
}

/** Hashes everything `channel` delivers until it closes (reading as `readOptions` say). */
export function collect(channel: Channel, onChunk?: (chunk: Uint8Array, totalBytes: number) => void, readOptions?: ReadOptions): Promise<Collected> {
  const hash = createHash('sha256');
  let bytes = 0;
  let chunks = 0;
  let head = new Uint8Array(0);
  channel.onData((chunk) => {
    hash.update(chunk);
    if (head.length < 64) head = Uint8Array.from([...head, ...chunk.subarray(0, 64 - head.length)]);
    bytes += chunk.length;
    chunks++;
    onChunk?.(chunk, bytes);
  }, readOptions);
  return channel.whenClosed().then((error) => ({ sha256: hash.digest('hex'), bytes, chunks, head, error }));
}

/** Rejects when `promise` does not settle within `ms` (keeps a hung test from hanging CI). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
