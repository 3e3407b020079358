/**
 * Calibrated constants: how a real Debian 6.1 guest under QEMU 7.2 (TCG, one vCPU, q35) and
 * QEMU 7.2's migration over loopback TCP behave on the guest lab's machine kind (2 host cores),
 * measured by the guest lab (testdata/guest-lab/*.jsonl; docs/fidelity.md). The lab scenarios
 * (scenarios/lab/*.yaml, written by src/sim/fidelity/lab-scenario.ts) spell these values, so
 * `livemig sim scenarios/lab/X.yaml` is the simulator's prediction of lab case X.
 *
 * Every constant says which measurement it comes from. "Lab" figures are medians of 3 runs;
 * "samples" are the query-migrate samples run-matrix.py takes every 250 ms (transferred,
 * remaining, duplicate, normal). Until the second dirty sync, the bytes hints made the source
 * skip are total − (duplicate + normal) × 4096 − remaining ("hinted ahead" below).
 *
 * What it deliberately doesn't do: model the host's scheduler in detail, or the guest's
 * physical layout boot by boot (KASLR moves the kernel's data at every boot, which is a good
 * part of the lab's run-to-run spread; LAB_BOOT_DATA_SPAN gives its mean). The constants fold
 * the host in: they hold for this machine kind.
 */
import { NS_PER_MS } from '../lib/units.ts';

// ---- the link: QEMU's migration thread over loopback TCP --------------------------------------

/**
 * What one normal page costs the source at full speed, as a wire rate (bytes/s): QEMU 7.2
 * copying pages into its QEMUFile, the kernel's loopback TCP and the destination taking them.
 * From the hint-off runs at max-bandwidth 1 GiB/s (never rate limited: this is below it):
 *   1024 MiB alloc: 198,002 normal + 64,461 zero pages in 1,013 ms;
 *   2048 MiB alloc: 387,064 normal + 137,461 zero pages in 2,019 ms;
 *   1024 / 2048 MiB idle: 23,729 + 238,756 pages in 210 ms; 28,108 + 496,501 in 316 ms.
 * A least-squares fit of time = normal × t_n + zero × t_z + c gives t_n ≈ 5.0 µs per normal
 * page, t_z ≈ 0.33 µs per zero page, c ≈ 10 ms. t_n = (4096 + 8) B / rate + t_z, so the rate
 * is 4104 B / 4.67 µs ≈ 879 MB/s (838 MiB/s), 82% of the 1 GiB/s limit: the 1 GiB/s runs are
 * bound by the host, the 128 MiB/s runs by QEMU's rate limit (6,021 ms for 776.6 MiB).
 */
export const LAB_LINK_BYTES_PER_SEC = 879_000_000;

/**
 * Sender time per page examined in the first pass, ns: QEMU's zero test and bitmap walk on
 * memory the guest never wrote (the host maps it to its shared zero page, always in cache).
 * From the same fit (t_z ≈ 0.33 µs): the idle 2048 MiB guest sends 257,745 more zero pages than
 * the 1024 MiB one and takes 106 ms longer, 22 ms of it for its 4,379 extra normal pages. QEMU
 * here spends about as much time scanning an idle guest's zero pages as sending its data
 * (idle 1024 MiB at 1 GiB/s: 79 ms of scanning, 119 ms of data).
 */
export const LAB_SCAN_NS_PER_PAGE = 330;

/**
 * Sender time per page examined again (a page the guest wrote after it was sent or skipped:
 * host-backed memory, so the zero test reads 4 KiB from memory), ns. From the samples between
 * the 2nd and 3rd dirty sync of the hinting runs, which re-send the blocks init_on_alloc zeroed
 * as zero pages: 183K pages in 255 ms (1024 MiB, 1 GiB/s), 276-346K in 256 ms (2048 MiB),
 * 119K in under 155 ms (1024 MiB, 128 MiB/s): 0.75-1.4 µs per page with the guest still
 * hinting, i.e. at the 2/3 host share of LAB_HOST_CORES; 0.7 µs at full speed.
 */
export const LAB_RESCAN_NS_PER_PAGE = 700;

/**
 * Source time from stopping the guest to sending the device state, ns (vm_stop, the devices'
 * pre_save, the final sync), besides RAM. From the runs whose downtime carried almost no RAM:
 * hinting at 128 MiB/s left 0.05-1 MB for the downtime, which took 1-3 ms (1024 MiB: 3, 1,
 * 2 ms; 2048 MiB: 2, 1, 2 ms).
 */
export const LAB_SWITCHOVER_NS = 2_000_000;

/*
 * The dirty sync itself (migration_bitmap_sync: the dirty log into the RAM block's bitmap) costs
 * nothing in the model: the simulator's sync takes no time, on both machines. From QEMU's own
 * trace (trace-warm.jsonl and trace-cold.jsonl, the host suites' machine; format/qemu-trace.ts
 * bracketedSyncsMs), a sync that came right after a closed bandwidth window, with the guest
 * running, took 0.1-0.3 ms (median 0.2 ms of 21, for 1 and 2 GiB alike; two took 1.2 and
 * 3.3 ms). A sync right after the guest's stop took 0-0.6 ms (median 0.15 ms of 36). At 0.2 ms
 * each, every traced run's syncs come to under 2% of its total time (fidelity.test.ts).
 */

/** One-way latency of loopback TCP, ns (tens of µs; it hardly matters here). */
export const LAB_LINK_LATENCY_NS = 25_000;

// ---- QEMU's migration thread: facts, not fitted ------------------------------------------------

/**
 * How long a precopy iteration runs, ns: QEMU 7.2's ram_save_iterate looks at the clock every
 * 64 pages and leaves once more than MAX_WAIT (50) whole ms have passed, so an iteration lasts
 * 51 ms unless the pass ends or the rate limit stops it first, and the convergence check comes
 * once per iteration (QEMU's trace: `big wait: 51 milliseconds`, testdata/guest-lab/
 * trace-warm.jsonl). The lab scenarios say `host: { iteration: 51ms, iteration-pages: 64 }`:
 * the engine's iteration spans pumps of 64 pages each (option iterationNsMin).
 */
export const QEMU_ITERATION_NS_MIN = 51 * NS_PER_MS;
/** Pages between two looks at the clock in ram_save_iterate (`(i & 63) == 0`). */
export const QEMU_ITERATION_LOOK_PAGES = 64;

// ---- the host ------------------------------------------------------------------------------------

/**
 * Cores of the lab's host (the guest lab README's "this 2-core VM"). Both QEMUs run on it:
 * while the stream flows two threads are busy (the source's migration thread, the destination's
 * receiver); a guest zeroing hint blocks under TCG makes three, and each then runs at 2/3 speed
 * (src/sim/host-cpu.ts). The lab shows both sides. At 1 GiB/s with hinting, the source sent data
 * at 540-590 MiB/s in the first pass (samples, 2048 MiB alloc; 742 MiB/s without hinting), and
 * the guest hinted at 1.3-1.6 GB/s, not the 2.0 GB/s it manages at 128 MiB/s, where the
 * migration thread sleeps most of each 100 ms window. The idle guest's migration took 347 ms
 * instead of 210 ms (1024 MiB) and 627 ms instead of 316 ms (2048 MiB) for the same bytes.
 */
export const LAB_HOST_CORES = 2;

// ---- the guest: Debian 6.1's virtio-balloon driver under TCG ----------------------------------

/**
 * Guest time per hint block besides zeroing, ns: an order-10 allocation, the virtqueue add and
 * kick, QEMU's iothread popping the element. From the init_on_alloc=0 suite:
 * - at 128 MiB/s the guest had hinted 893-914 MB (all it could) by the first sample at 0.26 s,
 *   so faster than 3.5 GB/s (1.2 ms per block);
 * - the alloc guest at 1 GiB/s sent 127 MiB (median), its boot data and little of the 672 MiB
 *   it had freed. The driver takes the freed blocks top-down (the allocator's list hands out the
 *   block freed last first), so the lowest, where the scan is, come last. All of them, about
 *   230 blocks, were hinted before the first iteration ended at 51 ms: at most 220 µs a block.
 *   At 250 µs the simulator's scan sends the last ones (147.6 MiB, +16%); at 200 µs it does not.
 */
export const LAB_HINT_BLOCK_NS = 200_000;

/**
 * With init_on_alloc=1 (Debian's default) the allocator zeroes every hint block: time per page
 * that held data (host-backed), ns. From the alloc suite at 128 MiB/s: hinted ahead grew by
 * 470-525 MB per 250 ms sample on the 2048 MiB guest (1.9-2.1 GB/s) and by 260-470 MB on the
 * 1024 MiB guest; at 1 GiB/s by 0.8-2 GB/s. With the block time, 1.5 µs per page gives 4 MiB
 * in 1.79 ms: 2.35 GB/s at full speed, 1.57 GB/s at the 2/3 share.
 */
export const LAB_ZERO_TOUCHED_PAGE_NS = 1_500;

/**
 * The same for a page still zero since boot: the host has never backed it, so the guest's first
 * write faults it in (host page allocation and zeroing) on top of TCG's dirty-tracking slow
 * path. From the idle suite: MemFree fell by 320-444 MiB within 0.73-0.77 s at 128 MiB/s (0.46-
 * 0.6 GB/s) and by 136-204 MiB within 0.31-0.33 s at 1 GiB/s (at the 2/3 share). 7.3 µs per
 * page gives 0.54 GB/s at full speed, 0.36 GB/s at the 2/3 share.
 */
export const LAB_ZERO_FRESH_PAGE_NS = 7_300;

// ---- the guest's memory layout ------------------------------------------------------------------

/**
 * Bytes of struct page per 4 KiB page (x86-64 Linux): memblock allocates the array top-down, so
 * the top mem / 64 of RAM holds data (16 MiB per GiB). This is the fallback size of the data
 * region at the top of RAM; where the lab has them, the lab scenarios take the region's size
 * from the measurement itself (lab-data.ts topDataBytes): a hint-off idle migration at
 * 128 MiB/s converges with the whole region left for the downtime, 18.1 MiB (1024 MiB guest;
 * 18.6 with init_on_alloc=0) or 28.7 MiB (2048 MiB) of `downtime-bytes` (medians), a little
 * more than mem / 64 for 1 GiB (memblock's other top-down allocations) and less for 2 GiB.
 * What is left of the boot data (the normal pages of a hint-off idle migration, 92.7 and
 * 109.8 MiB) is the kernel image, the initramfs and its page cache, spread through the lower
 * half of RAM (LAB_BOOT_DATA_SPAN).
 */
export const LAB_STRUCT_PAGE_BYTES = 64;

/**
 * The share of RAM, from the bottom, that the boot data (guest.kernel-data) is spread over, in
 * whole 4 MiB blocks (`kernel-data-layout: spread`). From the samples of the hint-off idle
 * 128 MiB/s runs (9 runs, the rate limit makes them slow enough to see the scan's progress):
 * when about 45% of the boot data had been sent (first sample, 0.26 s), 21-83% (mean 45%) of
 * the 1024 MiB guest's zero pages and 25-27% of the 2048 MiB guest's had been scanned; at 83-99%
 * of the boot data (0.52 s), 22-97% (mean 54%) and 27-80% (mean 46%). So the data lies spread
 * through the lower half of RAM, with free (zero) memory between its blocks and above it:
 * where exactly changes at every boot (physical KASLR), the mean is about half.
 */
export const LAB_BOOT_DATA_SPAN = 0.5;

/**
 * Boot data that lies low all the same, bytes: two 4 MiB blocks besides the sub-block rest
 * (`kernel-data-low`; the other blocks are spread, LAB_BOOT_DATA_SPAN). Linux's buddy
 * allocator hands out memory at boot from the head of its free lists, and memblock_free_all
 * put the blocks there in ascending order (__free_pages_core, FPI_TO_TAIL): what the kernel
 * allocated after boot (slab, page tables, the initramfs's page cache, modules; MemTotal −
 * MemFree = about 36 MiB in the 1024 MiB guest) starts at the bottom of the free memory.
 * The amount comes from the hinted-ahead figure of the idle 128 MiB/s hinting runs (samples at
 * 0.26 and 0.51 s, both the same: hints applied ahead of the scan only at the very start):
 * 41.9, 58.7, 54.5 MB (1024 MiB) and 46.1, 54.5, 58.7 MB (2048 MiB), 13.3k pages median.
 * The driver makes them while the first rate-limit window (13.4 MB at 128 MiB/s) waits out its
 * 100 ms after the scan stopped below the driver's first blocks. The simulator's head start
 * (hint-recovery's "pages skipped"): 3,072 / 4,096 pages with all blocks spread, 12,288 /
 * 9,216 with two blocks low, 20,480 / 16,384 with three, 30,720 / 18,432 with four.
 */
export const LAB_BOOT_DATA_LOW_BYTES = 8 * 1024 * 1024;

/** The alloc workload's staging files (init.sh: s1 is 1 MiB, s16 is 16 MiB), also freed. */
export const LAB_ALLOC_STAGING_MIB = 17;

// ---- the scenarios' fixed choices -------------------------------------------------------------

/** Rate of the simulated alloc workload: fast, so it is done long before `migrate`. */
export const LAB_ALLOC_RATE_BYTES_PER_SEC = 8 * 1024 * 1024 * 1024;

/** When `migrate` is issued in the lab scenarios (the alloc workload is done by then). */
export const LAB_MIGRATION_START_NS = 500 * NS_PER_MS;

// ---- a calibration as the lab scenarios take it -------------------------------------------------

/**
 * The machine-dependent part of a lab scenario: the link, the host, the guest driver's pace.
 * The guest's layout (boot data, fragmentation) comes from the lab rows themselves
 * (lab-scenario.ts). LAB_CALIBRATION is the lab machine's (the main suites); the host suites,
 * measured on another machine warm and cold, have their own (calibration-host.ts).
 */
export interface LabCalibration {
  /** Which machine and measurements, for the scenarios' headers. */
  readonly name: string;
  readonly linkBytesPerSec: number;
  readonly linkLatencyNs: number;
  readonly scanNsPerPage: number;
  readonly rescanNsPerPage: number;
  readonly switchoverNs: number;
  readonly hostCores: number;
  readonly hintBlockNs: number;
  readonly zeroTouchedPageNs: number;
  /** Guest time per never-touched page it zeroes, the host's first touch included. */
  readonly zeroFreshPageNs: number;
  /** host.destination-fault: the destination's first write into 2 MiB of its RAM (0: folded into the link). */
  readonly destinationFaultNs: number;
  /** host.advised-device-load of the postcopy-ram cases: the destination's extra device load. */
  readonly advisedDeviceLoadNs: number;
}

/** The lab machine's calibration (the constants above), for scenarios/lab/*.yaml. */
export const LAB_CALIBRATION: LabCalibration = {
  name: 'the lab machine (src/sim/calibration.ts)',
  linkBytesPerSec: LAB_LINK_BYTES_PER_SEC,
  linkLatencyNs: LAB_LINK_LATENCY_NS,
  scanNsPerPage: LAB_SCAN_NS_PER_PAGE,
  rescanNsPerPage: LAB_RESCAN_NS_PER_PAGE,
  switchoverNs: LAB_SWITCHOVER_NS,
  hostCores: LAB_HOST_CORES,
  hintBlockNs: LAB_HINT_BLOCK_NS,
  zeroTouchedPageNs: LAB_ZERO_TOUCHED_PAGE_NS,
  zeroFreshPageNs: LAB_ZERO_FRESH_PAGE_NS,
  destinationFaultNs: 0,
  // The lab machine's postcopy-ram runs show no longer downtime than their twins (main.jsonl,
  // postcopy.jsonl: 19-71 ms against 19-66 ms at 1 GiB/s for 1024 MiB).
  advisedDeviceLoadNs: 0,
};
