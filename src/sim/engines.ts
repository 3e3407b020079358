/**
 * The real migration engines (core/source SourceEngine, core/dest DestEngine) plugged into the
 * simulated world: their RAM views and hooks come from the Machine (machine.ts), and a small
 * adapter gives SourceEngine the argument order of the world's SourcePort (nowNs last).
 */
import type { PagePayloadMode, StepResult } from '../core/engine-types.ts';
import { DestEngine } from '../core/dest/dest-engine.ts';
import { SourceEngine } from '../core/source/source-engine.ts';
import { ChunkPool } from '../format/chunk-pool.ts';
import type { SourceCounters, SourceReadiness } from '../core/source/source-types.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { MigrationStatus } from '../core/status.ts';
import type { SourcePort } from './engine-ports.ts';
import { GUEST_VCPU_COUNT } from './guest-runner.ts';
import type { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';
import type { EngineFactory, WorldSourceHooks } from './world.ts';

/** SourceEngine behind the world's SourcePort. */
export class SourceEngineAdapter implements SourcePort {
  constructor(readonly engine: SourceEngine) {}

  get status(): MigrationStatus {
    return this.engine.status;
  }

  start(nowNs: number): StepResult {
    return this.engine.start(nowNs);
  }

  pump(budgetBytes: number, nowNs: number): StepResult {
    return this.engine.pump(nowNs, budgetBytes);
  }

  onReturnPath(bytes: Uint8Array, nowNs: number): StepResult {
    return this.engine.onReturnPath(nowNs, bytes);
  }

  applyHint(startPage: number, pageCount: number, nowNs: number): StepResult {
    return this.engine.applyHint(nowNs, startPage, pageCount);
  }

  startPostcopy(nowNs: number): StepResult | string {
    const result = this.engine.startPostcopy(nowNs);
    return result.error === null ? result : result.error.message;
  }

  cancel(nowNs: number): StepResult {
    return this.engine.cancel(nowNs);
  }

  channelError(reason: string, nowNs: number): StepResult {
    return this.engine.channelError(nowNs, reason);
  }

  tick(nowNs: number): StepResult {
    return this.engine.tick(nowNs);
  }

  written(nowNs: number): StepResult {
    return this.engine.written(nowNs);
  }

  get awaitingWritten(): boolean {
    return this.engine.phase === 'awaiting-written';
  }

  readiness(nowNs: number): SourceReadiness {
    return this.engine.readiness(nowNs);
  }

  get iterationOpen(): boolean {
    return this.engine.iterationOpen;
  }

  iterationGoesOn(budgetBytes: number, nowNs: number): boolean {
    return this.engine.iterationGoesOn(nowNs, budgetBytes);
  }

  queryMigrate(nowNs: number): MigrationInfoQmp {
    return this.engine.queryMigrate(nowNs);
  }

  counters(): SourceCounters {
    return this.engine.counters();
  }
}

function payloadModeOf(machine: Machine): PagePayloadMode {
  return machine.payloadMode;
}

/** The factory of the real engines. */
export const REAL_ENGINES: EngineFactory = {
  source(machine: Machine, scenario: Scenario, hooks: WorldSourceHooks): SourcePort {
    const { devices, guest } = machine;
    const pool = new ChunkPool(() => hooks.consumedStreamBytes());
    const engine = new SourceEngine({
      ram: {
        blocks: machine.blocks,
        store: machine.sourceEngineStore,
        syncDirtyLog: (into) => {
          const added = into.syncFrom(guest.memory.log);
          machine.hostCpu?.onSync(added); // Pages the guest wrote again: host-backed (host-cpu.ts).
          return added;
        },
      },
      hooks: {
        precopyNotify: (reason, nowNs, vmRunning) => {
          hooks.precopyNotify(reason, nowNs, vmRunning);
          devices.precopyNotify(reason, vmRunning);
        },
        skipPages: () => devices.skipPages(),
        saveDevices: () => devices.saveDevices(),
      },
      capabilities: scenario.capabilities,
      parameters: scenario.parameters,
      payloadMode: payloadModeOf(machine),
      hintPolicy: scenario.balloon?.postcopyPolicy ?? 'refuse',
      // The world reports when the link serialized the last byte (QEMU's blocking qemu_fflush).
      awaitWritten: true,
      allocChunk: pool.alloc,
      maxChunkPages: scenario.host?.iterationPagesMax ?? undefined,
      iterationNsMin: scenario.host?.iterationNsMin ?? undefined,
    });
    return new SourceEngineAdapter(engine);
  },

  destination(machine: Machine, scenario: Scenario): DestEngine {
    const { devices } = machine;
    return new DestEngine({
      ram: { blocks: machine.blocks, store: machine.destinationEngineStore, received: machine.received },
      hooks: {
        loadDevice: (blob) => devices.loadDevice(blob),
        postcopyNotify: (reason) => devices.postcopyNotify(reason),
        localZeroPages: () => devices.localZeroPages(),
      },
      vcpuCount: GUEST_VCPU_COUNT,
      capabilities: scenario.capabilities,
      payloadMode: payloadModeOf(machine),
      deviceDecoder: devices.deviceDecoder(),
    });
  },
};
