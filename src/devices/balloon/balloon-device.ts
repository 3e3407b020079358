/**
 * The device side of virtio-balloon, modelled on QEMU 7.2 (hw/virtio/virtio-balloon.c):
 * features, config space, queue layout, inflate/deflate, guest statistics, free page hinting
 * driven by precopy notifiers, free page reporting, and the postcopy policy of DESIGN §2.
 *
 * The device is queue-agnostic: `handle*` methods take one popped element plus guest memory
 * and return ElementEffects for whoever owns the queues. Outputs that are not queue effects
 * are recorded on the device: config-change interrupts (a counter plus `takeEvents()`),
 * BALLOON_CHANGE values, hint ranges (to the HintSink) and discards (to the DiscardSink).
 *
 * Guest RAM is modelled as one flat RAM block [0, ramSizeBytes), so a gpa is also its
 * RAMBlock offset; PFNs or ranges outside it are skipped as QEMU skips non-RAM addresses.
 * The virtio core (status register, feature negotiation) lives elsewhere and forwards the
 * driver status and negotiated features here; config interrupts need DRIVER_OK as in QEMU.
 */
import { GuestMemoryError, type GuestMemory } from '../../memory/guest-memory.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, hasFeature } from '../virtio/constants.ts';
import { DeviceError } from '../device-error.ts';
import type { DiscardSink, ElementEffect, QueueElement } from '../element-io.ts';
import { NULL_DISCARD_SINK } from '../element-io.ts';
import { readCmdId, readPfns, readStats } from './balloon-buffers.ts';
import * as C from './constants.ts';
import {
  HintStatus,
  INITIAL_HINT_STATE,
  configCmdIdValue,
  hintInputForReason,
  hintsAccepted,
  stepHint,
  type HintInput,
  type HintState,
  type PostcopyNotifyReason,
} from './free-page-hint.ts';
import {
  NULL_HINT_SINK,
  balloonConfigSizeBytes,
  balloonOfferedFeatures,
  balloonQueueLayout,
  decodeBalloonConfigWrite,
  encodeBalloonConfig,
  type BalloonDeviceFields,
  type BalloonEvent,
  type BalloonOptions,
  type BalloonQueueInfo,
  type BalloonQueueName,
  type HintSink,
  type PrecopyNotifyContext,
} from './balloon-types.ts';
import {
  DEFAULT_FREE_PAGE_HINT_POSTCOPY_POLICY,
  FREE_PAGE_HINT_POSTCOPY_REFUSAL,
  deliversDoneAcrossMigration,
  hintsWithPostcopyRam,
  vetoesPostcopy,
  type FreePageHintPostcopyPolicy,
} from './postcopy-policy.ts';

export class BalloonDevice {
  /** Guest RAM size in bytes; PFNs and ranges beyond it are not RAM. */
  readonly ramSizeBytes: number;
  /** The device-specific features offered (QEMU host_features plus STATS_VQ). */
  readonly offeredFeatures: bigint;
  /** Config space size exposed to the driver: 8, 12 or 16 bytes. */
  readonly configSizeBytes: number;
  /** The free page hint × postcopy policy. */
  readonly freePageHintPostcopy: FreePageHintPostcopyPolicy;
  /** The queues QEMU creates for these properties, densely numbered. */
  readonly queues: readonly BalloonQueueInfo[];
  /** Where hint ranges go. */
  private readonly hintSink: HintSink;
  /** Where inflated and reported pages go. */
  private readonly discardSink: DiscardSink;

  /** Features the driver negotiated (all 64 bits, including transport bits). */
  negotiatedFeatures = 0n;
  /** The driver status register as the virtio core last reported it. */
  driverStatus = 0;
  /** num_pages: requested balloon size in 4 KiB pages. */
  numPages = 0;
  /** actual: pages the driver says are in the balloon. */
  actualPages = 0;
  /** Free page hint command id and status. */
  hint: HintState = INITIAL_HINT_STATE;
  /** poison_val the driver wrote (kept only with PAGE_POISON negotiated). */
  poisonVal = 0;
  /** Whether RAM discards are inhibited (incoming postcopy, discard disabled, background snapshot). */
  discardInhibited = false;
  /** Set by a guest protocol violation; cleared by reset. */
  broken: DeviceError | null = null;
  /** Config-change interrupts raised so far. */
  configInterruptCount = 0;
  /** Config generation counter (bumped with every config interrupt). */
  configGeneration = 0;
  /** Latest guest statistics per tag; BALLOON_STAT_UNSET when not reported. */
  readonly stats: bigint[] = new Array<bigint>(C.VIRTIO_BALLOON_S_NR).fill(C.BALLOON_STAT_UNSET);
  /** When the statistics were last updated (caller-supplied time), or null. */
  statsLastUpdateNs: number | null = null;
  /** The stats element the device holds until it wants fresh statistics. */
  private statsElement: QueueElement | null = null;
  /** The config bytes as last read or written (QEMU vdev->config); migrated as-is. */
  private configShadow: Uint8Array;
  /** Events not yet taken. */
  private events: BalloonEvent[] = [];

  /**
   * Stale-page race faults (issue [10]; the simulator sets them from a scenario's `faults`):
   * `anyStatus` hands hints to migration whatever the hint status (QEMU's gate is START);
   * `doneMidRound` sets DONE (with its config interrupt) right after the first hint of a round,
   * so DONE reaches the driver while it is still allocating blocks to hint. Off: QEMU.
   */
  hintFaults: { readonly anyStatus: boolean; readonly doneMidRound: boolean } = { anyStatus: false, doneMidRound: false };

  constructor(options: BalloonOptions) {
    if (!Number.isSafeInteger(options.ramSizeBytes) || options.ramSizeBytes <= 0 || options.ramSizeBytes % C.BALLOON_PAGE_SIZE_BYTES !== 0) {
      throw new DeviceError('BALLOON_ERR_BAD_OPTION', `RAM size must be a positive multiple of 4 KiB: ${options.ramSizeBytes}`);
    }
    this.ramSizeBytes = options.ramSizeBytes;
    this.offeredFeatures = balloonOfferedFeatures(options);
    this.configSizeBytes = balloonConfigSizeBytes(options);
    this.freePageHintPostcopy = options.freePageHintPostcopy ?? DEFAULT_FREE_PAGE_HINT_POSTCOPY_POLICY;
    this.queues = balloonQueueLayout(options);
    this.hintSink = options.hintSink ?? NULL_HINT_SINK;
    this.discardSink = options.discardSink ?? NULL_DISCARD_SINK;
    this.configShadow = new Uint8Array(this.configSizeBytes);
  }

  /** The dense index of a queue, or null when these properties do not create it. */
  queueIndex(name: BalloonQueueName): number | null {
    return this.queues.find((q) => q.name === name)?.index ?? null;
  }

  /** Whether the driver negotiated feature `bit`. */
  negotiated(bit: number): boolean {
    return hasFeature(this.negotiatedFeatures, bit);
  }

  /** Records the features the virtio core accepted (already masked with what was offered). */
  setNegotiatedFeatures(features: bigint): void {
    this.negotiatedFeatures = features;
  }

  /** Records the driver status register; config interrupts need DRIVER_OK. */
  setDriverStatus(status: number): void {
    this.driverStatus = status;
  }

  /** Removes and returns the events recorded since the last call. */
  takeEvents(): BalloonEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  // ---- config space -------------------------------------------------------------------

  /** The config bytes the driver reads now (QEMU get_config), little-endian. */
  readConfig(): Uint8Array {
    const config = { numPages: this.numPages, actualPages: this.actualPages, cmdIdValue: configCmdIdValue(this.hint), poisonVal: this.poisonVal };
    this.configShadow = encodeBalloonConfig(config, this.configSizeBytes);
    return this.configShadow.slice();
  }

  /**
   * A driver write of `bytes` at `offsetBytes` (QEMU set_config after the transport stored
   * the bytes over the last-read config). A write past the config size is ignored. `actual`
   * is taken from the config; a change emits BALLOON_CHANGE. `poison_val` is kept only with
   * PAGE_POISON negotiated, otherwise it reads back as 0.
   */
  writeConfig(offsetBytes: number, bytes: Uint8Array): void {
    if (offsetBytes < 0 || offsetBytes + bytes.length > this.configSizeBytes) return;
    this.configShadow.set(bytes, offsetBytes);
    const written = decodeBalloonConfigWrite(this.configShadow);
    const oldActual = this.actualPages;
    this.actualPages = written.actualPages;
    if (this.actualPages !== oldActual) this.events.push({ kind: 'balloon-change', actualBytes: this.actualBytes() });
    this.poisonVal = this.negotiated(C.VIRTIO_BALLOON_F_PAGE_POISON) ? written.poisonVal : 0;
  }

  /** The config bytes as the transport last saw them (QEMU vdev->config), for migration. */
  configBytesForMigration(): Uint8Array {
    return this.configShadow.slice();
  }

  /** Restores the transport's config copy from a migration stream (extra bytes dropped). */
  restoreConfigBytes(bytes: Uint8Array): void {
    this.configShadow = new Uint8Array(this.configSizeBytes);
    this.configShadow.set(bytes.subarray(0, this.configSizeBytes));
  }

  // ---- QMP balloon / query-balloon ------------------------------------------------------

  /**
   * QMP `balloon value=targetBytes` (QEMU virtio_balloon_to_target): clamps the target to the
   * RAM size and sets num_pages = (ram − target) / 4 KiB, then raises a config interrupt. A
   * zero target changes nothing; QMP rejects target ≤ 0 before reaching the device.
   */
  balloon(targetBytes: number): void {
    const target = Math.min(targetBytes, this.ramSizeBytes);
    if (target <= 0) return;
    this.numPages = Math.floor((this.ramSizeBytes - target) / C.BALLOON_PAGE_SIZE_BYTES) % 2 ** 32;
    this.notifyConfig();
  }

  /** QMP query-balloon `actual`: the guest's logical RAM size in bytes. */
  actualBytes(): number {
    return this.ramSizeBytes - this.actualPages * C.BALLOON_PAGE_SIZE_BYTES;
  }

  // ---- free page hinting ---------------------------------------------------------------

  /** The source's precopy notifier (QEMU virtio_balloon_free_page_hint_notify). */
  onPrecopyNotify(reason: number, context: PrecopyNotifyContext): void {
    if (!this.negotiated(C.VIRTIO_BALLOON_F_FREE_PAGE_HINT)) return;
    if (context.postcopyRam && !hintsWithPostcopyRam(this.freePageHintPostcopy)) return;
    const input = hintInputForReason(reason, context.vmRunning);
    if (input === 'unknown') {
      this.markBroken('BALLOON_ERR_UNKNOWN_REASON', `virtio_balloon_free_page_hint_notify: ${reason} reason unknown`);
      return;
    }
    if (input !== null) this.applyHint(input);
  }

  /**
   * The destination's postcopy notifier of the seed patch: with free-page-hint on and the
   * 'refuse' policy every reason (in practice PROBE) is vetoed with the patch's error; the
   * caller then fails `migrate-set-capabilities` with "Postcopy is not supported".
   */
  onPostcopyNotify(_reason: PostcopyNotifyReason): DeviceError | null {
    if (!hasFeature(this.offeredFeatures, C.VIRTIO_BALLOON_F_FREE_PAGE_HINT)) return null;
    if (!vetoesPostcopy(this.freePageHintPostcopy)) return null;
    return new DeviceError('BALLOON_ERR_POSTCOPY_REFUSED', FREE_PAGE_HINT_POSTCOPY_REFUSAL);
  }

  /**
   * Whether the free page queue should keep being polled without a kick: QEMU's bottom half
   * busy-polls while hinting is started.
   */
  freePagePollingActive(): boolean {
    return this.hint.status === HintStatus.Start;
  }

  /**
   * One element of the free page queue (QEMU get_free_page_hints): the readable part carries
   * a command id, the writable parts are free ranges applied only while START. The element
   * is always returned with used length 0, also after a short command id breaks the device.
   */
  handleFreePage(memory: GuestMemory, element: QueueElement): ElementEffect[] {
    if (this.broken !== null) return [{ kind: 'unpop', element }];
    return this.guarded(element, () => {
      const cmdId = readCmdId(memory, element);
      if (cmdId === 'short') {
        this.markBroken('BALLOON_ERR_BAD_CMD_ID', 'received an incorrect cmd id');
        return [{ kind: 'push', element, usedLengthBytes: 0 }];
      }
      if (cmdId !== null) this.applyHint({ kind: 'driver-cmd-id', cmdId });
      const started = hintsAccepted(this.hint);
      if (started || this.hintFaults.anyStatus) {
        for (const segment of element.writable) this.hintSink.onHint(segment.gpa, segment.lengthBytes, this.hint.cmdId);
      }
      if (started && this.hintFaults.doneMidRound && element.writable.length > 0) this.applyHint({ kind: 'done' });
      return [{ kind: 'push', element, usedLengthBytes: 0 }];
    });
  }

  // ---- inflate / deflate / stats / reporting --------------------------------------------

  /** An inflate element: each RAM PFN is discarded unless discards are inhibited. */
  handleInflate(memory: GuestMemory, element: QueueElement): ElementEffect[] {
    return this.handlePfns(memory, element, true);
  }

  /** A deflate element: QEMU only advises the host it will need the page again (no state). */
  handleDeflate(memory: GuestMemory, element: QueueElement): ElementEffect[] {
    return this.handlePfns(memory, element, false);
  }

  private handlePfns(memory: GuestMemory, element: QueueElement, inflate: boolean): ElementEffect[] {
    if (this.broken !== null) return [{ kind: 'unpop', element }];
    return this.guarded(element, () => {
      for (const pfn of readPfns(memory, element)) {
        const gpa = pfn * C.BALLOON_PAGE_SIZE_BYTES;
        if (gpa >= this.ramSizeBytes) continue; // Not RAM: QEMU traces a bad address and skips it.
        if (inflate && !this.discardInhibited) this.discardSink.discard(gpa, C.BALLOON_PAGE_SIZE_BYTES);
      }
      return [{ kind: 'push', element, usedLengthBytes: 0 }];
    });
  }

  /**
   * A stats element (QEMU virtio_balloon_receive_stats): a previously held element is
   * returned first, the new one is held, all statistics are reset to unset and the entries
   * with known tags stored. `nowNs` is the caller's clock.
   */
  handleStats(memory: GuestMemory, element: QueueElement, nowNs: number): ElementEffect[] {
    if (this.broken !== null) return [{ kind: 'unpop', element }];
    return this.guarded(element, () => {
      const effects: ElementEffect[] = [];
      if (this.statsElement !== null) effects.push({ kind: 'push', element: this.statsElement, usedLengthBytes: 0 });
      this.statsElement = element;
      this.stats.fill(C.BALLOON_STAT_UNSET);
      for (const entry of readStats(memory, element).entries) {
        if (entry.tag < C.VIRTIO_BALLOON_S_NR) this.stats[entry.tag] = entry.value;
      }
      this.statsLastUpdateNs = nowNs;
      effects.push({ kind: 'hold', element });
      return effects;
    });
  }

  /** The stats poll timer fired: return the held element so the guest refreshes it. */
  pollStats(): ElementEffect | null {
    if (this.statsElement === null || !this.negotiated(C.VIRTIO_BALLOON_F_STATS_VQ)) return null;
    const element = this.statsElement;
    this.statsElement = null;
    return { kind: 'push', element, usedLengthBytes: 0 };
  }

  /**
   * A reporting element (QEMU virtio_balloon_handle_report): each writable range that is
   * page-aligned and inside RAM is discarded, unless discards are inhibited or poison_val is
   * non-zero (the guest expects freed pages to keep the poison pattern). Used length is 0.
   */
  handleReporting(memory: GuestMemory, element: QueueElement): ElementEffect[] {
    void memory; // Reported ranges are not read; the parameter keeps the handler shape uniform.
    if (this.broken !== null) return [{ kind: 'unpop', element }];
    if (!this.discardInhibited && this.poisonVal === 0) {
      for (const { gpa, lengthBytes } of element.writable) {
        if (lengthBytes === 0 || gpa + lengthBytes > this.ramSizeBytes) continue;
        if (gpa % C.BALLOON_PAGE_SIZE_BYTES !== 0 || lengthBytes % C.BALLOON_PAGE_SIZE_BYTES !== 0) continue;
        this.discardSink.discard(gpa, lengthBytes);
      }
    }
    return [{ kind: 'push', element, usedLengthBytes: 0 }];
  }

  // ---- reset and migration hooks -------------------------------------------------------

  /**
   * Device reset (QEMU virtio_reset + virtio_balloon_device_reset): status goes to 0 first,
   * so the hint stop raises no interrupt; a held stats element goes back to the avail ring;
   * poison_val, features and the broken flag are cleared. num_pages and actual survive.
   */
  reset(): ElementEffect[] {
    this.driverStatus = 0;
    if (this.negotiated(C.VIRTIO_BALLOON_F_FREE_PAGE_HINT)) this.applyHint({ kind: 'stop' });
    const effects: ElementEffect[] = [];
    if (this.statsElement !== null) effects.push({ kind: 'unpop', element: this.statsElement });
    this.statsElement = null;
    this.poisonVal = 0;
    this.negotiatedFeatures = 0n;
    this.broken = null;
    return effects;
  }

  /**
   * Called right before the device state is saved. Under 'track' the device sets DONE, so
   * DONE travels even when no VM-stopped bitmap sync happens (a postcopy switch). QEMU has no
   * such hook; for every other policy this does nothing.
   */
  preSave(): void {
    if (!deliversDoneAcrossMigration(this.freePageHintPostcopy)) return;
    if (this.negotiated(C.VIRTIO_BALLOON_F_FREE_PAGE_HINT)) this.applyHint({ kind: 'done' });
  }

  /**
   * Called after the device state was loaded. Under 'track' a loaded DONE raises a config
   * interrupt so the destination guest re-reads the command id and frees its hinted blocks.
   */
  postLoad(): void {
    if (!deliversDoneAcrossMigration(this.freePageHintPostcopy)) return;
    if (this.negotiated(C.VIRTIO_BALLOON_F_FREE_PAGE_HINT) && this.hint.status === HintStatus.Done) this.notifyConfig();
  }

  /** The fields that travel in migration. */
  captureFields(): BalloonDeviceFields {
    return {
      numPages: this.numPages,
      actualPages: this.actualPages,
      hint: this.hint,
      poisonVal: this.poisonVal,
      negotiatedFeatures: this.negotiatedFeatures,
    };
  }

  /** Installs migrated fields (validated by the caller). Raises no interrupts. */
  restoreFields(fields: BalloonDeviceFields): void {
    this.numPages = fields.numPages;
    this.actualPages = fields.actualPages;
    this.hint = fields.hint;
    this.poisonVal = fields.poisonVal;
    this.negotiatedFeatures = fields.negotiatedFeatures;
  }

  // ---- internals -----------------------------------------------------------------------

  private applyHint(input: HintInput): void {
    const step = stepHint(this.hint, input);
    this.hint = step.state;
    if (step.configChanged) this.notifyConfig();
  }

  /** QEMU virtio_notify_config: nothing before DRIVER_OK; otherwise bump generation and interrupt. */
  private notifyConfig(): void {
    if ((this.driverStatus & VIRTIO_CONFIG_S_DRIVER_OK) === 0) return;
    this.configGeneration++;
    this.configInterruptCount++;
    this.events.push({ kind: 'config-change', generation: this.configGeneration });
  }

  /** QEMU virtio_error: mark broken; with VERSION_1 also set NEEDS_RESET and interrupt. */
  private markBroken(code: string, message: string): void {
    const error = new DeviceError(code, message);
    this.broken = error;
    this.events.push({ kind: 'broken', error });
    if (this.negotiated(VIRTIO_F_VERSION_1)) {
      this.driverStatus |= VIRTIO_CONFIG_S_NEEDS_RESET;
      this.notifyConfig();
    }
  }

  /** Runs a handler body; a buffer outside guest memory breaks the device and detaches the element. */
  private guarded(element: QueueElement, body: () => ElementEffect[]): ElementEffect[] {
    try {
      return body();
    } catch (error) {
      if (!(error instanceof GuestMemoryError)) throw error;
      this.markBroken('BALLOON_ERR_BAD_BUFFER', 'virtio: bogus descriptor or out of resources');
      return [{ kind: 'detach', element }];
    }
  }
}
