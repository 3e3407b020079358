/**
 * Device sections on the destination: turning a decoded section into the opaque blob that
 * `DestHooks.loadDevice` takes, and QEMU's check of the `globalstate` runstate (facts §1.10).
 *
 * The stream decoder has to know where a device payload ends, so the engine hands it a
 * DeviceSectionDecoder. `CapturingDeviceDecoder` wraps the host's decoder and keeps the raw
 * bytes it consumed; `timer` and `globalstate` are decoded by the stream decoder itself, so
 * their payloads are re-encoded (they have one fixed layout each).
 */
import type { ByteReader } from '../../lib/bytes.ts';
import { encodeToBytes } from '../../format/stream-encoder.ts';
import type { GlobalState, TimerState } from '../../format/sections.ts';
import type { DeviceSectionDecoder, DeviceState, SectionHeader } from '../../format/stream-types.ts';
import { GLOBALSTATE_SECTION_IDSTR, TIMER_SECTION_IDSTR } from '../../format/constants.ts';
import type { DeviceSectionBlob } from '../engine-types.ts';
import { DestError, MIG_ERR_DEST_GLOBALSTATE } from './dest-errors.ts';

/** QEMU 7.2's RunState names, the values a globalstate section may carry. */
export const RUN_STATES: ReadonlySet<string> = new Set([
  'debug',
  'inmigrate',
  'internal-error',
  'io-error',
  'paused',
  'postmigrate',
  'prelaunch',
  'finish-migrate',
  'restore-vm',
  'running',
  'save-vm',
  'shutdown',
  'suspended',
  'watchdog',
  'guest-panicked',
  'colo',
]);

/** Wraps a device decoder and remembers the payload bytes of the last section it decoded. */
export class CapturingDeviceDecoder implements DeviceSectionDecoder {
  /** The host's decoder, which knows the layouts. */
  private readonly inner: DeviceSectionDecoder;
  /** A copy of the payload of the section decoded last (the stream buffer is reused). */
  lastPayload: Uint8Array = new Uint8Array(0);

  constructor(inner: DeviceSectionDecoder) {
    this.inner = inner;
  }

  decode(header: SectionHeader, reader: ByteReader): DeviceState {
    const start = reader.pos;
    const state = this.inner.decode(header, reader);
    this.lastPayload = reader.bytes.slice(start, reader.pos);
    return state;
  }
}

/** Encoder chunks for the small timer and globalstate payloads (the 256 KiB default costs ~1 MiB of zeroing per load). */
const SMALL_PAYLOAD = { chunkSizeBytes: 512 } as const;

/**
 * The blob for a decoded device section. `captured` is the wrapping decoder (null when the
 * engine has none; then only timer and globalstate reach here).
 */
export function deviceBlobOf(header: SectionHeader, state: DeviceState, captured: CapturingDeviceDecoder | null): DeviceSectionBlob {
  let payload: Uint8Array;
  if (header.idstr === TIMER_SECTION_IDSTR) {
    payload = encodeToBytes((e) => e.timerPayload(state as TimerState), SMALL_PAYLOAD);
  } else if (header.idstr === GLOBALSTATE_SECTION_IDSTR) {
    payload = encodeToBytes((e) => e.globalstatePayload(state as GlobalState), SMALL_PAYLOAD);
  } else {
    payload = captured === null ? new Uint8Array(0) : captured.lastPayload;
  }
  return { idstr: header.idstr, instanceId: header.instanceId, versionId: header.versionId, payload };
}

/**
 * The runstate a globalstate section carries, checked as QEMU's global_state_post_load does
 * (qapi_enum_parse of the name); throws DestError for a name that is not a RunState.
 */
export function globalstateRunstate(state: DeviceState): string {
  const runstate = (state as GlobalState).runstate;
  if (!RUN_STATES.has(runstate)) throw new DestError(MIG_ERR_DEST_GLOBALSTATE, `invalid parameter value: ${runstate}`);
  return runstate;
}
