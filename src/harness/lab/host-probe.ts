/**
 * What first touching guest RAM costs this host: the cost behind the lab's slow runs.
 *
 * QEMU's guest RAM is anonymous memory madvised MADV_HUGEPAGE; a destination's first write into
 * each 2 MiB of it allocates and clears a huge page. On a bare host that is a fraction of a
 * millisecond. On a host that is itself a guest with free page reporting (the lab's machine:
 * a microVM whose kernel reports free 2 MiB blocks to its hypervisor within seconds), memory
 * freed a few seconds ago has gone back to the outer host, and the first touch faults there
 * too. A run lands on such "cold" memory or on memory freed a moment before ("warm") depending
 * on what ran before it.
 *
 * The probe measures both with QEMU itself: in a `-M none` QEMU, `object-add` of a
 * memory-backend-ram with `prealloc: true` returns once every page is touched. After an idle
 * wait the memory it gets is cold; a second backend added right after the first is deleted gets
 * the pages just freed, warm. Per 2 MiB region: (time / regions). The difference is the
 * simulator's `host.destination-fault` for a cold host (src/sim/dest-faults.ts).
 */
import { startQemu } from '../qemu.ts';
import { sleep } from '../process-util.ts';

export interface HostProbeRound {
  /** First touch of memory idle for `idleMs` first, ms per 2 MiB. */
  readonly coldMsPer2Mib: number;
  /** First touch of memory freed just before, ms per 2 MiB. */
  readonly warmMsPer2Mib: number;
}

export interface HostProbe {
  readonly sizeMib: number;
  readonly idleMs: number;
  readonly rounds: readonly HostProbeRound[];
  /** Medians over the rounds. */
  readonly coldMsPer2Mib: number;
  readonly warmMsPer2Mib: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs `rounds` cold/warm pairs of `sizeMib` MiB each, waiting `idleMs` before each cold one. */
export async function probeFirstTouch(sizeMib = 1024, rounds = 3, idleMs = 10_000): Promise<HostProbe> {
  const regions = sizeMib / 2;
  const out: HostProbeRound[] = [];
  for (let r = 0; r < rounds; r++) {
    await sleep(idleMs);
    const qemu = await startQemu({ name: 'host-probe', args: ['-M', 'none', '-nodefaults', '-display', 'none', '-S'], watchdogMs: 120_000 });
    try {
      const touch = async (id: string): Promise<number> => {
        const t0 = performance.now();
        await qemu.qmp.execute('object-add', { 'qom-type': 'memory-backend-ram', id, size: sizeMib * 1024 * 1024, prealloc: true });
        return performance.now() - t0;
      };
      const coldMs = await touch(`cold${r}`);
      await qemu.qmp.execute('object-del', { id: `cold${r}` });
      await sleep(300); // the RAM block is freed after an RCU grace period
      const warmMs = await touch(`warm${r}`);
      out.push({ coldMsPer2Mib: coldMs / regions, warmMsPer2Mib: warmMs / regions });
    } finally {
      await qemu.stop();
    }
  }
  return {
    sizeMib,
    idleMs,
    rounds: out,
    coldMsPer2Mib: median(out.map((x) => x.coldMsPer2Mib)),
    warmMsPer2Mib: median(out.map((x) => x.warmMsPer2Mib)),
  };
}
