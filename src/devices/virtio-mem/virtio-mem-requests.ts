/**
 * virtio-mem guest requests and device responses, as bytes and as values.
 *
 * Request (24 bytes, little-endian): le16 type, 6 bytes padding, then for PLUG, UNPLUG and
 * STATE {le64 addr, le16 nb_blocks, 6 bytes padding}; UNPLUG_ALL ignores the rest.
 * Response (10 bytes): le16 type (ACK/NACK/BUSY/ERROR), 6 bytes padding, le16 state (STATE
 * requests only: PLUGGED/UNPLUGGED/MIXED; zero otherwise).
 *
 * Addresses are u64 in the protocol; they are kept as bigint so an address past 2^53 is
 * judged (out of range) rather than rounded.
 */
import { assertNever } from '../../lib/assert.ts';
import * as C from './constants.ts';

export type VirtioMemRequest =
  | { readonly type: 'plug'; readonly addr: bigint; readonly nbBlocks: number }
  | { readonly type: 'unplug'; readonly addr: bigint; readonly nbBlocks: number }
  | { readonly type: 'unplug-all' }
  | { readonly type: 'state'; readonly addr: bigint; readonly nbBlocks: number }
  /** A type the spec does not define; the device treats it as a protocol violation. */
  | { readonly type: 'unknown'; readonly code: number };

export type VirtioMemResponseType = 'ack' | 'nack' | 'busy' | 'error';
export type VirtioMemBlockState = 'plugged' | 'unplugged' | 'mixed';

export interface VirtioMemResponse {
  readonly type: VirtioMemResponseType;
  /** Present for an acknowledged STATE request. */
  readonly state?: VirtioMemBlockState;
}

/** Decodes a 24-byte request (the caller checks the length first). */
export function decodeVirtioMemRequest(bytes: Uint8Array): VirtioMemRequest {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const code = view.getUint16(0, true);
  const addr = view.getBigUint64(C.VIRTIO_MEM_REQ_ADDR_OFFSET, true);
  const nbBlocks = view.getUint16(C.VIRTIO_MEM_REQ_NB_BLOCKS_OFFSET, true);
  switch (code) {
    case C.VIRTIO_MEM_REQ_PLUG: return { type: 'plug', addr, nbBlocks };
    case C.VIRTIO_MEM_REQ_UNPLUG: return { type: 'unplug', addr, nbBlocks };
    case C.VIRTIO_MEM_REQ_UNPLUG_ALL: return { type: 'unplug-all' };
    case C.VIRTIO_MEM_REQ_STATE: return { type: 'state', addr, nbBlocks };
    default: return { type: 'unknown', code };
  }
}

/** Encodes a request (the driver side, and tests). */
export function encodeVirtioMemRequest(request: VirtioMemRequest): Uint8Array {
  const bytes = new Uint8Array(C.VIRTIO_MEM_REQ_SIZE_BYTES);
  const view = new DataView(bytes.buffer);
  switch (request.type) {
    case 'plug':
    case 'unplug':
    case 'state':
      view.setUint16(0, requestCode(request.type), true);
      view.setBigUint64(C.VIRTIO_MEM_REQ_ADDR_OFFSET, request.addr, true);
      view.setUint16(C.VIRTIO_MEM_REQ_NB_BLOCKS_OFFSET, request.nbBlocks, true);
      break;
    case 'unplug-all':
      view.setUint16(0, C.VIRTIO_MEM_REQ_UNPLUG_ALL, true);
      break;
    case 'unknown':
      view.setUint16(0, request.code, true);
      break;
    default:
      assertNever(request);
  }
  return bytes;
}

function requestCode(type: 'plug' | 'unplug' | 'state'): number {
  return type === 'plug' ? C.VIRTIO_MEM_REQ_PLUG : type === 'unplug' ? C.VIRTIO_MEM_REQ_UNPLUG : C.VIRTIO_MEM_REQ_STATE;
}

const RESPONSE_CODES: Record<VirtioMemResponseType, number> = {
  ack: C.VIRTIO_MEM_RESP_ACK,
  nack: C.VIRTIO_MEM_RESP_NACK,
  busy: C.VIRTIO_MEM_RESP_BUSY,
  error: C.VIRTIO_MEM_RESP_ERROR,
};
const STATE_CODES: Record<VirtioMemBlockState, number> = {
  plugged: C.VIRTIO_MEM_STATE_PLUGGED,
  unplugged: C.VIRTIO_MEM_STATE_UNPLUGGED,
  mixed: C.VIRTIO_MEM_STATE_MIXED,
};

/** Encodes a 10-byte response. */
export function encodeVirtioMemResponse(response: VirtioMemResponse): Uint8Array {
  const bytes = new Uint8Array(C.VIRTIO_MEM_RESP_SIZE_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, RESPONSE_CODES[response.type], true);
  if (response.state !== undefined) view.setUint16(C.VIRTIO_MEM_RESP_STATE_OFFSET, STATE_CODES[response.state], true);
  return bytes;
}

/** Decodes a 10-byte response (the driver side, and tests); null for unknown codes. */
export function decodeVirtioMemResponse(bytes: Uint8Array): { type: VirtioMemResponseType; stateCode: number } | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const code = view.getUint16(0, true);
  const type = (Object.keys(RESPONSE_CODES) as VirtioMemResponseType[]).find((k) => RESPONSE_CODES[k] === code);
  if (type === undefined) return null;
  return { type, stateCode: view.getUint16(C.VIRTIO_MEM_RESP_STATE_OFFSET, true) };
}

/** The STATE response value for a code, or null. */
export function blockStateFromCode(code: number): VirtioMemBlockState | null {
  const found = (Object.keys(STATE_CODES) as VirtioMemBlockState[]).find((k) => STATE_CODES[k] === code);
  return found ?? null;
}
