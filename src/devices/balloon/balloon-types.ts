/**
 * The balloon device's interfaces and the parts of its shape that follow from its
 * properties alone: offered features, config size and the queue layout (QEMU 7.2 realize).
 */
import { featureBit } from '../virtio/constants.ts';
import type { DeviceError } from '../device-error.ts';
import type { DiscardSink } from '../element-io.ts';
import * as C from './constants.ts';
import type { HintState } from './free-page-hint.ts';
import type { FreePageHintPostcopyPolicy } from './postcopy-policy.ts';

/** Receiver of free page hints; the migration source clears these pages from its bitmap. */
export interface HintSink {
  /** A guest-physical range the guest reported free during round `cmdId`. */
  onHint(gpa: number, lengthBytes: number, cmdId: number): void;
}

export const NULL_HINT_SINK: HintSink = { onHint: () => {} };

/** Device properties (QEMU qdev properties and their defaults) and host-side wiring. */
export interface BalloonOptions {
  /** Current guest RAM size in bytes (QEMU get_current_ram_size); a multiple of 4 KiB. */
  readonly ramSizeBytes: number;
  /** `free-page-hint`, default off. QEMU also requires an iothread; not modelled. */
  readonly freePageHint?: boolean;
  /** `page-poison`, default on. */
  readonly pagePoison?: boolean;
  /** `free-page-reporting`, default off. */
  readonly freePageReporting?: boolean;
  /** `deflate-on-oom`, default off. */
  readonly deflateOnOom?: boolean;
  /** `qemu-4-0-config-size`, default off: always expose the 16-byte config. */
  readonly qemu40ConfigSize?: boolean;
  /** `free-page-hint-postcopy` (livemig): see postcopy-policy.ts. Default 'refuse'. */
  readonly freePageHintPostcopy?: FreePageHintPostcopyPolicy;
  /** Receiver of hint ranges; default drops them. */
  readonly hintSink?: HintSink;
  /** Receiver of inflated and reported ranges; default drops them. */
  readonly discardSink?: DiscardSink;
}

export type BalloonQueueName = 'inflate' | 'deflate' | 'stats' | 'free-page' | 'reporting';

export interface BalloonQueueInfo {
  readonly name: BalloonQueueName;
  /** Dense index, as QEMU and Linux number the queues. */
  readonly index: number;
  /** Queue size QEMU creates. */
  readonly sizeEntries: number;
}

/** Observable outputs that are not queue effects, in the order they happened. */
export type BalloonEvent =
  /** A config-change interrupt was raised (only with DRIVER_OK). */
  | { readonly kind: 'config-change'; readonly generation: number }
  /** QMP BALLOON_CHANGE: the driver changed `actual`; value is ram − actual × 4 KiB. */
  | { readonly kind: 'balloon-change'; readonly actualBytes: number }
  /** The device hit a guest protocol violation and stopped processing (virtio_error). */
  | { readonly kind: 'broken'; readonly error: DeviceError };

/** Context of a precopy notifier call (inputs QEMU reads from globals). */
export interface PrecopyNotifyContext {
  /** Whether the VM is running (vdev->vm_running). */
  readonly vmRunning: boolean;
  /** Whether migration capability postcopy-ram is enabled. */
  readonly postcopyRam: boolean;
}

/** The device fields that travel in migration (besides the queues' own state). */
export interface BalloonDeviceFields {
  /** num_pages: requested balloon size in 4 KiB pages. */
  readonly numPages: number;
  /** actual: pages the driver reports in the balloon. */
  readonly actualPages: number;
  /** free_page_hint_cmd_id and free_page_hint_status. */
  readonly hint: HintState;
  /** poison_val. */
  readonly poisonVal: number;
  /** Negotiated (guest) features, all 64 bits. */
  readonly negotiatedFeatures: bigint;
}

/** The device-specific features offered: the properties' bits plus STATS_VQ (always). */
export function balloonOfferedFeatures(options: BalloonOptions): bigint {
  let features = featureBit(C.VIRTIO_BALLOON_F_STATS_VQ);
  if (options.deflateOnOom ?? false) features |= featureBit(C.VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
  if (options.freePageHint ?? false) features |= featureBit(C.VIRTIO_BALLOON_F_FREE_PAGE_HINT);
  if (options.pagePoison ?? true) features |= featureBit(C.VIRTIO_BALLOON_F_PAGE_POISON);
  if (options.freePageReporting ?? false) features |= featureBit(C.VIRTIO_BALLOON_F_REPORTING);
  return features;
}

/** Config size: 16 with page-poison offered (or qemu-4-0-config-size), 12 with only free-page-hint, else 8. */
export function balloonConfigSizeBytes(options: BalloonOptions): number {
  if ((options.qemu40ConfigSize ?? false) || (options.pagePoison ?? true)) return 16;
  if (options.freePageHint ?? false) return 12;
  return 8;
}

/** The queues QEMU creates, densely numbered: inflate, deflate, stats, [free page], [reporting]. */
export function balloonQueueLayout(options: BalloonOptions): BalloonQueueInfo[] {
  const queues: BalloonQueueInfo[] = [];
  const add = (name: BalloonQueueName, sizeEntries: number): void => {
    queues.push({ name, index: queues.length, sizeEntries });
  };
  add('inflate', C.BALLOON_INFLATE_QUEUE_SIZE);
  add('deflate', C.BALLOON_DEFLATE_QUEUE_SIZE);
  add('stats', C.BALLOON_STATS_QUEUE_SIZE);
  if (options.freePageHint ?? false) add('free-page', C.BALLOON_FREE_PAGE_QUEUE_SIZE);
  if (options.freePageReporting ?? false) add('reporting', C.BALLOON_REPORTING_QUEUE_SIZE);
  return queues;
}

/**
 * The config bytes a driver reads (QEMU get_config), little-endian, `sizeBytes` long:
 * num_pages, actual, the command-id value for the hint status, poison_val.
 */
export function encodeBalloonConfig(
  fields: { numPages: number; actualPages: number; cmdIdValue: number; poisonVal: number },
  sizeBytes: number,
): Uint8Array {
  const full = new Uint8Array(C.BALLOON_CONFIG_SIZE_MAX_BYTES);
  const view = new DataView(full.buffer);
  view.setUint32(C.BALLOON_CONFIG_NUM_PAGES_OFFSET, fields.numPages >>> 0, true);
  view.setUint32(C.BALLOON_CONFIG_ACTUAL_OFFSET, fields.actualPages >>> 0, true);
  view.setUint32(C.BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID_OFFSET, fields.cmdIdValue >>> 0, true);
  view.setUint32(C.BALLOON_CONFIG_POISON_VAL_OFFSET, fields.poisonVal >>> 0, true);
  return full.slice(0, sizeBytes);
}

/** The driver-writable fields of a config image (missing bytes read as zero). */
export function decodeBalloonConfigWrite(config: Uint8Array): { actualPages: number; poisonVal: number } {
  const full = new Uint8Array(C.BALLOON_CONFIG_SIZE_MAX_BYTES);
  full.set(config.subarray(0, C.BALLOON_CONFIG_SIZE_MAX_BYTES));
  const view = new DataView(full.buffer);
  return {
    actualPages: view.getUint32(C.BALLOON_CONFIG_ACTUAL_OFFSET, true),
    poisonVal: view.getUint32(C.BALLOON_CONFIG_POISON_VAL_OFFSET, true),
  };
}
