/**
 * The transport-independent part of a virtio device (QEMU's VirtIODevice): offered and
 * driver-accepted features, the device status register and its handshake, the device's
 * split queues, `virtio_error` handling, reset, and migration state. Device-specific
 * behaviour (config space, extra feature checks, reset of device state) comes in through
 * `VirtioDeviceHooks`; notifications leave through them.
 *
 * Handshake (virtio 1.2 §3.1.1): reset → ACKNOWLEDGE → DRIVER → features written →
 * FEATURES_OK (kept only if acceptable, the driver re-reads it) → queues configured →
 * DRIVER_OK. This model is a modern (VERSION_1) device only: the legacy interface, which has
 * no FEATURES_OK and uses guest-endian rings, is not modelled, so FEATURES_OK requires
 * VERSION_1 and DRIVER_OK requires FEATURES_OK.
 *
 * Register writes never throw: a write the device refuses leaves the register as the spec
 * says (FEATURES_OK stays clear, features stay as they were) and returns the reason as a
 * VirtioError for logs and tests.
 *
 * Errors: when a queue breaks (see split-queue.ts) the core does what QEMU's virtio_error
 * does for a VERSION_1 device: every queue stops, DEVICE_NEEDS_RESET is set, and a config
 * interrupt tells the driver. Writing 0 to status resets everything and the device serves
 * again once the driver has set it up anew.
 */
import { assert } from '../../lib/assert.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1, hasFeature,
} from './constants.ts';
import { VIRTIO_ERR, VirtioError } from './errors.ts';
import { type SplitQueueLayout, isValidQueueSize } from './ring-layout.ts';
import { SplitQueueDevice } from './split-queue.ts';

/** The driver-facing registers, as a transport (PCI common config, MMIO) exposes them. */
export interface VirtioTransport {
  readDeviceFeatures(): bigint;
  /** Refused (returns why) once FEATURES_OK is set. */
  writeDriverFeatures(features: bigint): VirtioError | null;
  readStatus(): number;
  /** 0 resets the device; a refused part of a write is left out and the reason returned. */
  writeStatus(status: number): VirtioError | null;
  /** The largest size queue `queueIndex` accepts, 0 if there is no such queue. */
  queueSizeMax(queueIndex: number): number;
  configureQueue(queueIndex: number, layout: SplitQueueLayout): VirtioError | null;
}

/** Device-specific behaviour plugged into the core. Every hook is optional. */
export interface VirtioDeviceHooks {
  /** Extra checks at FEATURES_OK; an error refuses FEATURES_OK. */
  validateFeatures?(features: bigint): VirtioError | null;
  /** Device state to clear on reset (queues and features are the core's). */
  onReset?(): void;
  /** The driver set DRIVER_OK. */
  onDriverOk?(): void;
  /** Reads `lengthBytes` (1, 2 or 4) of config space, little-endian. */
  readConfig?(offsetBytes: number, lengthBytes: number): number;
  writeConfig?(offsetBytes: number, lengthBytes: number, value: number): void;
  /** A used-buffer notification for queue `queueIndex`. */
  onQueueInterrupt?(queueIndex: number): void;
  /** A configuration-change notification. */
  onConfigInterrupt?(): void;
  /** The error that broke the device; queueIndex is null when no queue reported it. */
  onError?(error: VirtioError, queueIndex: number | null): void;
}

export interface VirtioDeviceCoreOptions {
  /** Virtio device id (5 for the balloon). */
  readonly deviceId: number;
  /** Features the device offers; must include VERSION_1. */
  readonly offeredFeatures: bigint;
  /** Per queue, the largest size the driver may configure (a power of two). */
  readonly queueSizesMax: readonly number[];
  /** Per-chain descriptor limit for every queue (defaults to the queue size). */
  readonly maxChainDescriptors?: number;
  /** Per-chain byte limit for every queue (defaults to 2^32 - 1). */
  readonly maxTotalLengthBytes?: number;
  readonly hooks?: VirtioDeviceHooks;
}

/** What migrates of the core (the transport and the device add their own parts). */
export interface VirtioCoreState {
  readonly status: number;
  readonly driverFeatures: bigint;
  readonly configGeneration: number;
  /** Per queue: its layout and lastAvailIdx, or null when not set up. */
  readonly queues: ReadonlyArray<{ readonly layout: SplitQueueLayout; readonly lastAvailIdx: number } | null>;
}

const FEATURES_MASK_64 = (1n << 64n) - 1n;

export class VirtioDeviceCore implements VirtioTransport {
  /** Virtio device id. */
  readonly deviceId: number;
  /** Features the device offers (fixed for its lifetime). */
  readonly offeredFeatures: bigint;
  /** The device's queues, by index; they persist across resets. */
  readonly queues: readonly SplitQueueDevice[];
  /** Device-specific hooks. */
  private readonly hooks: VirtioDeviceHooks;
  /** The device status register. */
  private statusValue = 0;
  /** Features the driver wrote (checked at FEATURES_OK). */
  private driverFeaturesValue = 0n;
  /** Bumped on every config change the driver is told about. */
  private configGenerationValue = 0;
  /** The error that broke the device, or null (QEMU vdev->broken). */
  private brokenError: VirtioError | null = null;

  constructor(mem: GuestMemory, options: VirtioDeviceCoreOptions) {
    assert(hasFeature(options.offeredFeatures, VIRTIO_F_VERSION_1), 'a modern virtio device must offer VERSION_1');
    this.deviceId = options.deviceId;
    this.offeredFeatures = options.offeredFeatures & FEATURES_MASK_64;
    this.hooks = options.hooks ?? {};
    this.queues = options.queueSizesMax.map((queueSizeMax, queueIndex) => {
      assert(isValidQueueSize(queueSizeMax), `queue ${queueIndex} maximum size ${queueSizeMax} is not a power of two`);
      return new SplitQueueDevice(mem, {
        queueIndex,
        queueSizeMax,
        maxChainDescriptors: options.maxChainDescriptors,
        maxTotalLengthBytes: options.maxTotalLengthBytes,
        onError: (error, queue) => this.virtioError(error, queue.queueIndex),
      });
    });
  }

  get status(): number {
    return this.statusValue;
  }

  /** Features the driver wrote, whether or not FEATURES_OK accepted them. */
  get driverFeatures(): bigint {
    return this.driverFeaturesValue;
  }

  /** The negotiated features: the driver's, once FEATURES_OK stuck; 0 before. */
  get negotiatedFeatures(): bigint {
    return (this.statusValue & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 ? this.driverFeaturesValue : 0n;
  }

  get configGeneration(): number {
    return this.configGenerationValue;
  }

  /** Whether an error broke the device (until reset). */
  get broken(): boolean {
    return this.brokenError !== null;
  }

  get error(): VirtioError | null {
    return this.brokenError;
  }

  /** Whether feature `bit` was negotiated. */
  hasFeature(bit: number): boolean {
    return hasFeature(this.negotiatedFeatures, bit);
  }

  /** Whether the driver has set the device up and nothing has failed since. */
  get live(): boolean {
    const bad = VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED;
    return (this.statusValue & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (this.statusValue & bad) === 0 && this.brokenError === null;
  }

  readDeviceFeatures(): bigint {
    return this.offeredFeatures;
  }

  writeDriverFeatures(features: bigint): VirtioError | null {
    if ((this.statusValue & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) {
      return new VirtioError(VIRTIO_ERR.FEATURES_LOCKED, 'The driver wrote features after FEATURES_OK; the write is ignored');
    }
    this.driverFeaturesValue = features & FEATURES_MASK_64;
    return null;
  }

  readStatus(): number {
    return this.statusValue;
  }

  writeStatus(status: number): VirtioError | null {
    const value = status & 0xff;
    if (value === 0) {
      this.reset();
      return null;
    }
    const old = this.statusValue;
    let refusal: VirtioError | null = null;
    const refuse = (error: VirtioError): void => {
      if (refusal === null) refusal = error;
    };
    if ((old & ~value & ~VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) {
      refuse(new VirtioError(VIRTIO_ERR.STATUS_CLEAR, `The driver may not clear status bits 0x${(old & ~value).toString(16)} except by a reset`));
    }
    // Bits only accumulate until reset, and NEEDS_RESET belongs to the device.
    let next = (old | value) & ~VIRTIO_CONFIG_S_NEEDS_RESET | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    const added = next & ~old;
    if ((added & VIRTIO_CONFIG_S_DRIVER) !== 0 && (next & VIRTIO_CONFIG_S_ACKNOWLEDGE) === 0) {
      next &= ~VIRTIO_CONFIG_S_DRIVER;
      refuse(new VirtioError(VIRTIO_ERR.STATUS_SEQUENCE, 'DRIVER set before ACKNOWLEDGE'));
    }
    if ((added & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) {
      const problem = (next & VIRTIO_CONFIG_S_DRIVER) === 0
        ? new VirtioError(VIRTIO_ERR.STATUS_SEQUENCE, 'FEATURES_OK set before DRIVER')
        : this.checkFeatures(this.driverFeaturesValue);
      if (problem !== null) {
        next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        refuse(problem);
      }
    }
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (next & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      next &= ~VIRTIO_CONFIG_S_DRIVER_OK;
      refuse(new VirtioError(VIRTIO_ERR.STATUS_SEQUENCE, 'DRIVER_OK set before FEATURES_OK'));
    }
    this.statusValue = next;
    if ((next & ~old & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) this.hooks.onDriverOk?.();
    return refusal;
  }

  queueSizeMax(queueIndex: number): number {
    return this.queues[queueIndex]?.queueSizeMax ?? 0;
  }

  configureQueue(queueIndex: number, layout: SplitQueueLayout): VirtioError | null {
    const queue = this.queues[queueIndex];
    if (queue === undefined) return new VirtioError(VIRTIO_ERR.QUEUE_INDEX, `The device has no queue ${queueIndex}`);
    if ((this.statusValue & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      return new VirtioError(VIRTIO_ERR.STATUS_SEQUENCE, `Queue ${queueIndex} configured before FEATURES_OK`);
    }
    try {
      queue.configure({ ...layout, features: this.negotiatedFeatures });
    } catch (e) {
      if (e instanceof VirtioError) return e;
      throw e;
    }
    if (this.brokenError !== null) queue.markBroken(this.brokenError);
    return null;
  }

  /**
   * Marks the device broken (QEMU virtio_error): every queue stops, DEVICE_NEEDS_RESET is set
   * and the driver is told through a config interrupt. Later errors before a reset are
   * reported to the hook but change nothing else.
   */
  virtioError(error: VirtioError, queueIndex: number | null = null): void {
    this.hooks.onError?.(error, queueIndex);
    if (this.brokenError !== null) return;
    this.brokenError = error;
    for (const queue of this.queues) queue.markBroken(error);
    if (hasFeature(this.negotiatedFeatures, VIRTIO_F_VERSION_1)) {
      this.statusValue |= VIRTIO_CONFIG_S_NEEDS_RESET;
      this.notifyConfigChange();
    }
  }

  /** Device reset: status, features, queues and the broken mark are cleared. */
  reset(): void {
    this.statusValue = 0;
    this.driverFeaturesValue = 0n;
    this.brokenError = null;
    for (const queue of this.queues) queue.reset();
    this.hooks.onReset?.();
  }

  /** Sends a used-buffer interrupt for queue `queueIndex` if the driver wants one; returns whether it did. */
  notifyQueue(queueIndex: number): boolean {
    const queue = this.queues[queueIndex];
    assert(queue !== undefined, `no queue ${queueIndex}`);
    if (!queue.needsNotify()) return false;
    this.hooks.onQueueInterrupt?.(queueIndex);
    return true;
  }

  /** Tells a driver that has set DRIVER_OK that config space changed (QEMU virtio_notify_config). */
  notifyConfigChange(): void {
    if ((this.statusValue & VIRTIO_CONFIG_S_DRIVER_OK) === 0) return;
    this.configGenerationValue = (this.configGenerationValue + 1) >>> 0;
    this.hooks.onConfigInterrupt?.();
  }

  /** Config space reads go to the device; 0 when it has none. */
  readConfig(offsetBytes: number, lengthBytes: number): number {
    return this.hooks.readConfig?.(offsetBytes, lengthBytes) ?? 0;
  }

  writeConfig(offsetBytes: number, lengthBytes: number, value: number): void {
    this.hooks.writeConfig?.(offsetBytes, lengthBytes, value);
  }

  saveState(): VirtioCoreState {
    return {
      status: this.statusValue,
      driverFeatures: this.driverFeaturesValue,
      configGeneration: this.configGenerationValue,
      queues: this.queues.map((q) => (q.currentLayout === null ? null : { layout: q.currentLayout, lastAvailIdx: q.lastAvailIdx })),
    };
  }

  /**
   * Loads migrated state into a freshly reset core. Features the device does not offer and
   * inconsistent queue indices are refused (QEMU virtio_load); the core is then left reset.
   */
  restoreState(state: VirtioCoreState): VirtioError | null {
    this.reset();
    if ((state.driverFeatures & ~this.offeredFeatures) !== 0n) {
      return new VirtioError(VIRTIO_ERR.FEATURES_NOT_OFFERED,
        `Migrated features 0x${state.driverFeatures.toString(16)} are not all offered (0x${this.offeredFeatures.toString(16)})`);
    }
    if (state.queues.length > this.queues.length) return new VirtioError(VIRTIO_ERR.QUEUE_INDEX, `Migrated state has ${state.queues.length} queues, the device ${this.queues.length}`);
    this.statusValue = state.status & 0xff;
    this.driverFeaturesValue = state.driverFeatures;
    this.configGenerationValue = state.configGeneration >>> 0;
    for (let i = 0; i < state.queues.length; i++) {
      const saved = state.queues[i];
      if (saved === null) continue;
      if (!Number.isInteger(saved.lastAvailIdx) || saved.lastAvailIdx < 0 || saved.lastAvailIdx > 0xffff) {
        this.reset();
        return new VirtioError(VIRTIO_ERR.MIGRATION_INCONSISTENT, `Migrated queue ${i} last avail index ${saved.lastAvailIdx} is not a u16`);
      }
      try {
        this.queues[i].configure({ ...saved.layout, features: this.negotiatedFeatures });
        this.queues[i].restoreLastAvailIdx(saved.lastAvailIdx);
      } catch (e) {
        if (!(e instanceof VirtioError)) throw e;
        this.reset();
        return e;
      }
    }
    return null;
  }

  /** Why `features` may not be accepted, or null: unoffered bits, no VERSION_1, ACCESS_PLATFORM declined, device veto. */
  private checkFeatures(features: bigint): VirtioError | null {
    const unoffered = features & ~this.offeredFeatures;
    if (unoffered !== 0n) {
      return new VirtioError(VIRTIO_ERR.FEATURES_NOT_OFFERED, `The driver accepted features 0x${unoffered.toString(16)} the device did not offer`);
    }
    if (!hasFeature(features, VIRTIO_F_VERSION_1)) {
      return new VirtioError(VIRTIO_ERR.FEATURES_NO_VERSION_1, 'The driver did not accept VERSION_1, which this modern-only device requires');
    }
    if (hasFeature(this.offeredFeatures, VIRTIO_F_ACCESS_PLATFORM) && !hasFeature(features, VIRTIO_F_ACCESS_PLATFORM)) {
      return new VirtioError(VIRTIO_ERR.FEATURES_ACCESS_PLATFORM, 'The device offers ACCESS_PLATFORM and the driver declined it');
    }
    const veto = this.hooks.validateFeatures?.(features) ?? null;
    if (veto !== null) return new VirtioError(VIRTIO_ERR.FEATURES_REJECTED, `The device refused the features: ${veto.message}`);
    return null;
  }
}
