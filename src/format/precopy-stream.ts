/**
 * A complete precopy stream as QEMU 7.2 writes it for `-M none` (facts §1.7, §1.9, §1.10):
 * header, CONFIGURATION, START `ram` with the MEM_SIZE list, one PART with every page (all-zero
 * pages as ZERO fill 0), END with nothing dirty, FULL `timer` and `globalstate`, EOF and the
 * VMDESCRIPTION JSON that QEMU writes for those two devices. A QEMU 7.2 destination started
 * with the same machine and block layout loads it.
 */
import type { RamBlockInfo } from './stream-types.ts';
import type { TimerState } from './sections.ts';
import { encodeToBytes } from './stream-encoder.ts';
import type { StreamEncoder } from './stream-encoder.ts';
import { DEFAULT_TARGET_PAGE_BITS, RAM_SECTION_IDSTR, RAM_SECTION_VERSION } from './constants.ts';

export interface PrecopyStreamInput {
  /** Machine type name for CONFIGURATION, e.g. "none" or "pc-i440fx-7.2". */
  readonly machine: string;
  /** RAM blocks in QEMU's list order, each with its whole contents (a multiple of the page size). */
  readonly blocks: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>;
  /** Section ids; the defaults are those QEMU 7.2 `-M none` uses (timer 0, ram 2, globalstate 4). */
  readonly ramSectionId?: number;
  readonly timerSectionId?: number;
  readonly globalstateSectionId?: number;
  /** The `timer` offsets (default 0). */
  readonly timer?: TimerState;
  /** The runstate sent in `globalstate` (default "running"). */
  readonly runstate?: string;
  /** Whether to write the VMDESCRIPTION (default true). */
  readonly vmdescription?: boolean;
  readonly targetPageBits?: number;
}

/** Encodes a whole precopy stream into one array. */
export function encodePrecopyStream(input: PrecopyStreamInput): Uint8Array {
  const targetPageBits = input.targetPageBits ?? DEFAULT_TARGET_PAGE_BITS;
  return encodeToBytes((e) => writePrecopyStream(e, input), { targetPageBits, chunkSizeBytes: 4 * 1024 * 1024 });
}

/** Writes a whole precopy stream through `e` (which decides how the chunks travel). */
export function writePrecopyStream(e: StreamEncoder, input: PrecopyStreamInput): void {
  const ramId = input.ramSectionId ?? 2;
  const timerId = input.timerSectionId ?? 0;
  const globalstateId = input.globalstateSectionId ?? 4;
  const blocks: RamBlockInfo[] = input.blocks.map((b) => ({ name: b.name, usedLengthBytes: b.bytes.length }));
  e.header();
  e.configuration({ machine: input.machine });
  e.sectionStart(ramId, RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
  e.ramMemSize(blocks);
  e.ramEos();
  e.footer(ramId);
  e.sectionPart(ramId);
  for (const b of input.blocks) e.ramPages(b.name, b.bytes);
  e.ramEos();
  e.footer(ramId);
  e.sectionEnd(ramId);
  e.ramEos();
  e.footer(ramId);
  e.timerSection(timerId, input.timer ?? { cpu_ticks_offset: 0n, cpu_clock_offset: 0n });
  e.globalstateSection(globalstateId, input.runstate ?? 'running');
  e.eof();
  if (input.vmdescription ?? true) e.vmdescription(precopyVmdescriptionJson(e.pageSizeBytes));
}

/**
 * The VMDESCRIPTION QEMU 7.2 writes for a `-M none` machine (devices `timer` and
 * `globalstate`), byte for byte: Python-style JSON with ", " and ": " separators.
 */
export function precopyVmdescriptionJson(pageSizeBytes: number): string {
  const description = {
    page_size: pageSizeBytes,
    devices: [
      {
        name: 'timer',
        instance_id: 0,
        vmsd_name: 'timer',
        version: 2,
        fields: [
          { name: 'cpu_ticks_offset', type: 'int64', size: 8 },
          { name: 'unused', type: 'unused_buffer', size: 8 },
          { name: 'cpu_clock_offset', type: 'int64', size: 8 },
        ],
      },
      {
        name: 'globalstate',
        instance_id: 0,
        vmsd_name: 'globalstate',
        version: 1,
        fields: [
          { name: 'size', type: 'uint32', size: 4 },
          { name: 'runstate', type: 'buffer', size: 100 },
        ],
      },
    ],
  };
  return qemuJson(description);
}

/** Serializes plain JSON values the way QEMU's JSON writer lays them out (", " and ": "). */
export function qemuJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(qemuJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const parts = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${JSON.stringify(k)}: ${qemuJson(v)}`);
    return `{${parts.join(', ')}}`;
  }
  return JSON.stringify(value);
}
