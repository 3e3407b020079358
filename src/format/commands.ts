/**
 * COMMAND records (type 0x08, facts §1.5 and §3.1): be16 command, be16 payload length L, L
 * payload bytes. This module reads one command into a `Command` value with QEMU's exact
 * length rules, and tracks the destination's postcopy state so that out-of-order postcopy
 * commands are reported the way QEMU reports them.
 */
import { ByteReader, latin1, ShortReadError } from '../lib/bytes.ts';
import type { Command } from './stream-types.ts';
import type { StreamLimits } from './stream-errors.ts';
import type { DecodeContext } from './sections.ts';
import {
  MIG_CMD_ENABLE_COLO,
  MIG_CMD_MAX_7_2,
  MIG_CMD_NAMES,
  MIG_CMD_OPEN_RETURN_PATH,
  MIG_CMD_PACKAGED,
  MIG_CMD_PING,
  MIG_CMD_POSTCOPY_ADVISE,
  MIG_CMD_POSTCOPY_LISTEN,
  MIG_CMD_POSTCOPY_RAM_DISCARD,
  MIG_CMD_POSTCOPY_RESUME,
  MIG_CMD_POSTCOPY_RUN,
  MIG_CMD_RECV_BITMAP,
  MIG_CMD_SWITCHOVER_START,
  POSTCOPY_ADVISE_BYTES,
  POSTCOPY_RAM_DISCARD_MIN_BYTES,
  POSTCOPY_RAM_DISCARD_VERSION,
} from './constants.ts';
import {
  MIG_ERR_COMMAND_LENGTH,
  MIG_ERR_COMMAND_PAYLOAD,
  MIG_ERR_COMMAND_UNKNOWN,
  MIG_ERR_LIMIT,
} from './stream-errors.ts';

/** Payload lengths of the fixed-length commands (-1: variable, checked by the command). */
const FIXED_LENGTH_BYTES: readonly number[] = [-1, 0, 4, -1, 0, 0, -1, 4, 0, 0, -1];

/**
 * Reads a command after its type byte. All `L` payload bytes must be available before the
 * payload is interpreted, so a short payload inside them is malformed input, not a wait.
 */
export function readCommand(r: ByteReader, ctx: DecodeContext, limits: StreamLimits): Command {
  const at = r.pos - 1;
  const cmd = r.be16();
  const lengthBytes = r.be16();
  if (cmd === 0 || cmd >= MIG_CMD_MAX_7_2) {
    const newer = cmd === MIG_CMD_SWITCHOVER_START ? ' (SWITCHOVER_START is a QEMU 10.0+ command)' : '';
    throw ctx.fail(MIG_ERR_COMMAND_UNKNOWN, `MIG_CMD 0x${cmd.toString(16)} unknown (len 0x${lengthBytes.toString(16)})${newer}`, at);
  }
  const name = MIG_CMD_NAMES[cmd];
  const fixed = FIXED_LENGTH_BYTES[cmd];
  if (fixed >= 0 && lengthBytes !== fixed) {
    throw ctx.fail(MIG_ERR_COMMAND_LENGTH, `${name} received with bad length - expecting ${fixed}, got ${lengthBytes}`, at);
  }
  if (cmd === MIG_CMD_POSTCOPY_ADVISE && lengthBytes !== 0 && lengthBytes !== POSTCOPY_ADVISE_BYTES) {
    throw ctx.fail(MIG_ERR_COMMAND_LENGTH, `CMD_POSTCOPY_ADVISE invalid length (${lengthBytes})`, at);
  }
  if (cmd === MIG_CMD_POSTCOPY_RAM_DISCARD && lengthBytes < POSTCOPY_RAM_DISCARD_MIN_BYTES) {
    throw ctx.fail(MIG_ERR_COMMAND_LENGTH, `CMD_POSTCOPY_RAM_DISCARD invalid length (${lengthBytes})`, at);
  }
  if (cmd === MIG_CMD_RECV_BITMAP && lengthBytes < 1) {
    throw ctx.fail(MIG_ERR_COMMAND_LENGTH, `CMD_RECV_BITMAP invalid length (${lengthBytes})`, at);
  }
  r.need(lengthBytes);
  const p = new ByteReader(r.bytes, r.pos, r.pos + lengthBytes);
  r.skip(lengthBytes);
  try {
    return readPayload(cmd, p, lengthBytes, ctx, limits, at);
  } catch (e) {
    if (e instanceof ShortReadError) {
      throw ctx.fail(MIG_ERR_COMMAND_PAYLOAD, `${name} payload of ${lengthBytes} bytes is shorter than its content`, at);
    }
    throw e;
  }
}

function readPayload(cmd: number, p: ByteReader, lengthBytes: number, ctx: DecodeContext, limits: StreamLimits, at: number): Command {
  switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
      return { kind: 'open-return-path' };
    case MIG_CMD_PING:
      return { kind: 'ping', value: p.be32() };
    case MIG_CMD_POSTCOPY_ADVISE:
      if (lengthBytes === 0) return { kind: 'postcopy-advise-empty' };
      return { kind: 'postcopy-advise', pageSizeSummary: p.be64(), targetPageSize: p.be64() };
    case MIG_CMD_POSTCOPY_LISTEN:
      return { kind: 'postcopy-listen' };
    case MIG_CMD_POSTCOPY_RUN:
      return { kind: 'postcopy-run' };
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
      return readDiscard(p, lengthBytes, ctx, limits, at);
    case MIG_CMD_PACKAGED: {
      const packagedBytes = p.be32();
      if (packagedBytes > limits.maxPackagedBytes) {
        throw ctx.fail(MIG_ERR_LIMIT, `PACKAGED length ${packagedBytes} exceeds the limit of ${limits.maxPackagedBytes} bytes`, at);
      }
      return { kind: 'packaged', lengthBytes: packagedBytes };
    }
    case MIG_CMD_ENABLE_COLO:
      return { kind: 'enable-colo' };
    case MIG_CMD_POSTCOPY_RESUME:
      return { kind: 'postcopy-resume' };
    default: {
      // MIG_CMD_RECV_BITMAP: the only command left below MIG_CMD_MAX_7_2.
      const nameLengthBytes = p.u8();
      if (lengthBytes !== nameLengthBytes + 1) {
        throw ctx.fail(MIG_ERR_COMMAND_LENGTH, `CMD_RECV_BITMAP length ${lengthBytes} does not match its block name length ${nameLengthBytes} + 1`, at);
      }
      return { kind: 'recv-bitmap', blockName: latin1(p.bytesView(nameLengthBytes)) };
    }
  }
}

/** u8 version 0, cstr8 block name, u8 0, then k × (be64 start, be64 length). */
function readDiscard(p: ByteReader, lengthBytes: number, ctx: DecodeContext, limits: StreamLimits, at: number): Command {
  const version = p.u8();
  if (version !== POSTCOPY_RAM_DISCARD_VERSION) {
    throw ctx.fail(MIG_ERR_COMMAND_PAYLOAD, `CMD_POSTCOPY_RAM_DISCARD invalid version (${version})`, at);
  }
  const blockName = p.cstr8();
  const nil = p.u8();
  if (nil !== 0) throw ctx.fail(MIG_ERR_COMMAND_PAYLOAD, `CMD_POSTCOPY_RAM_DISCARD missing nil (${nil})`, at);
  const rangeBytes = lengthBytes - 3 - blockName.length;
  if (rangeBytes < 0 || rangeBytes % 16 !== 0) {
    throw ctx.fail(MIG_ERR_COMMAND_PAYLOAD, `CMD_POSTCOPY_RAM_DISCARD invalid length (${lengthBytes}): ranges are not whole 16-byte pairs`, at);
  }
  const count = rangeBytes / 16;
  if (count > limits.maxDiscardRanges) {
    throw ctx.fail(MIG_ERR_LIMIT, `CMD_POSTCOPY_RAM_DISCARD carries ${count} ranges, more than ${limits.maxDiscardRanges}`, at);
  }
  const ranges: { startBytes: number; lengthBytes: number }[] = [];
  for (let i = 0; i < count; i++) ranges.push({ startBytes: p.be64(), lengthBytes: p.be64() });
  return { kind: 'postcopy-ram-discard', blockName, ranges };
}

/** The destination's postcopy state (QEMU PostcopyState NONE..RUNNING). */
export type PostcopyPhase = 'none' | 'advise' | 'discard' | 'listening' | 'running';

/**
 * The postcopy state after `command`, or null when the command is not allowed in `phase`.
 * Commands that are not postcopy commands leave the state as it is.
 */
export function nextPostcopyPhase(phase: PostcopyPhase, command: Command): PostcopyPhase | null {
  switch (command.kind) {
    case 'postcopy-advise':
    case 'postcopy-advise-empty':
      return phase === 'none' ? 'advise' : null;
    case 'postcopy-ram-discard':
      return phase === 'advise' || phase === 'discard' ? 'discard' : null;
    case 'postcopy-listen':
      return phase === 'advise' || phase === 'discard' ? 'listening' : null;
    case 'postcopy-run':
      return phase === 'listening' ? 'running' : null;
    default:
      return phase;
  }
}
