/**
 * Several connections for one migration: a listener told to expect three accepts a main
 * stream and two multifd channels arriving out of order and sorts them by their first bytes
 * (QEVM magic, multifd init packet with its channel id) without consuming anything; without
 * multifd, order decides (main, then preempt); a silent preempt channel is recognised as the
 * one left over, without waiting for the deadline; an unknown first word is refused and every
 * accepted connection is torn down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectSocket, listenSocket } from './socket.ts';
import type { StreamChannel } from './stream-channel.ts';
import { acceptMigrationChannels, MULTIFD_INIT_PACKET_BYTES, openExtraChannels } from './multi-channel.ts';
import type { SocketAddress } from './uri.ts';
import { TransportError, TRANSPORT_ERR_CONNECT, TRANSPORT_ERR_UNEXPECTED_CHANNEL } from './errors.ts';
import { collect, within } from './pump.test-util.ts';

const TEST_TIMEOUT_MS = 30_000;
const LOOPBACK: SocketAddress = { kind: 'tcp', host: '127.0.0.1', port: 0 };
/** Stream header: "QEVM", version 3. */
const MAIN_HEAD = Uint8Array.of(0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3);

/** A multifd init packet (facts §2.6): magic, version 1, UUID, channel id, reserved. */
function multifdInit(channelId: number): Uint8Array {
  const packet = new Uint8Array(MULTIFD_INIT_PACKET_BYTES);
  packet.set([0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1], 0);
  packet.fill(0xab, 8, 24);
  packet[24] = channelId;
  return packet;
}

async function send(address: SocketAddress, bytes: Uint8Array | null): Promise<StreamChannel> {
  const channel = await connectSocket(address);
  if (bytes !== null) channel.write(bytes);
  return channel;
}

test('multi-channel: three connections out of order are classified as main and multifd 0/1, bytes intact', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 3 });
  const senders = [
    await send(listener.address, multifdInit(1)),
    await send(listener.address, MAIN_HEAD),
    await send(listener.address, multifdInit(0)),
  ];
  const set = await acceptMigrationChannels(listener, { multifdChannels: 2, postcopyPreempt: false, timeoutMs: 10_000 });
  assert.equal(listener.isListening, false, 'the listener stopped after three connections');
  assert.equal(set.preempt, null);
  assert.equal(set.multifd.length, 2);
  // Peeking consumed nothing: each channel still starts with its magic.
  const received = [set.main, set.multifd[0], set.multifd[1]].map((c) => collect(c));
  for (const sender of senders) sender.end();
  const [main, m0, m1] = await within(Promise.all(received), 5_000, 'receive');
  assert.deepEqual(Array.from(main.head), Array.from(MAIN_HEAD));
  assert.deepEqual(Array.from(m0.head), Array.from(multifdInit(0)));
  assert.deepEqual(Array.from(m1.head), Array.from(multifdInit(1)));
  assert.deepEqual([main.error, m0.error, m1.error], [null, null, null]);
  await listener.close();
});

test('multi-channel: without multifd the order decides, main then postcopy-preempt', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 2 });
  const main = await send(listener.address, MAIN_HEAD);
  const preempt = await send(listener.address, null);
  const set = await acceptMigrationChannels(listener, { multifdChannels: 0, postcopyPreempt: true, timeoutMs: 5_000 });
  assert.ok(set.preempt !== null);
  assert.equal(set.multifd.length, 0);
  const heads = [collect(set.main), collect(set.preempt)];
  main.end();
  preempt.end();
  const [mainGot, preemptGot] = await within(Promise.all(heads), 5_000, 'receive');
  assert.equal(mainGot.bytes, MAIN_HEAD.length);
  assert.equal(preemptGot.bytes, 0);
  await listener.close();
});

test('multi-channel: a silent preempt channel next to multifd is known once the others are, not at the deadline', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 4 });
  const senders = [
    await send(listener.address, MAIN_HEAD),
    await send(listener.address, null),
    await send(listener.address, multifdInit(0)),
    await send(listener.address, multifdInit(1)),
  ];
  // The deadline is longer than the test's own timeout: waiting for it would fail the test,
  // so classification must come from the other channels, not from the clock.
  const set = await acceptMigrationChannels(listener, { multifdChannels: 2, postcopyPreempt: true, timeoutMs: 10 * TEST_TIMEOUT_MS });
  assert.ok(set.preempt !== null);
  // The preempt channel can still be read normally after the abandoned peek.
  const preemptData = collect(set.preempt);
  senders[1].write(Uint8Array.of(1, 2, 3));
  for (const sender of senders) sender.end();
  for (const channel of [set.main, ...set.multifd]) channel.end();
  const got = await within(preemptData, 5_000, 'preempt data');
  assert.deepEqual(Array.from(got.head), [1, 2, 3]);
  await listener.close();
});

test('multi-channel: an unknown first word is refused and every accepted connection is torn down', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 2 });
  const good = await send(listener.address, MAIN_HEAD);
  const bad = await send(listener.address, Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
  await assert.rejects(
    acceptMigrationChannels(listener, { multifdChannels: 1, postcopyPreempt: false, timeoutMs: 5_000 }),
    (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_UNEXPECTED_CHANNEL && /0xdeadbeef/.test(e.message),
  );
  good.onData(() => undefined);
  bad.onData(() => undefined);
  const closed = await within(Promise.all([good.whenClosed(), bad.whenClosed()]), 5_000, 'torn down');
  assert.equal(closed.length, 2);
  await listener.close();
});

test('multi-channel: openExtraChannels opens N in order, and a refused one leaves nothing open', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenSocket(LOOPBACK, { expectedConnections: 3 });
  const extra = await openExtraChannels(listener.address, 3);
  assert.equal(extra.length, 3);
  const accepted = [await listener.accept(5_000), await listener.accept(5_000), await listener.accept(5_000)];
  // Accept order matches connect order: connection i carries byte i.
  const heads = accepted.map((c) => collect(c));
  extra.forEach((c, i) => {
    c.write(Uint8Array.of(i));
    c.end();
  });
  const got = await within(Promise.all(heads), 5_000, 'receive');
  assert.deepEqual(got.map((g) => Array.from(g.head)), [[0], [1], [2]]);
  await listener.close();
  await assert.rejects(openExtraChannels(listener.address, 2), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CONNECT);
});
