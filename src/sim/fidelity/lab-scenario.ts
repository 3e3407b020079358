/**
 * A lab case as a scenario: the YAML text of scenarios/lab/<id>.yaml, derived from what the lab's
 * guest did (its MemFree before the migration, the MiB its alloc workload filled, init_on_alloc)
 * and from a calibration (src/sim/calibration.ts, src/sim/calibration-host.ts).
 *
 * How the guest is rebuilt:
 * - guest.reserved: guest RAM minus the guest's MemFree before `migrate` (the kernel, its data,
 *   the initramfs; the 64 MiB or so below MemTotal included), minus reserved-top, minus the
 *   boot data's spread blocks;
 * - guest.reserved-top: the data at the top of RAM (the struct page array, memblock's other
 *   top-down allocations): the downtime-bytes of the hint-off idle 128 MiB/s runs of this size
 *   and init_on_alloc (lab-data.ts topDataBytes), mem / 64 when there are none;
 * - guest.kernel-data: the rest of the pages holding data after boot: the normal pages a
 *   hint-off migration of the idle guest of the same size sends, minus reserved-top; its whole
 *   4 MiB blocks spread evenly through the lower LAB_BOOT_DATA_SPAN of RAM besides reserved
 *   (`kernel-data-layout: spread`), except LAB_BOOT_DATA_LOW_BYTES and the sub-block rest,
 *   which lie from page 0 of reserved (`kernel-data-low`);
 * - guest.fragmented: free memory the hint driver cannot take (not in 4 MiB blocks): the least
 *   MemFree the alloc guest of this size showed while hinting at 128 MiB/s, when it had all the
 *   time it needed; lowest in memory, so the alloc workload fills it first. For an alloc guest,
 *   the alloc data that stayed in it instead, where the init_on_alloc=0 runs measure it
 *   (lab-data.ts unhintableAllocDataKb): part of that memory held zero pages, which cost the
 *   scan only. The same workload leaves the same fragments whatever init_on_alloc says, so the
 *   init_on_alloc=1 alloc guest takes the figure too;
 * - workload alloc: alloc-then-free over the MiB the workload reported filled plus its staging
 *   files, so that much free memory holds data when `migrate` is issued; idle: nothing;
 * - guest.init-on-alloc: the kernel command line (the lab's third suite adds init_on_alloc=0);
 * - the balloon: free-page-hint as in the lab, policy `overrule` (QEMU 7.2: no hinting while
 *   postcopy-ram is on), the driver paced by the calibrated block and zeroing times, hints
 *   applied between iterations (QEMU's bitmap_mutex, src/sim/hint-gate.ts);
 * - the link, the host and the driver's pace: a calibration (calibration.ts LabCalibration):
 *   the lab machine's for scenarios/lab, the host suites' machine's, warm or cold, for
 *   scenarios/lab/warm-host and cold-host (calibration-host.ts), which also set the
 *   destination's first-touch fault (src/sim/dest-faults.ts);
 * - parameters: max-bandwidth and downtime-limit as QEMU reported them; capabilities as the lab
 *   set them: events, and postcopy-ram in the postcopy suite (which opens the return path).
 *
 * Pure: text in, text out.
 */
import * as C from '../calibration.ts';
import type { LabCalibration } from '../calibration.ts';
import { GUEST_VRING_WINDOW_BYTES_DEFAULT } from '../../guest/guest.ts';
import { spreadKernelDataBytes } from '../machine.ts';
import { MiB, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { initOnAllocOf, kernelDataPages, labCases, topDataBytes, unhintableAllocDataKb, unhintableFreeKb, type LabCase, type LabRow } from './lab-data.ts';

/** What the generator needs besides the case. */
export interface LabScenarioInputs {
  readonly labCase: LabCase;
  /** Boot data pages of a guest of this size (lab-data.ts kernelDataPages). */
  readonly kernelDataPages: number;
  /** Free memory the hint driver cannot take, kB (lab-data.ts unhintableFreeKb). */
  readonly unhintableFreeKb: number;
  /** Data at the top of RAM, bytes (lab-data.ts topDataBytes), or null for mem / 64 (struct pages). */
  readonly topDataBytes: number | null;
  /** Where the case's rows come from, for the header (e.g. testdata/guest-lab/main.jsonl). */
  readonly source: string;
  /** The link, the host and the driver's pace (default: the lab machine's). */
  readonly calibration?: LabCalibration;
}

/** The scenario file name of a case. */
export function labScenarioFile(labCase: LabCase): string {
  return `${labCase.id}.yaml`;
}

const KiB = 1024;

function pagesFloor(bytes: number): number {
  return Math.floor(bytes / TARGET_PAGE_SIZE);
}

function mib(bytes: number, digits = 1): string {
  return (bytes / MiB).toFixed(digits);
}

/** The derived guest, in bytes and pages (exported for the report). */
export function labGuestOf(inputs: LabScenarioInputs): {
  memoryBytes: number; reservedBytes: number; reservedTopBytes: number; kernelDataBytes: number; fragmentedBytes: number; allocBytes: number; fill: number;
} {
  const c = inputs.labCase;
  const memoryBytes = c.memMib * MiB;
  const freeBytes = c.medians.memfreeBeforeKb * KiB;
  const reservedTopBytes = inputs.topDataBytes === null
    ? memoryBytes / TARGET_PAGE_SIZE * C.LAB_STRUCT_PAGE_BYTES
    : pagesFloor(inputs.topDataBytes) * TARGET_PAGE_SIZE;
  const keptBytes = pagesFloor(memoryBytes - freeBytes - reservedTopBytes) * TARGET_PAGE_SIZE;
  const kernelDataMax = keptBytes - GUEST_VRING_WINDOW_BYTES_DEFAULT;
  const kernelDataBytes = Math.min(inputs.kernelDataPages * TARGET_PAGE_SIZE - reservedTopBytes, kernelDataMax);
  // Spread boot data (its whole 4 MiB blocks) lies besides reserved: what the kernel keeps stays the same.
  const reservedBytes = keptBytes - spreadKernelDataBytes(kernelDataBytes, C.LAB_BOOT_DATA_LOW_BYTES);
  const allocBytes = c.workload === 'alloc' ? (c.allocFilledMib + C.LAB_ALLOC_STAGING_MIB) * MiB : 0;
  const fill = allocBytes / memoryBytes;
  const fragmentedBytes = Math.floor(inputs.unhintableFreeKb / 4096) * 4 * MiB;
  return { memoryBytes, reservedBytes, reservedTopBytes, kernelDataBytes, fragmentedBytes, allocBytes, fill };
}

/** The YAML text of the case's scenario. */
export function labScenarioYaml(inputs: LabScenarioInputs): string {
  const c = inputs.labCase;
  const m = c.medians;
  const g = labGuestOf(inputs);
  const bwName = c.bw === '1g' ? '1G' : c.bw === '128m' ? '128M' : String(c.maxBandwidthBytesPerSec);
  const k = inputs.calibration ?? C.LAB_CALIBRATION;
  const fault = k.destinationFaultNs;
  const advisedLoad = c.postcopyRam ? k.advisedDeviceLoadNs : 0;
  const workload = c.workload === 'alloc'
    ? `{ kind: alloc-then-free, rate: ${C.LAB_ALLOC_RATE_BYTES_PER_SEC}, fill: ${g.fill.toFixed(6)}, hold: 10ms }`
    : '{ kind: idle }';
  const caps = [`events: true`];
  if (c.postcopyRam) caps.push('postcopy-ram: true');
  const lines = [
    `# Lab case ${c.id}: generated by \`npm run lab -- --write-scenarios\` from ${inputs.source}`,
    `# (src/sim/fidelity/lab-scenario.ts; calibration: ${k.name}). Do not edit by hand.`,
    `# The lab: a ${c.memMib} MiB Debian 6.1 guest under QEMU 7.2 TCG, wl=${c.workload}${c.workload === 'alloc' ? ` (filled ${c.allocFilledMib} MiB, then freed)` : ''},`,
    `# free-page-hint=${c.hint ? 'on' : 'off'}, postcopy-ram ${c.postcopyRam ? 'on (never started)' : 'off'}, init_on_alloc=${c.initOnAlloc ? 1 : 0}, max-bandwidth ${c.bw}, loopback TCP.`,
    `# Measured (median of ${c.completed}): total ${m.totalTimeMs} ms, downtime ${m.downtimeMs} ms, transferred ${mib(m.transferredBytes)} MiB,`,
    `# ${m.normalPages} normal + ${m.duplicatePages} zero pages, ${m.dirtySyncCount} dirty syncs; guest MemFree ${mib(m.memfreeBeforeKb * KiB, 0)} MiB before, ${mib(m.memfreeMinKb * KiB, 0)} MiB at least during.`,
    ...(fault > 0 ? [`# Each first write of the destination into 2 MiB of its RAM costs the host ${(fault / 1e6).toFixed(3)} ms (src/sim/dest-faults.ts).`] : []),
    `name: lab-${c.id}`,
    `description: lab case ${c.id} (${inputs.source})`,
    `seed: 1`,
    `guest: { memory: ${c.memMib}M, backing: compact, reserved: ${g.reservedBytes}, kernel-data: ${g.kernelDataBytes}, reserved-top: ${g.reservedTopBytes},`,
    `         kernel-data-layout: spread, kernel-data-span: ${C.LAB_BOOT_DATA_SPAN}, kernel-data-low: ${C.LAB_BOOT_DATA_LOW_BYTES},`,
    `         fragmented: ${g.fragmentedBytes}, init-on-alloc: ${c.initOnAlloc} }`,
    `workload: ${workload}`,
    `devices:`,
    `  balloon:`,
    `    free-page-hint: ${c.hint}`,
    `    free-page-hint-postcopy: overrule`,
    `    hint-apply: between-iterations`,
    `    hint-pace: { block: ${k.hintBlockNs}ns, zero-touched-page: ${k.zeroTouchedPageNs}ns, zero-fresh-page: ${k.zeroFreshPageNs}ns }`,
    `link: { bandwidth: ${k.linkBytesPerSec}, latency: ${k.linkLatencyNs}ns, scan-cost: ${k.scanNsPerPage}ns }`,
    `host: { cores: ${k.hostCores}, rescan-cost: ${k.rescanNsPerPage}ns, switchover: ${k.switchoverNs / 1e6}ms${fault > 0 ? `, destination-fault: ${fault}ns` : ''}${advisedLoad > 0 ? `, advised-device-load: ${advisedLoad}ns` : ''},`,
    `        iteration: ${C.QEMU_ITERATION_NS_MIN / 1e6}ms, iteration-pages: ${C.QEMU_ITERATION_LOOK_PAGES} }`,
    `capabilities: { ${caps.join(', ')} }`,
    `parameters: { max-bandwidth: ${bwName}, downtime-limit: ${c.downtimeLimitMs} }`,
    `migration: { start: ${C.LAB_MIGRATION_START_NS / 1e6}ms }`,
    `time-limit: 60s`,
    `settle: 100ms`,
    '',
  ];
  return lines.join('\n');
}

/** A lab file: where its rows come from (shown in the headers) and its rows. */
export interface LabSource {
  readonly source: string;
  readonly rows: readonly LabRow[];
}

/** A lab case with its scenario file. */
export interface LabScenarioFile {
  readonly labCase: LabCase;
  readonly file: string;
  readonly yaml: string;
}

/**
 * Every case of `sources` with its scenario. The guest's boot data comes from the idle hint-off
 * runs of the same size and init_on_alloc, its unhintable free memory from the alloc hint-on
 * 128 MiB/s runs of the same size (for an init_on_alloc=0 alloc guest, the alloc data those runs
 * left unhinted), looked up in `derivation` (default: all rows of `sources`).
 */
export function labScenarioFiles(sources: readonly LabSource[], derivation?: readonly LabRow[], calibration: LabCalibration = C.LAB_CALIBRATION): LabScenarioFile[] {
  const all = derivation ?? sources.flatMap((s) => s.rows);
  const out: LabScenarioFile[] = [];
  for (const src of sources) {
    for (const labCase of labCases(src.rows)) {
      const sameBoot = all.filter((r) => initOnAllocOf(r) === labCase.initOnAlloc);
      const kd = kernelDataPages(sameBoot, labCase.memMib) ?? kernelDataPages(all, labCase.memMib);
      if (kd === null) throw new Error(`lab case ${labCase.id}: no idle hint-off run of a ${labCase.memMib} MiB guest to take its boot data from`);
      const top = topDataBytes(sameBoot, labCase.memMib) ?? topDataBytes(all, labCase.memMib);
      const allocData = labCase.workload === 'alloc' ? unhintableAllocDataKb(all, labCase.memMib) : null;
      const unhintable = allocData ?? unhintableFreeKb(all, labCase.memMib) ?? 0;
      const inputs = { labCase, kernelDataPages: kd, unhintableFreeKb: unhintable, topDataBytes: top, source: src.source, calibration };
      out.push({ labCase, file: labScenarioFile(labCase), yaml: labScenarioYaml(inputs) });
    }
  }
  return out;
}
