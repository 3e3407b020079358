/**
 * ChannelWriter against a recording fake channel: small writes leave as full batches in
 * order, large ones go through as the very same bytes (no copy), flushed bytes are never
 * overwritten (small flushes fill one batch on), backpressure is passed on, and `end` flushes first. Then `waitForDrain` settles on
 * drain and on close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../lib/prng.ts';
import { concatBytes } from '../lib/bytes.ts';
import { ChannelWriter, waitForDrain, type Channel } from './channel.ts';
import type { TransportError } from './errors.ts';

/** Records writes; `blocked` makes write return false until `drain()`. */
class FakeChannel implements Channel {
  readonly remoteAddress = 'fake:';
  readonly writes: Uint8Array[] = [];
  bytesWritten = 0;
  bytesRead = 0;
  queuedBytes = 0;
  needsDrain = false;
  closed = false;
  ended = false;
  blocked = false;
  private readonly drainHandlers: Array<() => void> = [];
  private readonly closeHandlers: Array<(error: TransportError | null) => void> = [];

  write(data: Uint8Array): boolean {
    this.writes.push(data);
    this.bytesWritten += data.length;
    if (this.blocked) this.needsDrain = true;
    return !this.blocked;
  }
  onDrain(handler: () => void): () => void {
    this.drainHandlers.push(handler);
    return () => this.drainHandlers.splice(this.drainHandlers.indexOf(handler), 1);
  }
  onData(): void {}
  onClose(handler: (error: TransportError | null) => void): () => void {
    this.closeHandlers.push(handler);
    return () => this.closeHandlers.splice(this.closeHandlers.indexOf(handler), 1);
  }
  pause(): void {}
  resume(): void {}
  cork(): void {}
  uncork(): void {}
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.close();
  }
  whenClosed(): Promise<TransportError | null> {
    return new Promise((resolve) => this.onClose(resolve));
  }
  get handlerCount(): number {
    return this.drainHandlers.length + this.closeHandlers.length;
  }
  drain(): void {
    this.blocked = false;
    this.needsDrain = false;
    for (const handler of [...this.drainHandlers]) handler();
  }
  close(): void {
    this.closed = true;
    for (const handler of [...this.closeHandlers]) handler(null);
  }
}

test('ChannelWriter: small writes leave as full batches, in order, and end flushes the rest', () => {
  const channel = new FakeChannel();
  const writer = new ChannelWriter(channel, { batchBytes: 1000, directWriteMinBytes: 500 });
  const prng = new Prng(42);
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    const piece = new Uint8Array(prng.int(1, 100)).map(() => prng.u32() & 0xff);
    pieces.push(piece);
    assert.equal(writer.write(piece), true);
  }
  const total = pieces.reduce((n, p) => n + p.length, 0);
  assert.equal(writer.pendingBytes, total % 1000);
  assert.ok(channel.writes.every((w) => w.length === 1000), 'only full batches before the flush');
  writer.end();
  assert.equal(channel.ended, true);
  assert.equal(writer.pendingBytes, 0);
  assert.deepEqual(concatBytes(channel.writes), concatBytes(pieces));
  assert.equal(channel.writes.length, Math.ceil(total / 1000));
  // Every batch is its own memory: the channel may still be sending an earlier one.
  const buffers = new Set(channel.writes.map((w) => w.buffer));
  assert.equal(buffers.size, channel.writes.length);
});

test('ChannelWriter: a large write flushes the batch and goes through uncopied', () => {
  const channel = new FakeChannel();
  const writer = new ChannelWriter(channel, { batchBytes: 1000, directWriteMinBytes: 500 });
  const small = Uint8Array.of(1, 2, 3);
  const large = new Uint8Array(4000).fill(7);
  writer.write(small);
  writer.write(large);
  assert.equal(channel.writes.length, 2);
  assert.deepEqual(Array.from(channel.writes[0]), Array.from(small));
  assert.equal(channel.writes[1], large, 'the very same object: no copy');
  assert.equal(writer.channelWrites, 2);
  // A piece that straddles the batch's end is split: the batch (filled on after the 3 bytes
  // flushed above) leaves with 997 bytes, the rest starts a new one.
  const straddle = new Uint8Array(499).fill(9);
  writer.write(straddle);
  writer.write(straddle);
  writer.write(straddle);
  assert.equal(channel.writes.length, 3);
  assert.equal(channel.writes[2].length, 997);
  assert.equal(writer.pendingBytes, 500);
});

test('ChannelWriter: small flushes fill one batch on, never overwriting bytes handed to the channel', () => {
  const channel = new FakeChannel();
  const writer = new ChannelWriter(channel, { batchBytes: 1000, directWriteMinBytes: 500 });
  const prng = new Prng(7);
  const pieces: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    const piece = new Uint8Array(100).map(() => prng.u32() & 0xff);
    pieces.push(piece);
    writer.write(piece);
    writer.flush();
    // What the channel holds must stay as it was handed over, whatever is written later.
    copies.push(channel.writes[channel.writes.length - 1].slice());
  }
  assert.deepEqual(channel.writes.map((w) => Array.from(w)), copies.map((c) => Array.from(c)));
  assert.deepEqual(concatBytes(channel.writes), concatBytes(pieces));
  // 100-byte flushes: a batch carries 8 of them (it is replaced once less than 250 bytes are free).
  assert.equal(writer.batchAllocations, 1 + Math.floor(40 / 8));
  assert.equal(new Set(channel.writes.map((w) => w.buffer)).size, 5);
});

test('ChannelWriter: backpressure is passed on and waitForDrain settles on drain and on close', async () => {
  const channel = new FakeChannel();
  const writer = new ChannelWriter(channel, { batchBytes: 100 });
  channel.blocked = true;
  assert.equal(writer.write(new Uint8Array(50)), true, 'buffered, nothing reached the channel yet');
  assert.equal(writer.write(new Uint8Array(60)), false, 'the full batch met a blocked channel');
  assert.equal(writer.canWrite, false);
  const drained = waitForDrain(channel);
  channel.drain();
  await drained;
  assert.equal(writer.canWrite, true);
  channel.blocked = true;
  assert.equal(writer.flush(), false);
  const closed = waitForDrain(channel);
  channel.close();
  await closed;
  await waitForDrain(channel);
  assert.equal(channel.handlerCount, 0, 'waitForDrain leaves no handler behind');
});
