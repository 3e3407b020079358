/**
 * The free page hint state machine of QEMU 7.2's virtio-balloon, as pure data and one step
 * function. The device owns a command id and a status; migration drives it through precopy
 * notifier reasons, the guest driver through command ids it writes on the free page queue.
 *
 *   STOP ──start──▶ REQUESTED ──driver writes the current id──▶ START
 *    ▲                 │  ▲                                      │
 *    └──stop / driver──┘  └──────────────start───────────────────┘
 *   any ──done──▶ DONE (the guest may reuse every hinted block)
 *
 * Rules (QEMU 7.2, unchanged in 10.1):
 * - start: id++ (0xFFFFFFFF wraps to 0x80000000); status := REQUESTED; config interrupt.
 * - driver id while REQUESTED: only the current id moves to START; stale ids are ignored.
 * - driver id while START: any value stops hinting (a stop counts only after a start).
 * - stop: status := STOP with a config interrupt unless already STOP.
 * - done: status := DONE with a config interrupt unless already DONE.
 * - hints (device-writable buffers) count only while START.
 */
import { assertNever } from '../../lib/assert.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import {
  VIRTIO_BALLOON_CMD_ID_DONE,
  VIRTIO_BALLOON_CMD_ID_STOP,
  VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MAX,
  VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN,
} from './constants.ts';

/** enum virtio_balloon_free_page_hint_status; the numbers travel in the migration stream. */
export const HintStatus = {
  /** No hinting round is running (initial state). */
  Stop: 0,
  /** A new command id was published; waiting for the driver to echo it. */
  Requested: 1,
  /** The driver echoed the id; hints are being applied. */
  Start: 2,
  /** Migration is over; the driver may give back every hinted block. */
  Done: 3,
} as const;
export type HintStatus = (typeof HintStatus)[keyof typeof HintStatus];

/** True for the four status values QEMU defines. */
export function isHintStatus(value: number): value is HintStatus {
  return value === HintStatus.Stop || value === HintStatus.Requested || value === HintStatus.Start || value === HintStatus.Done;
}

export function hintStatusName(status: HintStatus): 'STOP' | 'REQUESTED' | 'START' | 'DONE' {
  switch (status) {
    case HintStatus.Stop: return 'STOP';
    case HintStatus.Requested: return 'REQUESTED';
    case HintStatus.Start: return 'START';
    case HintStatus.Done: return 'DONE';
    default: return assertNever(status);
  }
}

/** The hint part of the device state. */
export interface HintState {
  /** free_page_hint_cmd_id: the id of the current (or last) request, a u32 ≥ 0x80000000. */
  readonly cmdId: number;
  /** free_page_hint_status. */
  readonly status: HintStatus;
}

export const INITIAL_HINT_STATE: HintState = {
  cmdId: VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN,
  status: HintStatus.Stop,
};

/** What can happen to the hint machine. */
export type HintInput =
  /** Ask the guest for a new round of hints (AFTER_BITMAP_SYNC with the VM running). */
  | { readonly kind: 'start' }
  /** End the round (BEFORE_BITMAP_SYNC, device reset, unrealize). */
  | { readonly kind: 'stop' }
  /** Tell the guest migration is over (AFTER_BITMAP_SYNC with the VM stopped, CLEANUP). */
  | { readonly kind: 'done' }
  /** The driver wrote a command id (the readable part of a free page queue element). */
  | { readonly kind: 'driver-cmd-id'; readonly cmdId: number };

export interface HintStep {
  /** The state after the input. */
  readonly state: HintState;
  /** Whether the device raises a config-change interrupt for this step. */
  readonly configChanged: boolean;
}

/** The id that follows `cmdId`: +1, wrapping from 0xFFFFFFFF to 0x80000000. */
export function nextCmdId(cmdId: number): number {
  return cmdId === VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MAX ? VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN : cmdId + 1;
}

/** The one transition function of the hint machine. */
export function stepHint(state: HintState, input: HintInput): HintStep {
  switch (input.kind) {
    case 'start':
      return { state: { cmdId: nextCmdId(state.cmdId), status: HintStatus.Requested }, configChanged: true };
    case 'stop':
      if (state.status === HintStatus.Stop) return { state, configChanged: false };
      return { state: { cmdId: state.cmdId, status: HintStatus.Stop }, configChanged: true };
    case 'done':
      if (state.status === HintStatus.Done) return { state, configChanged: false };
      return { state: { cmdId: state.cmdId, status: HintStatus.Done }, configChanged: true };
    case 'driver-cmd-id':
      // The driver's echo of the current id starts the round; while started, anything it
      // writes (normally STOP) ends it. Stale ids while REQUESTED and any id in STOP or DONE
      // are ignored, so a late STOP of an older round cannot end a new one.
      if (state.status === HintStatus.Requested && input.cmdId === state.cmdId) {
        return { state: { cmdId: state.cmdId, status: HintStatus.Start }, configChanged: false };
      }
      if (state.status === HintStatus.Start) {
        return { state: { cmdId: state.cmdId, status: HintStatus.Stop }, configChanged: false };
      }
      return { state, configChanged: false };
    default:
      return assertNever(input);
  }
}

/** Whether hint ranges (device-writable buffers) are applied in this state. */
export function hintsAccepted(state: HintState): boolean {
  return state.status === HintStatus.Start;
}

/**
 * The value the driver reads in config field free_page_hint_cmd_id: the id while REQUESTED,
 * STOP (0) in STOP, DONE (1) in DONE, and 0 in START (QEMU leaves the field zero there).
 */
export function configCmdIdValue(state: HintState): number {
  switch (state.status) {
    case HintStatus.Requested: return state.cmdId;
    case HintStatus.Stop: return VIRTIO_BALLOON_CMD_ID_STOP;
    case HintStatus.Done: return VIRTIO_BALLOON_CMD_ID_DONE;
    case HintStatus.Start: return 0;
    default: return assertNever(state.status);
  }
}

/** enum PrecopyNotifyReason (source side, QEMU 7.2). */
export const PrecopyNotifyReason = {
  Setup: 0,
  BeforeBitmapSync: 1,
  AfterBitmapSync: 2,
  Complete: 3,
  Cleanup: 4,
} as const;
export type PrecopyNotifyReason = (typeof PrecopyNotifyReason)[keyof typeof PrecopyNotifyReason];

/**
 * The hint input a precopy notifier reason asks for (QEMU virtio_balloon_free_page_hint_notify,
 * after its feature and postcopy checks): BEFORE_BITMAP_SYNC stops, AFTER_BITMAP_SYNC starts
 * with the VM running and is done with it stopped, CLEANUP is done, SETUP and COMPLETE do
 * nothing, and any other number is 'unknown' (the device marks itself broken).
 */
export function hintInputForReason(reason: number, vmRunning: boolean): HintInput | null | 'unknown' {
  switch (reason) {
    case PrecopyNotifyReason.BeforeBitmapSync: return { kind: 'stop' };
    case PrecopyNotifyReason.AfterBitmapSync: return vmRunning ? { kind: 'start' } : { kind: 'done' };
    case PrecopyNotifyReason.Cleanup: return { kind: 'done' };
    case PrecopyNotifyReason.Setup:
    case PrecopyNotifyReason.Complete:
      return null;
    default:
      return 'unknown';
  }
}

/** enum PostcopyNotifyReason (destination side, QEMU 7.2). */
export const PostcopyNotifyReason = {
  Probe: 0,
  InboundAdvise: 1,
  InboundListen: 2,
  InboundEnd: 3,
} as const;
export type PostcopyNotifyReason = (typeof PostcopyNotifyReason)[keyof typeof PostcopyNotifyReason];

/** The whole pages a free page hint covers: [startPage, startPage + pageCount). */
export interface HintedPages {
  readonly startPage: number;
  readonly pageCount: number;
}

/**
 * The target pages wholly inside a hinted range [gpa, gpa + lengthBytes): the start rounds up
 * and the end down. QEMU's qemu_guest_free_page_hint rounds both down (start = offset >> 12,
 * npages = len >> 12), which for a misaligned range names a page the guest did not say was
 * free; Linux only hints aligned blocks, where both agree. pageCount 0 means nothing to hint.
 * Pages past RAM are left to the engine, which ignores them (mark 'hint-outside-ram').
 */
export function hintedPages(gpa: number, lengthBytes: number): HintedPages {
  const startPage = Math.ceil(gpa / TARGET_PAGE_SIZE);
  const endPage = Math.floor((gpa + lengthBytes) / TARGET_PAGE_SIZE);
  return { startPage, pageCount: Math.max(0, endPage - startPage) };
}
