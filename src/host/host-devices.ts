/**
 * The devices of a real-mode VM (a virtio-balloon, optional), adapted to the engines' narrow
 * hooks (engine-types.ts SourceHooks and DestHooks); the engines never see a device.
 *
 * Source: the precopy notifier chain drives free page hinting; the device's hint sink hands
 * hints to the VM (which applies them to its SourceEngine); at the switchover the balloon is
 * saved into QEMU 7.2's `virtio-balloon` section layout (sim/device-sections.ts, the same one
 * the simulator carries), after its `preSave` (the `track` policy's DONE).
 *
 * Destination: a loaded section restores the device's fields (num_pages, actual, the hint
 * status and command id, features) and its config space; `postLoad` runs. The destination's
 * postcopy notifier lets the `refuse` policy veto postcopy.
 *
 * What it deliberately doesn't do: restore the split queues on the destination. The guest's
 * driver state (ring positions, held hint blocks) lives in the source process's guest model,
 * not in guest RAM, so it cannot travel; a destination's balloon therefore has no driver, and
 * `query-balloon` and `balloon` there act on the device alone. virtio-mem is not in the real
 * shell yet (no pages are skipped or zero-filled locally).
 */
import { BalloonDevice } from '../devices/balloon/balloon-device.ts';
import { BalloonVirtio } from '../devices/balloon/balloon-queues.ts';
import { hintedPages, PostcopyNotifyReason as PostcopyReason, PrecopyNotifyReason as PrecopyReason } from '../devices/balloon/free-page-hint.ts';
import { loadBalloonState, saveBalloonState } from '../devices/balloon/balloon-vmstate.ts';
import { decodeVirtioBalloonSection, encodeVirtioBalloonSection } from '../devices/balloon/virtio-section.ts';
import type { DeviceSectionBlob, PostcopyNotifyReason, PrecopyNotifyReason } from '../core/engine-types.ts';
import type { DeviceSectionDecoder } from '../format/stream-types.ts';
import type { GuestDevices } from '../guest/guest.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { BALLOON_SECTION_IDSTR, DEVICE_SECTION_VERSION, SimDeviceDecoder } from '../sim/device-sections.ts';
import type { BalloonSpec } from './vm-args.ts';

const PRECOPY_REASONS: Record<PrecopyNotifyReason, number> = {
  setup: PrecopyReason.Setup,
  'before-bitmap-sync': PrecopyReason.BeforeBitmapSync,
  'after-bitmap-sync': PrecopyReason.AfterBitmapSync,
  complete: PrecopyReason.Complete,
  cleanup: PrecopyReason.Cleanup,
};

const POSTCOPY_REASONS: Record<PostcopyNotifyReason, PostcopyReason> = {
  probe: PostcopyReason.Probe,
  'inbound-advise': PostcopyReason.InboundAdvise,
  'inbound-listen': PostcopyReason.InboundListen,
  'inbound-end': PostcopyReason.InboundEnd,
};

/** What the devices tell the VM. */
export interface HostDeviceCallbacks {
  /** A free page hint: pages [startPage, startPage + pageCount) in round cmdId. */
  onHint(startPage: number, pageCount: number, cmdId: number): void;
  /** The guest's balloon size changed (QMP BALLOON_CHANGE). */
  onBalloonChange(actualBytes: number): void;
}

export class HostDevices {
  /** The balloon, once built on guest memory (null without `-device virtio-balloon`). */
  balloon: BalloonVirtio | null = null;
  private readonly spec: BalloonSpec | null;
  private readonly ramSizeBytes: number;
  private readonly callbacks: HostDeviceCallbacks;
  /** Capability postcopy-ram of the outgoing migration (the notifier reads it). */
  postcopyRam = false;

  constructor(spec: BalloonSpec | null, ramSizeBytes: number, callbacks: HostDeviceCallbacks) {
    this.spec = spec;
    this.ramSizeBytes = ramSizeBytes;
    this.callbacks = callbacks;
  }

  /** Builds the devices on guest memory (the guest model's dirty-tracking memory). */
  build(memory: GuestMemory): GuestDevices {
    const spec = this.spec;
    if (spec === null) return {};
    const device = new BalloonDevice({
      ramSizeBytes: this.ramSizeBytes,
      freePageHint: spec.freePageHint,
      freePageHintPostcopy: spec.postcopyPolicy,
      hintSink: { onHint: (gpa, lengthBytes, cmdId) => this.onHint(gpa, lengthBytes, cmdId) },
    });
    this.balloon = new BalloonVirtio(memory, device);
    return { balloon: this.balloon };
  }

  private onHint(gpa: number, lengthBytes: number, cmdId: number): void {
    const { startPage, pageCount } = hintedPages(gpa, lengthBytes);
    if (pageCount > 0) this.callbacks.onHint(startPage, pageCount, cmdId);
  }

  /** Device work due now (the free page queue while hinting runs), then its events. */
  poll(nowNs: number): void {
    const balloon = this.balloon;
    if (balloon === null) return;
    balloon.poll(nowNs);
    this.deliverEvents();
  }

  private deliverEvents(): void {
    for (const event of this.balloon?.takeEvents() ?? []) {
      if (event.kind === 'balloon-change') this.callbacks.onBalloonChange(event.actualBytes);
    }
  }

  /** QMP `balloon`; false without a balloon. */
  setBalloonTarget(targetBytes: number): boolean {
    if (this.balloon === null) return false;
    this.balloon.balloon(targetBytes);
    this.deliverEvents();
    return true;
  }

  /** The guest RAM the balloon leaves to the guest, or null without a balloon. */
  balloonActualBytes(): number | null {
    return this.balloon === null ? null : this.balloon.device.actualBytes();
  }

  // ---- SourceHooks --------------------------------------------------------------------------

  precopyNotify(reason: PrecopyNotifyReason, vmRunning: boolean): void {
    this.balloon?.precopyNotify(PRECOPY_REASONS[reason], { vmRunning, postcopyRam: this.postcopyRam });
    this.deliverEvents();
  }

  saveDevices(): DeviceSectionBlob[] {
    const balloon = this.balloon;
    if (balloon === null) return [];
    balloon.preSave();
    const core = balloon.core.saveState();
    const state = saveBalloonState(balloon.device, core.queues.map((q) => q?.lastAvailIdx ?? 0));
    const payload = encodeVirtioBalloonSection(balloon.device, state, {
      status: core.status,
      isr: 0,
      queueSel: 0,
      descGpa: core.queues.map((q) => q?.layout.descGpa ?? 0),
    });
    return [{ idstr: BALLOON_SECTION_IDSTR, instanceId: 0, versionId: DEVICE_SECTION_VERSION, payload }];
  }

  // ---- DestHooks ----------------------------------------------------------------------------

  /** Tells the destination engine where device payloads end. */
  deviceDecoder(): DeviceSectionDecoder {
    return new SimDeviceDecoder(0);
  }

  loadDevice(blob: DeviceSectionBlob): string | null {
    if (blob.idstr !== BALLOON_SECTION_IDSTR) return null; // timer, globalstate
    const target = this.balloon;
    if (target === null) return `no virtio-balloon device for section ${BALLOON_SECTION_IDSTR}`;
    try {
      const base = saveBalloonState(target.device, target.device.queues.map(() => 0));
      const decoded = decodeVirtioBalloonSection(blob.payload, target.device, base);
      loadBalloonState(target.device, decoded.state);
      target.device.restoreConfigBytes(decoded.config);
      target.postLoad();
      this.deliverEvents();
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** The destination's postcopy notifier: the `refuse` policy's veto text, or null. */
  postcopyNotify(reason: PostcopyNotifyReason): string | null {
    return this.balloon?.device.onPostcopyNotify(POSTCOPY_REASONS[reason])?.message ?? null;
  }
}
