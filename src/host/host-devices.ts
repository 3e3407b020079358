/**
 * The devices of a real-mode VM (a virtio-balloon and a virtio-mem device, both optional),
 * adapted to the engines' narrow hooks (engine-types.ts SourceHooks and DestHooks); the engines
 * never see a device.
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
 * virtio-mem (QEMU 7.2, docs/real-mode.md): the guest's driver plugs blocks up to
 * requested-size while the guest runs. When an outgoing migration starts, the device answers
 * BUSY until it ends, and the unplugged blocks at that moment are the source's skip pages (they
 * are never sent, as QEMU's RamDiscardManager arranges). The device's vmsd travels in section
 * `0000:00:03.0/virtio-mem`, saved before the balloon (MIG_PRI_VIRTIO_MEM); the destination
 * checks the sanity block against its own properties (QEMU's "Property '...' changed" texts)
 * and the bitmap against its geometry, and its unplugged pages are placed as local zero pages
 * instead of being requested in postcopy.
 *
 * What it deliberately doesn't do: restore the split queues on the destination. The guest's
 * driver state (ring positions, held hint blocks, the blocks the virtio-mem driver plugged)
 * lives in the source process's guest model, not in guest RAM, so it cannot travel; a
 * destination's devices therefore have no driver, and `query-balloon` and `balloon` there act
 * on the device alone. The virtio-mem section is the device vmsd without QEMU's generic virtio
 * wrapper (see sim/device-sections.ts).
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
import { VirtioMemDevice } from '../devices/virtio-mem/virtio-mem-device.ts';
import { VirtioMemVirtio } from '../devices/virtio-mem/virtio-mem-queues.ts';
import { decodeVirtioMemDevicePayload, encodeVirtioMemDevicePayload } from '../devices/virtio-mem/virtio-mem-vmstate.ts';
import { ByteReader } from '../lib/bytes.ts';
import { RangeTable } from '../lib/range-table.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { VIRTIO_MEM_SECTION_IDSTR } from '../sim/device-sections.ts';
import type { BalloonSpec, VirtioMemSpec } from './vm-args.ts';

/**
 * What `query-memory-devices` reports of a virtio-mem device (QAPI VirtioMEMDeviceInfo; QEMU
 * 7.2 names the memdev by its QOM path, `/objects/ID`). livemig's memaddr is the end of boot
 * RAM; QEMU's q35 puts device memory at 4 GiB.
 */
export interface VirtioMemInfo {
  readonly id: string | null;
  readonly memaddr: number;
  readonly 'requested-size': number;
  readonly size: number;
  readonly 'max-size': number;
  readonly 'block-size': number;
  readonly node: number;
  readonly memdev: string;
}

/** Guest-physical byte ranges as page ranges. */
function pagesOf(bytes: RangeTable): RangeTable {
  const pages = new RangeTable();
  for (const r of bytes) pages.add(Math.floor(r.start / TARGET_PAGE_SIZE), Math.ceil(r.end / TARGET_PAGE_SIZE));
  return pages;
}

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
  /** The virtio-mem device, once built (null without `-device virtio-mem-pci`). */
  virtioMem: VirtioMemVirtio | null = null;
  private readonly spec: BalloonSpec | null;
  private readonly virtioMemSpec: VirtioMemSpec | null;
  /** Source: unplugged pages when the outgoing migration started (never sent), or null. */
  private unpluggedAtStart: RangeTable | null = null;
  /** Destination: unplugged pages of the loaded virtio-mem state (zero-filled locally). */
  private loadedUnplugged: RangeTable | null = null;
  private readonly ramSizeBytes: number;
  private readonly callbacks: HostDeviceCallbacks;
  /** Capability postcopy-ram of the outgoing migration (the notifier reads it). */
  postcopyRam = false;

  constructor(spec: BalloonSpec | null, ramSizeBytes: number, callbacks: HostDeviceCallbacks, virtioMem: VirtioMemSpec | null = null) {
    this.spec = spec;
    this.virtioMemSpec = virtioMem;
    this.ramSizeBytes = ramSizeBytes;
    this.callbacks = callbacks;
  }

  /** Builds the devices on guest memory (the guest model's dirty-tracking memory). */
  build(memory: GuestMemory): GuestDevices {
    const spec = this.spec;
    const vmem = this.virtioMemSpec;
    if (vmem !== null) {
      const device = new VirtioMemDevice({
        addrBytes: vmem.addrBytes,
        regionSizeBytes: vmem.regionSizeBytes,
        blockSizeBytes: vmem.blockSizeBytes,
        requestedSizeBytes: vmem.requestedSizeBytes,
      });
      this.virtioMem = new VirtioMemVirtio(memory, device);
    }
    if (spec !== null) {
      const device = new BalloonDevice({
        ramSizeBytes: this.ramSizeBytes,
        freePageHint: spec.freePageHint,
        freePageHintPostcopy: spec.postcopyPolicy,
        hintSink: { onHint: (gpa, lengthBytes, cmdId) => this.onHint(gpa, lengthBytes, cmdId) },
      });
      this.balloon = new BalloonVirtio(memory, device);
    }
    return { ...(this.balloon === null ? {} : { balloon: this.balloon }), ...(this.virtioMem === null ? {} : { virtioMem: this.virtioMem }) };
  }

  private onHint(gpa: number, lengthBytes: number, cmdId: number): void {
    const { startPage, pageCount } = hintedPages(gpa, lengthBytes);
    if (pageCount > 0) this.callbacks.onHint(startPage, pageCount, cmdId);
  }

  /** Device work due now (the free page queue while hinting runs), then its events. */
  poll(nowNs: number): void {
    this.virtioMem?.poll(nowNs);
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

  /** `query-memory-devices`' data for the virtio-mem device, or null without one. */
  virtioMemInfo(): VirtioMemInfo | null {
    const vmem = this.virtioMem;
    const spec = this.virtioMemSpec;
    if (vmem === null || spec === null) return null;
    const d = vmem.device;
    return {
      id: spec.id, memaddr: d.addrBytes, 'requested-size': d.requestedSizeBytes, size: d.pluggedSizeBytes,
      'max-size': d.regionSizeBytes, 'block-size': d.blockSizeBytes, node: d.nodeId, memdev: `/objects/${spec.memdev}`,
    };
  }

  /**
   * `qom-set ID requested-size BYTES` (not in livemig's QMP schema yet): null when set, or the
   * refusal with QEMU 7.2's qom-set text. The driver plugs or unplugs towards the new size.
   */
  setVirtioMemRequestedSize(bytes: number): string | null {
    const vmem = this.virtioMem;
    if (vmem === null || this.virtioMemSpec === null) return 'no virtio-mem device';
    const { blockSizeBytes, regionSizeBytes } = vmem.device;
    if (bytes % blockSizeBytes !== 0) return `'requested-size' has to be multiples of 'block-size' (0x${blockSizeBytes.toString(16)})`;
    if (bytes > regionSizeBytes) return `'requested-size' cannot exceed the memory backend size(0x${regionSizeBytes.toString(16)})`;
    return vmem.setRequestedSize(bytes)?.message ?? null;
  }

  /**
   * An outgoing migration starts (true) or reached a final status (false): virtio-mem answers
   * BUSY meanwhile (QEMU: while migration is not idle), so the unplugged pages taken now hold.
   */
  setSourceMigrating(migrating: boolean): void {
    const vmem = this.virtioMem;
    if (vmem === null) return;
    vmem.device.migrationBusy = migrating;
    if (migrating) this.unpluggedAtStart = pagesOf(vmem.device.unpluggedRanges());
  }

  // ---- SourceHooks --------------------------------------------------------------------------

  precopyNotify(reason: PrecopyNotifyReason, vmRunning: boolean): void {
    this.balloon?.precopyNotify(PRECOPY_REASONS[reason], { vmRunning, postcopyRam: this.postcopyRam });
    this.deliverEvents();
  }

  /** The pages the source never sends: virtio-mem's unplugged blocks (see setSourceMigrating). */
  skipPages(): RangeTable | null {
    return this.unpluggedAtStart;
  }

  saveDevices(): DeviceSectionBlob[] {
    // virtio-mem first: MIG_PRI_VIRTIO_MEM sorts it before the default-priority balloon.
    const blobs: DeviceSectionBlob[] = [];
    if (this.virtioMem !== null) {
      const payload = encodeVirtioMemDevicePayload(this.virtioMem.device);
      blobs.push({ idstr: VIRTIO_MEM_SECTION_IDSTR, instanceId: 0, versionId: DEVICE_SECTION_VERSION, payload });
    }
    const balloon = this.balloon;
    if (balloon === null) return blobs;
    balloon.preSave();
    const core = balloon.core.saveState();
    const state = saveBalloonState(balloon.device, core.queues.map((q) => q?.lastAvailIdx ?? 0));
    const payload = encodeVirtioBalloonSection(balloon.device, state, {
      status: core.status,
      isr: 0,
      queueSel: 0,
      descGpa: core.queues.map((q) => q?.layout.descGpa ?? 0),
    });
    blobs.push({ idstr: BALLOON_SECTION_IDSTR, instanceId: 0, versionId: DEVICE_SECTION_VERSION, payload });
    return blobs;
  }

  // ---- DestHooks ----------------------------------------------------------------------------

  /** Tells the destination engine where device payloads end. */
  deviceDecoder(): DeviceSectionDecoder {
    return new SimDeviceDecoder();
  }

  loadDevice(blob: DeviceSectionBlob): string | null {
    if (blob.idstr === VIRTIO_MEM_SECTION_IDSTR) return this.loadVirtioMem(blob.payload);
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

  private loadVirtioMem(payload: Uint8Array): string | null {
    const target = this.virtioMem;
    if (target === null) return `no virtio-mem device for section ${VIRTIO_MEM_SECTION_IDSTR}`;
    try {
      target.device.restoreState(decodeVirtioMemDevicePayload(new ByteReader(payload), target.device));
      this.loadedUnplugged = pagesOf(target.device.unpluggedRanges());
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** The destination's unplugged pages once the virtio-mem state is loaded: never requested. */
  localZeroPages(): RangeTable | null {
    return this.loadedUnplugged;
  }

  /** The destination's postcopy notifier: the `refuse` policy's veto text, or null. */
  postcopyNotify(reason: PostcopyNotifyReason): string | null {
    return this.balloon?.device.onPostcopyNotify(POSTCOPY_REASONS[reason])?.message ?? null;
  }
}
