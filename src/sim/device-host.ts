/**
 * The host side of the simulated machine's devices, on both ends of the migration: a
 * virtio-balloon and a virtio-mem device per side, each on real split queues
 * (BalloonVirtio, VirtioMemVirtio), adapted to the narrow hooks the engines take
 * (engine-types.ts SourceHooks and DestHooks). The engines never see a device.
 *
 * Source: the precopy notifier chain drives the balloon's free page hinting; hints go from
 * the device's HintSink to the world (which applies them to the source engine); virtio-mem's
 * unplugged ranges are the pages never to send; at the switchover the devices are saved into
 * sections (device-sections.ts), the balloon after its `preSave` (the `track` policy's DONE).
 *
 * Kicks: with the scenario's kick delay (`devices.balloon.kick-delay`) the balloons run in
 * deferred mode and their queued work runs at most once per delay (QEMU's iothread), so hints
 * can reach the source late; `poll(..., force)` runs it at once (the world does at the source's
 * postcopy-active, before vm_stop).
 *
 * Destination: sections are loaded into fresh devices built on the destination's memory;
 * the balloon's `postLoad` runs, and a loaded DONE is delivered to the guest's driver as the
 * config interrupt the source raised for it (QEMU migrates that pending interrupt in the ISR);
 * the postcopy notifier lets the `refuse` policy veto; virtio-mem's unplugged ranges are
 * zero-filled locally instead of requested. Hints the destination balloon takes (a round the
 * guest was in at the switch) are counted and ignored, as QEMU's are on a host with no outgoing
 * migration (docs/free-page-hint-and-postcopy.md says why `track` does not use them either).
 *
 * The guest's drivers hold SwitchablePorts; `switchPorts('destination')` points them at the
 * destination's devices when the guest starts there, and `activateDestination` finishes the
 * load once the rings are present (postcopy may not have brought them yet).
 *
 * Out of band: the split queues' ring addresses (not in the modelled sections, see
 * device-sections.ts) are handed from the source's cores to the destination's here.
 */
import { BalloonDevice } from '../devices/balloon/balloon-device.ts';
import { BalloonVirtio } from '../devices/balloon/balloon-queues.ts';
import { HintStatus, hintedPages, PostcopyNotifyReason as PostcopyReason, PrecopyNotifyReason as PrecopyReason } from '../devices/balloon/free-page-hint.ts';
import { loadBalloonState, saveBalloonState } from '../devices/balloon/balloon-vmstate.ts';
import { decodeVirtioBalloonSection, encodeVirtioBalloonSection } from '../devices/balloon/virtio-section.ts';
import type { FreePageHintPostcopyPolicy } from '../devices/balloon/postcopy-policy.ts';
import type { VirtioCoreState } from '../devices/virtio/device-core.ts';
import { VirtioMemDevice } from '../devices/virtio-mem/virtio-mem-device.ts';
import { VirtioMemVirtio } from '../devices/virtio-mem/virtio-mem-queues.ts';
import { decodeVirtioMemDevicePayload, encodeVirtioMemDevicePayload } from '../devices/virtio-mem/virtio-mem-vmstate.ts';
import type { DeviceSectionBlob, PostcopyNotifyReason, PrecopyNotifyReason } from '../core/engine-types.ts';
import type { GuestDevices } from '../guest/guest.ts';
import type { VirtioPort } from '../guest/drivers/virtio-port.ts';
import { ByteReader } from '../lib/bytes.ts';
import { RangeTable } from '../lib/range-table.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { BALLOON_SECTION_IDSTR, DEVICE_SECTION_VERSION, SimDeviceDecoder, VIRTIO_MEM_SECTION_IDSTR } from './device-sections.ts';
import { SwitchablePort } from './switchable-port.ts';

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

/** The machine's devices as the scenario configures them. */
export interface DeviceHostConfig {
  /** Guest RAM in bytes, boot memory plus the virtio-mem region. */
  readonly ramSizeBytes: number;
  readonly balloon: {
    readonly freePageHint: boolean;
    readonly postcopyPolicy: FreePageHintPostcopyPolicy;
    /** Delay from a driver kick to the host processing it (QEMU's iothread); 0: inside the kick. */
    readonly kickDelayNs?: number;
    /** Stale-page race faults of the source device (BalloonDevice.hintFaults), if any. */
    readonly hintFaults?: BalloonDevice['hintFaults'];
  } | null;
  readonly virtioMem: { readonly addrBytes: number; readonly regionBytes: number; readonly pluggedBytes: number; readonly blockBytes: number } | null;
  /** Capability postcopy-ram (the balloon's notifier reads it). */
  readonly postcopyRam: boolean;
  /** A hint reached the source: pages [startPage, startPage + pageCount) in round cmdId. */
  onHint(startPage: number, pageCount: number, cmdId: number): void;
}

/** One device pair (source and destination) with the guest's port. */
interface Pair<D> {
  readonly source: D;
  destination: D | null;
  readonly port: SwitchablePort;
}

function pagesOf(bytes: RangeTable): RangeTable {
  const pages = new RangeTable();
  for (const r of bytes) pages.add(Math.floor(r.start / TARGET_PAGE_SIZE), Math.ceil(r.end / TARGET_PAGE_SIZE));
  return pages;
}

export class DeviceHost {
  readonly config: DeviceHostConfig;
  /** The balloon on both sides, once the guest built the source's. */
  private balloon: Pair<BalloonVirtio> | null = null;
  /** virtio-mem on both sides. */
  private virtioMem: Pair<VirtioMemVirtio> | null = null;
  /** Ring layouts of the source's cores at save time, by section idstr (out of band). */
  private readonly savedCores = new Map<string, VirtioCoreState>();
  /** Unplugged pages at the start of the migration (they cannot change while it runs). */
  private unpluggedAtStart: RangeTable | null = null;
  /** The destination's unplugged pages, once its virtio-mem state is loaded. */
  private destinationUnplugged: RangeTable | null = null;
  /** Hint status the destination balloon loaded, or null before. */
  loadedHintStatus: number | null = null;
  /** Queue states loaded from sections, applied by `activateDestination` (they read the rings). */
  private readonly pendingCores: Array<{
    readonly core: BalloonVirtio['core'];
    readonly idstr: string;
    readonly lastAvailIdx: readonly number[] | null;
    /** Re-applies the device's own state: restoring a core resets its device first. */
    readonly reapply: () => void;
  }> = [];
  /** Whether the destination's devices were activated. */
  private activated = false;
  /** Per side: when the balloon's deferred work may run next (kick delay). */
  private readonly balloonPollAtNs = { source: 0, destination: 0 };
  /** Hints the destination balloon took during incoming migration (ignored: see newBalloon). */
  destinationHints = 0;

  constructor(config: DeviceHostConfig) {
    this.config = config;
  }

  /** The guest's `devices` option: builds the source devices on the guest's memory. */
  guestDevices(memory: GuestMemory): GuestDevices {
    const out: { balloon?: VirtioPort; virtioMem?: VirtioPort } = {};
    const { balloon, virtioMem } = this.config;
    if (balloon !== null) {
      const device = this.newBalloon(true);
      if (balloon.hintFaults !== undefined) device.hintFaults = balloon.hintFaults;
      const source = new BalloonVirtio(memory, device, this.balloonOptions());
      this.balloon = { source, destination: null, port: new SwitchablePort(source) };
      out.balloon = this.balloon.port;
    }
    if (virtioMem !== null) {
      const source = new VirtioMemVirtio(memory, this.newVirtioMem());
      this.virtioMem = { source, destination: null, port: new SwitchablePort(source) };
      out.virtioMem = this.virtioMem.port;
    }
    return out;
  }

  /** Builds the destination's devices on its memory (before any section arrives). */
  buildDestination(memory: GuestMemory): void {
    if (this.balloon !== null) this.balloon.destination = new BalloonVirtio(memory, this.newBalloon(false), this.balloonOptions());
    if (this.virtioMem !== null) {
      const device = this.newVirtioMem();
      device.migrationBusy = true; // incoming postcopy answers BUSY too
      this.virtioMem.destination = new VirtioMemVirtio(memory, device);
    }
  }

  private newBalloon(source: boolean): BalloonDevice {
    const b = this.config.balloon!;
    return new BalloonDevice({
      ramSizeBytes: this.config.ramSizeBytes,
      freePageHint: b.freePageHint,
      freePageHintPostcopy: b.postcopyPolicy,
      // QEMU: a hint on a host with no outgoing migration is a no-op. The destination's are
      // counted and ignored: its incoming postcopy cannot tell the source (no such message in
      // QEMU's protocol), and zero-filling them locally would race the source's push of the
      // same pages (docs/free-page-hint-and-postcopy.md).
      hintSink: source
        ? { onHint: (gpa, lengthBytes, cmdId) => this.onHint(gpa, lengthBytes, cmdId) }
        : { onHint: () => void this.destinationHints++ },
    });
  }

  private balloonOptions(): { kickMode: 'immediate' | 'deferred' } {
    return { kickMode: (this.config.balloon?.kickDelayNs ?? 0) > 0 ? 'deferred' : 'immediate' };
  }

  private newVirtioMem(): VirtioMemDevice {
    const v = this.config.virtioMem!;
    return new VirtioMemDevice({ addrBytes: v.addrBytes, regionSizeBytes: v.regionBytes, blockSizeBytes: v.blockBytes, requestedSizeBytes: v.pluggedBytes });
  }

  private onHint(gpa: number, lengthBytes: number, cmdId: number): void {
    const { startPage, pageCount } = hintedPages(gpa, lengthBytes);
    if (pageCount > 0) this.config.onHint(startPage, pageCount, cmdId);
  }

  /** The device decoder the destination engine needs. */
  deviceDecoder(): SimDeviceDecoder {
    return new SimDeviceDecoder();
  }

  /** Device work due on `side` (deferred kicks, the free page queue while hinting runs). */
  poll(side: 'source' | 'destination', nowNs: number, force = false): void {
    const balloon = side === 'source' ? this.balloon?.source : this.balloon?.destination;
    const delay = this.config.balloon?.kickDelayNs ?? 0;
    if (balloon !== undefined && balloon !== null && (force || nowNs >= this.balloonPollAtNs[side])) {
      balloon.poll(nowNs);
      this.balloonPollAtNs[side] = nowNs + delay;
    }
    const mem = side === 'source' ? this.virtioMem?.source : this.virtioMem?.destination;
    mem?.poll(nowNs);
  }

  /** A migration starts (true) or ended on the source (false): virtio-mem answers BUSY meanwhile. */
  setSourceMigrating(migrating: boolean): void {
    if (this.virtioMem !== null) this.virtioMem.source.device.migrationBusy = migrating;
    if (migrating) this.unpluggedAtStart = this.virtioMem === null ? null : pagesOf(this.virtioMem.source.device.unpluggedRanges());
  }

  /** Unplugged pages when the migration started (null without virtio-mem). */
  unpluggedPages(): RangeTable | null {
    return this.unpluggedAtStart;
  }

  // ---- SourceHooks ------------------------------------------------------------------------

  precopyNotify(reason: PrecopyNotifyReason, vmRunning: boolean): void {
    this.balloon?.source.precopyNotify(PRECOPY_REASONS[reason], { vmRunning, postcopyRam: this.config.postcopyRam });
  }

  skipPages(): RangeTable | null {
    return this.unpluggedAtStart;
  }

  saveDevices(): DeviceSectionBlob[] {
    const blobs: DeviceSectionBlob[] = [];
    if (this.virtioMem !== null) {
      const core = this.virtioMem.source.core;
      this.savedCores.set(VIRTIO_MEM_SECTION_IDSTR, core.saveState());
      const payload = encodeVirtioMemDevicePayload(this.virtioMem.source.device);
      blobs.push({ idstr: VIRTIO_MEM_SECTION_IDSTR, instanceId: 0, versionId: DEVICE_SECTION_VERSION, payload });
    }
    if (this.balloon !== null) {
      const source = this.balloon.source;
      source.preSave();
      const core = source.core.saveState();
      this.savedCores.set(BALLOON_SECTION_IDSTR, core);
      const state = saveBalloonState(source.device, core.queues.map((q) => q?.lastAvailIdx ?? 0));
      const payload = encodeVirtioBalloonSection(source.device, state, {
        status: core.status,
        isr: 0,
        queueSel: 0,
        descGpa: core.queues.map((q) => q?.layout.descGpa ?? 0),
      });
      blobs.push({ idstr: BALLOON_SECTION_IDSTR, instanceId: 0, versionId: DEVICE_SECTION_VERSION, payload });
    }
    return blobs;
  }

  // ---- DestHooks --------------------------------------------------------------------------

  loadDevice(blob: DeviceSectionBlob): string | null {
    try {
      if (blob.idstr === BALLOON_SECTION_IDSTR) return this.loadBalloon(blob.payload);
      if (blob.idstr === VIRTIO_MEM_SECTION_IDSTR) return this.loadVirtioMem(blob.payload);
      return null; // timer, globalstate: nothing to do in the simulated machine
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  private loadBalloon(payload: Uint8Array): string | null {
    const pair = this.balloon;
    if (pair === null || pair.destination === null) return `no virtio-balloon device for section ${BALLOON_SECTION_IDSTR}`;
    const target = pair.destination;
    const base = saveBalloonState(target.device, target.device.queues.map(() => 0));
    const decoded = decodeVirtioBalloonSection(payload, target.device, base);
    if (!this.savedCores.has(BALLOON_SECTION_IDSTR)) return `no queue layout for section ${BALLOON_SECTION_IDSTR}`;
    const reapply = (): void => {
      loadBalloonState(target.device, decoded.state);
      target.device.restoreConfigBytes(decoded.config);
    };
    reapply(); // refuses a bad state now, while the load can still fail
    this.loadedHintStatus = decoded.state.freePageHintStatus;
    this.pendingCores.push({ core: target.core, idstr: BALLOON_SECTION_IDSTR, lastAvailIdx: decoded.state.lastAvailIdx, reapply });
    return null;
  }

  private loadVirtioMem(payload: Uint8Array): string | null {
    const pair = this.virtioMem;
    if (pair === null || pair.destination === null) return `no virtio-mem device for section ${VIRTIO_MEM_SECTION_IDSTR}`;
    const target = pair.destination;
    const state = decodeVirtioMemDevicePayload(new ByteReader(payload), target.device);
    const reapply = (): void => target.device.restoreState(state);
    reapply();
    if (!this.savedCores.has(VIRTIO_MEM_SECTION_IDSTR)) return `no queue layout for section ${VIRTIO_MEM_SECTION_IDSTR}`;
    this.destinationUnplugged = pagesOf(target.device.unpluggedRanges());
    this.pendingCores.push({ core: target.core, idstr: VIRTIO_MEM_SECTION_IDSTR, lastAvailIdx: null, reapply });
    return null;
  }

  /** Loads the out-of-band ring layouts, with the section's last_avail_idx when it has them. */
  private restoreCore(core: BalloonVirtio['core'], idstr: string, lastAvailIdx: readonly number[] | null): string | null {
    const saved = this.savedCores.get(idstr);
    if (saved === undefined) return `no queue layout for section ${idstr}`;
    const queues = saved.queues.map((q, i) => (q === null ? null : { layout: q.layout, lastAvailIdx: lastAvailIdx?.[i] ?? q.lastAvailIdx }));
    return core.restoreState({ ...saved, queues })?.message ?? null;
  }

  postcopyNotify(reason: PostcopyNotifyReason): string | null {
    const target = this.balloon?.destination;
    if (target === undefined || target === null) return null;
    return target.device.onPostcopyNotify(POSTCOPY_REASONS[reason])?.message ?? null;
  }

  localZeroPages(): RangeTable | null {
    return this.destinationUnplugged;
  }

  // ---- the guest moves ---------------------------------------------------------------------

  /**
   * Points the guest's drivers at `side`'s devices (the destination's when the guest starts
   * there), so the source's devices can no longer interrupt it.
   */
  switchPorts(side: 'source' | 'destination'): void {
    for (const pair of [this.balloon, this.virtioMem]) {
      if (pair === null) continue;
      const next = side === 'source' ? pair.source : pair.destination;
      if (next !== null && pair.port.current !== next) pair.port.switchTo(next);
    }
  }

  /**
   * Finishes loading the destination's devices once their ring pages are present (QEMU's
   * virtio_load reads the rings; in postcopy those reads fault like any other): the queue
   * states, the devices' status and features, the balloon's postLoad, and a loaded DONE
   * delivered to the driver (see the module comment). Returns the first error, or null.
   */
  activateDestination(): string | null {
    if (this.activated) return null;
    this.activated = true;
    for (const pending of this.pendingCores) {
      const error = this.restoreCore(pending.core, pending.idstr, pending.lastAvailIdx);
      if (error !== null) return `${pending.idstr}: ${error}`;
      pending.reapply();
    }
    const mem = this.virtioMem?.destination;
    if (mem !== undefined && mem !== null) {
      mem.device.setDriverStatus(mem.core.status);
      mem.device.setNegotiatedFeatures(mem.core.negotiatedFeatures);
    }
    const target = this.balloon?.destination;
    if (target !== undefined && target !== null) {
      target.device.setDriverStatus(target.core.status);
      target.postLoad();
      if (this.loadedHintStatus === HintStatus.Done && target.device.freePageHintPostcopy !== 'track') target.core.notifyConfigChange();
    }
    return null;
  }

  /** Whether the source balloon is in START of round `cmdId` (livemig's stale-id guard). */
  sourceHintAccepts(cmdId: number): boolean {
    const hint = this.balloon?.source.device.hint;
    return hint !== undefined && hint.status === HintStatus.Start && hint.cmdId === cmdId;
  }

  /** The source balloon's hint status now (for reports), or null without a balloon. */
  sourceHintStatus(): number | null {
    return this.balloon?.source.device.hint.status ?? null;
  }
}
