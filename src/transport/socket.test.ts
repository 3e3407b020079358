/**
 * TCP and unix-socket channels over loopback: 64 MiB round trips compared by sha256 with
 * arbitrary write sizes; a bounded write queue against a reader that stops; a connection cut
 * by either end surfacing typed errors on both; listener bookkeeping (expected connection
 * count, accept deadline, unix socket files removed); connect and bind failures typed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectSocket, listenSocket, type ChannelListener } from './socket.ts';
import type { StreamChannel } from './stream-channel.ts';
import type { ReadOptions } from './channel.ts';
import { DEFAULT_HIGH_WATER_MARK_BYTES } from './stream-channel.ts';
import type { SocketAddress } from './uri.ts';
import {
  TransportError, TRANSPORT_ERR_ABORTED, TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_CONNECT, TRANSPORT_ERR_LISTEN,
  TRANSPORT_ERR_RESET, TRANSPORT_ERR_TIMEOUT,
} from './errors.ts';
import { collect, MiB, pumpBytes, randomBytes, sha256, within } from './pump.test-util.ts';

const TEST_TIMEOUT_MS = 60_000;
const DATA = randomBytes(64 * MiB);
const DATA_SHA = sha256(DATA);
const LOOPBACK: SocketAddress = { kind: 'tcp', host: '127.0.0.1', port: 0 };

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'livemig-sock-'));
}

/** A connected pair over `address`: [client, server side]. */
async function pair(address: SocketAddress): Promise<{ listener: ChannelListener; client: StreamChannel; server: StreamChannel }> {
  const listener = await listenSocket(address, { expectedConnections: 1 });
  const client = await connectSocket(listener.address);
  const server = await listener.accept(5_000);
  return { listener, client, server };
}

async function roundTrip(address: SocketAddress, readOptions?: ReadOptions): Promise<void> {
  const { listener, client, server } = await pair(address);
  try {
    // Forward: 64 MiB client → server. Backward: a short reply, so both directions carry bytes.
    const buffers = new Set<ArrayBufferLike>();
    const received = collect(server, (chunk) => buffers.add(chunk.buffer), readOptions);
    const reply = collect(client);
    const pumped = await pumpBytes(client, DATA, 0x7c9);
    const got = await within(received, 30_000, 'receive');
    assert.equal(got.error, null);
    assert.equal(got.bytes, DATA.length);
    assert.equal(got.sha256, DATA_SHA);
    assert.equal(server.bytesRead, DATA.length);
    assert.equal(client.bytesWritten, DATA.length);
    // With a reused read buffer every chunk is a view of that one buffer; without, reads are fresh.
    assert.equal(server.readsIntoReusedBuffer, readOptions !== undefined);
    if (readOptions !== undefined) assert.equal(buffers.size, 1);
    else assert.ok(buffers.size > 1, `${buffers.size} buffers`);
    assert.ok(pumped.maxQueuedBytes <= DEFAULT_HIGH_WATER_MARK_BYTES + pumped.maxWriteBytes, `queue ${pumped.maxQueuedBytes}`);
    const back = await within(reply, 10_000, 'client close');
    assert.equal(back.error, null);
    assert.equal(back.bytes, 0);
  } finally {
    await listener.close();
  }
}

test('tcp 127.0.0.1: 64 MiB round trip with arbitrary write sizes keeps its sha256', { timeout: TEST_TIMEOUT_MS }, async () => {
  await roundTrip(LOOPBACK);
});

test('unix socket: 64 MiB round trip, and the socket file is gone after the listener closes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'mig.sock');
    await roundTrip({ kind: 'unix', path });
    assert.equal(existsSync(path), false, 'socket file removed once the expected connection came');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reused read buffer: 64 MiB round trips over tcp and unix keep their sha256, every chunk a view of one 1 MiB buffer', { timeout: TEST_TIMEOUT_MS }, async () => {
  await roundTrip(LOOPBACK, { reuseBufferBytes: MiB });
  const dir = tempDir();
  try {
    await roundTrip({ kind: 'unix', path: join(dir, 'reuse.sock') }, { reuseBufferBytes: MiB });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reused read buffer: bytes peeked before reading starts come first, then the reused buffer takes over', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { listener, client, server } = await pair(LOOPBACK);
  try {
    const data = DATA.subarray(0, 8 * MiB);
    const pumped = pumpBytes(client, data, 0x51);
    assert.deepEqual(await server.peek(16, 5_000), data.subarray(0, 16));
    const got = await within(collect(server, undefined, { reuseBufferBytes: 256 * 1024 }), 30_000, 'receive');
    await pumped;
    assert.equal(got.error, null);
    assert.equal(got.sha256, sha256(data));
    assert.ok(server.readsIntoReusedBuffer);
  } finally {
    await listener.close();
  }
});

test('unix listener: a stale socket file is replaced, a regular file is refused, close removes the socket', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'stale.sock');
    // A process that dies while listening leaves its socket file behind.
    const crashed = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeout: 10_000 });
    assert.equal(crashed.signal, 'SIGKILL');
    assert.equal(existsSync(path), true, 'the stale socket file exists');
    const listener = await listenSocket({ kind: 'unix', path });
    const client = await connectSocket({ kind: 'unix', path });
    const server = await listener.accept(5_000);
    client.end();
    server.end();
    await within(Promise.all([client.whenClosed(), server.whenClosed()]), 5_000, 'close');
    await listener.close();
    assert.equal(existsSync(path), false);

    const regular = join(dir, 'regular');
    writeFileSync(regular, 'not a socket');
    await assert.rejects(listenSocket({ kind: 'unix', path: regular }), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_LISTEN);
    assert.equal(existsSync(regular), true, 'a regular file is never deleted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tcp [::1]: a connection over IPv6 loopback carries bytes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  let listener: ChannelListener;
  try {
    listener = await listenSocket({ kind: 'tcp', host: '::1', port: 0 }, { expectedConnections: 1 });
  } catch (error) {
    t.skip(`IPv6 loopback unavailable: ${(error as Error).message}`);
    return;
  }
  assert.match(listener.uri, /^tcp:\[::1\]:\d+$/);
  const client = await connectSocket(listener.address);
  const server = await listener.accept(5_000);
  const received = collect(server);
  await pumpBytes(client, DATA.subarray(0, 4 * MiB), 3);
  const got = await within(received, 10_000, 'receive');
  assert.equal(got.sha256, sha256(DATA.subarray(0, 4 * MiB)));
  assert.match(server.remoteAddress, /^tcp:\[::1\]:\d+$/);
  await listener.close();
});

test('backpressure: against a stalled reader the write queue stays bounded, then all bytes arrive', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { listener, client, server } = await pair(LOOPBACK);
  try {
    let stalled = true;
    let deliveredWhileStalled = 0;
    const received = collect(server, () => {
      if (stalled) deliveredWhileStalled++;
    });
    server.pause();
    const pumping = pumpBytes(client, DATA, 0xbac);
    // Give the writer time to fill kernel buffers and hit the high-water mark.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.ok(client.needsDrain, 'the writer must be waiting for drain');
    assert.ok(client.queuedBytes <= DEFAULT_HIGH_WATER_MARK_BYTES + 2 * MiB, `queued ${client.queuedBytes}`);
    assert.ok(client.bytesWritten < DATA.length / 2, `only ${client.bytesWritten} bytes should be in flight`);
    assert.equal(deliveredWhileStalled, 0);
    stalled = false;
    server.resume();
    const pumped = await pumping;
    const got = await within(received, 30_000, 'receive');
    assert.equal(got.sha256, DATA_SHA);
    assert.ok(pumped.drainWaits > 0);
    assert.ok(pumped.maxQueuedBytes <= DEFAULT_HIGH_WATER_MARK_BYTES + pumped.maxWriteBytes, `max queued ${pumped.maxQueuedBytes}`);
  } finally {
    await listener.close();
  }
});

/** Cuts a transfer by destroying `victim` ('sender' or 'receiver') once bytes flow. */
async function cut(victim: 'sender' | 'receiver', address: SocketAddress = LOOPBACK): Promise<{ sender: TransportError | null; receiver: TransportError | null }> {
  const { listener, client, server } = await pair(address);
  await listener.close();
  let cutDone = false;
  const received = collect(server, (_chunk, total) => {
    if (!cutDone && total > 8 * MiB) {
      cutDone = true;
      (victim === 'sender' ? client : server).destroy(new Error('operator pulled the cable'));
    }
  });
  void pumpBytes(client, DATA, 0xc07);
  const got = await within(received, 20_000, 'receiver close');
  const sent = await within(client.whenClosed(), 20_000, 'sender close');
  assert.ok(got.bytes < DATA.length, 'the transfer must really be cut');
  return { sender: sent, receiver: got.error };
}

test('cut: destroying the sender mid-transfer gives ABORTED there and RESET at the receiver', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { sender, receiver } = await cut('sender');
  assert.ok(sender instanceof TransportError && sender.code === TRANSPORT_ERR_ABORTED, String(sender));
  assert.match(sender.message, /operator pulled the cable/);
  assert.ok(receiver instanceof TransportError && receiver.code === TRANSPORT_ERR_RESET, String(receiver));
});

test('cut: destroying the receiver mid-transfer gives ABORTED there and RESET at the sender', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { sender, receiver } = await cut('receiver');
  assert.ok(receiver instanceof TransportError && receiver.code === TRANSPORT_ERR_ABORTED, String(receiver));
  assert.ok(sender instanceof TransportError && sender.code === TRANSPORT_ERR_RESET, String(sender));
});

test('cut: on a unix socket, destroying the receiver mid-transfer gives RESET at the sender', { timeout: TEST_TIMEOUT_MS }, async () => {
  // A unix socket has no reset: a sender's abort reads as a clean end at the receiver (the
  // stream decoder then reports the truncation), but a receiver's abort breaks the sender's pipe.
  const dir = tempDir();
  try {
    const { sender, receiver } = await cut('receiver', { kind: 'unix', path: join(dir, 'cut.sock') });
    assert.ok(receiver instanceof TransportError && receiver.code === TRANSPORT_ERR_ABORTED, String(receiver));
    assert.ok(sender instanceof TransportError && sender.code === TRANSPORT_ERR_RESET, String(sender));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('listener: stops after the expected connections, accept has a deadline, write after end is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 2 });
  const a = await connectSocket(listener.address);
  const b = await connectSocket(listener.address);
  const [sa, sb] = [await listener.accept(5_000), await listener.accept(5_000)];
  assert.equal(listener.acceptedCount, 2);
  assert.equal(listener.isListening, false);
  await assert.rejects(connectSocket(listener.address, { timeoutMs: 2_000 }), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CONNECT);
  await assert.rejects(listener.accept(100), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CLOSED);
  a.end();
  assert.throws(() => a.write(new Uint8Array(1)), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CLOSED);
  for (const channel of [b, sa, sb]) channel.end();
  const results = await within(Promise.all([a, b, sa, sb].map((c) => c.whenClosed())), 5_000, 'close');
  assert.deepEqual(results, [null, null, null, null]);

  const idle = await listenSocket(LOOPBACK);
  await assert.rejects(idle.accept(50), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_TIMEOUT);
  await idle.close();
});

test('errors: connecting to nothing and binding a used port are typed', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = tempDir();
  try {
    await assert.rejects(connectSocket({ kind: 'unix', path: join(dir, 'none.sock') }), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CONNECT);
    const taken = await listenSocket(LOOPBACK);
    await assert.rejects(listenSocket(taken.address), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_LISTEN && e.sysCode === 'EADDRINUSE');
    const port = (taken.address as { port: number }).port;
    await taken.close();
    await assert.rejects(connectSocket({ kind: 'tcp', host: '127.0.0.1', port }), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CONNECT && e.sysCode === 'ECONNREFUSED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cork: pieces written while corked stay queued, then leave in order at uncork (views of shared memory too)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { listener, client, server } = await pair(LOOPBACK);
  try {
    // 4 MiB as a record stream is cut: 8-byte pieces and 4096-byte views of a SharedArrayBuffer.
    const shared = new Uint8Array(new SharedArrayBuffer(4 * MiB));
    shared.set(DATA.subarray(0, 4 * MiB));
    const received = collect(server);
    client.cork();
    let written = 0;
    for (let at = 0; at < shared.length; at += 4104) {
      const head = DATA.subarray(8 * MiB + at, 8 * MiB + at + 8);
      const page = shared.subarray(at, Math.min(at + 4096, shared.length));
      client.write(head);
      client.write(page);
      written += head.length + page.length;
    }
    assert.equal(client.queuedBytes, written);
    client.uncork();
    client.end();
    const expected: Uint8Array[] = [];
    for (let at = 0; at < shared.length; at += 4104) expected.push(DATA.subarray(8 * MiB + at, 8 * MiB + at + 8), DATA.subarray(at, Math.min(at + 4096, shared.length)));
    const got = await within(received, 30_000, 'receive');
    assert.equal(got.error, null);
    assert.equal(got.bytes, written);
    assert.equal(got.sha256, sha256(Buffer.concat(expected)));
  } finally {
    // A failed assertion must not leave the pair open (the listener waits for it to close).
    client.destroy();
    server.destroy();
    await listener.close();
  }
});
