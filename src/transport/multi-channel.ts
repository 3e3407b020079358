/**
 * Several connections for one migration (QEMU 7.2 facts §2.6 and §3.10). The source opens the
 * main channel, then one extra connection per multifd channel and one for postcopy-preempt;
 * the destination must tell them apart:
 *
 * - without multifd, QEMU 7.2 goes by order: the first connection is the main stream, the
 *   second the preempt channel. Nothing is read to decide.
 * - with multifd, the first four bytes decide: the main stream starts with the file magic
 *   "QEVM" (0x5145564D), a multifd channel with its 64-byte init packet (be32 magic 0x11223344,
 *   be32 version, 16-byte UUID, u8 channel id, ...). A preempt channel stays silent until the
 *   switch to postcopy, so with preempt on, the connection left over once main and every
 *   multifd channel are known (or one silent past the peek deadline) is the preempt channel.
 *
 * Peeking consumes nothing: every channel is handed out with its first byte still unread, so
 * the stream decoders see complete streams. Init packets are parsed here only to learn the
 * channel id; their full validation belongs to the format layer.
 */
import { assert } from '../lib/assert.ts';
import type { SocketAddress } from './uri.ts';
import type { StreamChannel } from './stream-channel.ts';
import type { ChannelListener } from './socket.ts';
import { connectSocket } from './socket.ts';
import { TransportError, TRANSPORT_ERR_ABORTED, TRANSPORT_ERR_TIMEOUT, TRANSPORT_ERR_UNEXPECTED_CHANNEL } from './errors.ts';

/** "QEVM", the first four bytes of a main migration stream. */
export const QEVM_MAGIC = 0x5145564d;
/** First four bytes of a multifd channel's init packet. */
export const MULTIFD_MAGIC = 0x11223344;
/** Size of the multifd init packet; the channel id is at byte 24. */
export const MULTIFD_INIT_PACKET_BYTES = 64;
const MULTIFD_CHANNEL_ID_OFFSET = 24;

export type ChannelRole =
  | { readonly kind: 'main' }
  | { readonly kind: 'multifd'; readonly channelId: number; readonly version: number }
  | { readonly kind: 'preempt' };

export interface MigrationChannelSet {
  readonly main: StreamChannel;
  /** Multifd channels indexed by the channel id of their init packet. */
  readonly multifd: readonly StreamChannel[];
  readonly preempt: StreamChannel | null;
}

export interface MultiChannelOptions {
  /** Number of multifd channels (QEMU's multifd-channels), 0 when multifd is off. */
  readonly multifdChannels: number;
  /** Whether the postcopy-preempt capability is on. */
  readonly postcopyPreempt: boolean;
}

export interface AcceptChannelsOptions extends MultiChannelOptions {
  /** Deadline for all connections to arrive and be classified. Default 30 s. */
  readonly timeoutMs?: number;
}

function be32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) >>> 0) + (bytes[offset + 1] << 16) + (bytes[offset + 2] << 8) + bytes[offset + 3];
}

/**
 * Classifies one connection by its first bytes (multifd on). Resolves null for a connection
 * that sent nothing before `signal` fired or the deadline passed, when a silent preempt
 * channel is possible; throws TRANSPORT_ERR_UNEXPECTED_CHANNEL for anything else unknown.
 */
export async function classifyByMagic(channel: StreamChannel, preemptPossible: boolean, timeoutMs: number, signal?: AbortSignal): Promise<ChannelRole | null> {
  let head: Uint8Array;
  try {
    head = await channel.peek(4, timeoutMs, signal);
  } catch (error) {
    const silent = error instanceof TransportError && (error.code === TRANSPORT_ERR_TIMEOUT || error.code === TRANSPORT_ERR_ABORTED);
    if (silent && preemptPossible) return null;
    throw error;
  }
  if (head.length < 4) {
    throw new TransportError(TRANSPORT_ERR_UNEXPECTED_CHANNEL, `Connection ${channel.remoteAddress} closed after ${head.length} byte(s)`);
  }
  const magic = be32(head, 0);
  if (magic === QEVM_MAGIC) return { kind: 'main' };
  if (magic === MULTIFD_MAGIC) {
    const init = await channel.peek(MULTIFD_INIT_PACKET_BYTES, timeoutMs, signal);
    if (init.length < MULTIFD_INIT_PACKET_BYTES) {
      throw new TransportError(TRANSPORT_ERR_UNEXPECTED_CHANNEL, `Multifd init packet from ${channel.remoteAddress} is ${init.length} bytes, want ${MULTIFD_INIT_PACKET_BYTES}`);
    }
    return { kind: 'multifd', channelId: init[MULTIFD_CHANNEL_ID_OFFSET], version: be32(init, 4) };
  }
  if (preemptPossible) return { kind: 'preempt' };
  throw new TransportError(TRANSPORT_ERR_UNEXPECTED_CHANNEL, `Connection ${channel.remoteAddress} starts with 0x${magic.toString(16).padStart(8, '0')}, neither a migration stream nor a multifd channel`);
}

/** Puts classified channels into a set, refusing duplicates and out-of-range multifd ids. */
function assemble(channels: readonly StreamChannel[], roles: readonly ChannelRole[], options: MultiChannelOptions): MigrationChannelSet {
  let main: StreamChannel | null = null;
  let preempt: StreamChannel | null = null;
  const multifd: StreamChannel[] = [];
  const refuse = (why: string): never => {
    throw new TransportError(TRANSPORT_ERR_UNEXPECTED_CHANNEL, why);
  };
  roles.forEach((role, i) => {
    const channel = channels[i];
    if (role.kind === 'main') {
      if (main !== null) refuse(`Two main channels (${main.remoteAddress}, ${channel.remoteAddress})`);
      main = channel;
    } else if (role.kind === 'preempt') {
      if (preempt !== null || !options.postcopyPreempt) refuse(`Unexpected postcopy-preempt channel ${channel.remoteAddress}`);
      preempt = channel;
    } else {
      if (role.channelId >= options.multifdChannels) refuse(`Multifd channel id ${role.channelId} from ${channel.remoteAddress}, want < ${options.multifdChannels}`);
      if (multifd[role.channelId] !== undefined) refuse(`Two multifd channels with id ${role.channelId}`);
      multifd[role.channelId] = channel;
    }
  });
  if (main === null) return refuse('No main migration channel among the connections');
  return { main, multifd, preempt };
}

/** Classifies already accepted connections (in accept order) into a channel set. */
export async function classifyChannels(channels: readonly StreamChannel[], options: MultiChannelOptions, timeoutMs: number): Promise<MigrationChannelSet> {
  if (options.multifdChannels === 0) {
    // QEMU 7.2 order: main first, then the preempt channel.
    const roles: ChannelRole[] = channels.map((_, i) => (i === 0 ? { kind: 'main' } : { kind: 'preempt' }));
    return assemble(channels, roles, options);
  }
  const abort = new AbortController();
  const roles: Array<ChannelRole | null> = channels.map(() => null);
  let known = 0;
  const classified = channels.map(async (channel, i) => {
    roles[i] = await classifyByMagic(channel, options.postcopyPreempt, timeoutMs, abort.signal);
    if (roles[i] !== null && ++known === channels.length - 1 && options.postcopyPreempt) abort.abort();
  });
  try {
    await Promise.all(classified);
  } finally {
    abort.abort();
  }
  return assemble(channels, roles.map((role) => role ?? { kind: 'preempt' }), options);
}

/**
 * Accepts every connection a migration with these options brings (1 + multifd + preempt) and
 * classifies them. On any failure all accepted connections are destroyed.
 */
export async function acceptMigrationChannels(listener: ChannelListener, options: AcceptChannelsOptions): Promise<MigrationChannelSet> {
  const expected = 1 + options.multifdChannels + (options.postcopyPreempt ? 1 : 0);
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const channels: StreamChannel[] = [];
  try {
    while (channels.length < expected) channels.push(await listener.accept(Math.max(1, deadline - Date.now())));
    return await classifyChannels(channels, options, Math.max(1, deadline - Date.now()));
  } catch (error) {
    for (const channel of channels) channel.destroy();
    throw error;
  }
}

/**
 * Opens `count` extra connections to `address`, one after the other (QEMU 7.2 relies on
 * connection order when multifd is off). `connect` defaults to plain tcp/unix; pass a TLS
 * connector to secure them. On failure the connections already made are destroyed.
 */
export async function openExtraChannels(
  address: SocketAddress,
  count: number,
  connect: (address: SocketAddress) => Promise<StreamChannel> = (a) => connectSocket(a),
): Promise<StreamChannel[]> {
  assert(Number.isInteger(count) && count >= 0, 'openExtraChannels needs a count >= 0');
  const channels: StreamChannel[] = [];
  try {
    for (let i = 0; i < count; i++) channels.push(await connect(address));
    return channels;
  } catch (error) {
    for (const channel of channels) channel.destroy();
    throw error;
  }
}
