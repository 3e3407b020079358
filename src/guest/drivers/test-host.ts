/**
 * Test helper: a host around one Guest with a BalloonVirtio (free page hinting on by default)
 * and optionally a VirtioMemVirtio, built on the guest's memory. Hints and discards are
 * collected as RangeTables. `tick()` advances the virtual clock by one step: the guest runs,
 * then the devices do their deferred and polling work. Production code never imports this.
 */
import { BalloonDevice } from '../../devices/balloon/balloon-device.ts';
import { BalloonVirtio, type KickMode } from '../../devices/balloon/balloon-queues.ts';
import type { BalloonOptions } from '../../devices/balloon/balloon-types.ts';
import { VirtioMemDevice, type VirtioMemOptions } from '../../devices/virtio-mem/virtio-mem-device.ts';
import { VirtioMemVirtio } from '../../devices/virtio-mem/virtio-mem-queues.ts';
import { RangeTable } from '../../lib/range-table.ts';
import { NS_PER_MS } from '../../lib/units.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import type { TrackableBacking } from '../../memory/dirty-tracking-memory.ts';
import { Guest, type GuestOptions } from '../guest.ts';

export interface TestHostOptions {
  /** Guest physical memory in bytes (a BytesBacking unless `backing` is given). */
  readonly memoryBytes: number;
  readonly backing?: TrackableBacking;
  /** Balloon device properties (ramSizeBytes defaults to boot RAM, freePageHint to true). */
  readonly balloon?: Partial<BalloonOptions> | null;
  /** virtio-mem device properties; none when absent. */
  readonly virtioMem?: Omit<VirtioMemOptions, 'discardSink'>;
  readonly kickMode?: KickMode;
  /** Guest options besides backing and devices. */
  readonly guest?: Omit<GuestOptions, 'backing' | 'devices'>;
  /** Called with the devices before the guest's drivers probe them. */
  readonly prepare?: (host: TestHost) => void;
}

export const TICK_NS = NS_PER_MS;

export class TestHost {
  readonly guest: Guest;
  readonly balloon: BalloonVirtio | null = null;
  readonly virtioMem: VirtioMemVirtio | null = null;
  /** Every hinted range, merged. */
  readonly hints = new RangeTable();
  /** Number of hint calls. */
  hintCalls = 0;
  /** Every discarded range (inflate, unplug), merged. */
  readonly discards = new RangeTable();
  /** The virtual clock. */
  nowNs = 0;

  constructor(options: TestHostOptions) {
    const backing = options.backing ?? new BytesBacking(options.memoryBytes);
    const bootRamBytes = options.guest?.bootRamBytes ?? backing.sizeBytes;
    const sinks = {
      onHint: (gpa: number, lengthBytes: number) => {
        this.hintCalls++;
        this.hints.add(gpa, gpa + lengthBytes);
      },
      discard: (gpa: number, lengthBytes: number) => this.discards.add(gpa, gpa + lengthBytes),
    };
    this.guest = new Guest({
      ...options.guest,
      backing,
      devices: (memory) => {
        const self = this as { balloon: BalloonVirtio | null; virtioMem: VirtioMemVirtio | null };
        if (options.balloon !== null) {
          const device = new BalloonDevice({ ramSizeBytes: bootRamBytes, freePageHint: true, hintSink: sinks, discardSink: sinks, ...options.balloon });
          self.balloon = new BalloonVirtio(memory, device, { kickMode: options.kickMode });
        }
        if (options.virtioMem !== undefined) {
          self.virtioMem = new VirtioMemVirtio(memory, new VirtioMemDevice({ ...options.virtioMem, discardSink: sinks }), { kickMode: options.kickMode });
        }
        options.prepare?.(this);
        return { balloon: self.balloon ?? undefined, virtioMem: self.virtioMem ?? undefined };
      },
    });
  }

  /** One step of virtual time: the guest runs, then the devices poll. */
  tick(stepNs: number = TICK_NS): void {
    this.nowNs += stepNs;
    this.guest.step(this.nowNs);
    this.balloon?.poll(this.nowNs);
    this.virtioMem?.poll(this.nowNs);
  }

  /** Ticks until the guest's drivers are idle (or `maxTicks` pass); returns the ticks run. */
  settle(maxTicks = 10_000, stepNs: number = TICK_NS): number {
    let ticks = 0;
    do {
      this.tick(stepNs);
      ticks++;
    } while (ticks < maxTicks && (this.guest.driversBusy || (this.balloon?.polling ?? false)));
    return ticks;
  }
}
