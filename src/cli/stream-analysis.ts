/**
 * `livemig analyze` for a main migration stream: decodes a whole stream from a ByteSource
 * with StreamDecoder, chunk by chunk, and collects a JSON-able StreamAnalysis: the header,
 * CONFIGURATION, every section, the RAM blocks rebuilt by RamTracker, the commands (PACKAGED
 * ones with the records nested in them), the device states, EOF / VMDESCRIPTION and the first
 * decode error. When the file ends with a VMDESCRIPTION, its device list drives the decoding
 * of device sections (createVmDescDeviceDecoder); without one, an unknown device section is
 * the decoder's opaque-section error, which the analysis keeps with an explanation.
 */
import { StreamDecoder } from '../format/stream-decoder.ts';
import { FormatError } from '../format/errors.ts';
import { MIG_ERR_OPAQUE_SECTION } from '../format/stream-errors.ts';
import { findVmDescription, VMDESC_SEARCH_WINDOW_BYTES } from '../format/vmdesc.ts';
import { createVmDescDeviceDecoder } from '../format/vmdesc-decoder.ts';
import type { Command, DeviceSectionDecoder, RamBlockRef, SectionHeader, StreamRecord, StreamSink } from '../format/stream-types.ts';
import type { ByteSource } from './byte-source.ts';
import { RamTracker, DEFAULT_MAX_RAM_BYTES } from './ram-tracker.ts';
import type { RamBlockSummary } from './ram-tracker.ts';

export interface SectionEntry {
  readonly type: 'START' | 'PART' | 'END' | 'FULL';
  readonly sectionId: number;
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  readonly offset: number;
  readonly bytes: number;
  /** 0 in the main stream, 1 inside PACKAGED data. */
  readonly depth: number;
  /** RAM sections: PAGE and ZERO records in this section. */
  readonly normalPages?: number;
  readonly zeroPages?: number;
}

/** A record inside PACKAGED data, in order. */
export type NestedEntry =
  | { readonly kind: 'command'; readonly offset: number; readonly command: Command }
  | { readonly kind: 'section'; readonly section: SectionEntry }
  | { readonly kind: 'eof'; readonly offset: number };

export interface CommandEntry {
  readonly offset: number;
  readonly command: Command;
  /** PACKAGED only: the records of the nested stream. */
  readonly nested?: NestedEntry[];
}

export interface DeviceEntry {
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  readonly sectionType: string;
  readonly offset: number;
  readonly depth: number;
  readonly state: unknown;
}

export interface VmdescDeviceEntry {
  readonly name: string;
  readonly instanceId: number;
  readonly version: number | null;
  readonly vmsdName: string | null;
  readonly fields: number;
  readonly subsections: readonly string[];
}

export interface DecodeErrorEntry {
  readonly code: string;
  readonly message: string;
  readonly offset: number;
  readonly section: { readonly idstr: string; readonly sectionId: number } | null;
  /** A plain-words explanation where one helps (the opaque-section error). */
  readonly explanation?: string;
}

export interface StreamAnalysis {
  readonly kind: 'stream';
  readonly source: { readonly path: string; readonly fileBytes: number; readonly gzip: boolean; readonly streamBytes: number };
  readonly chunkBytes: number;
  readonly version: number | null;
  readonly configuration: { machine: string; targetPageBits: number | null; capabilities: string[]; uuid: string | null; offset: number } | null;
  readonly sections: SectionEntry[];
  readonly ramBlocks: RamBlockSummary[];
  readonly commands: CommandEntry[];
  readonly devices: { readonly fromSections: DeviceEntry[]; readonly fromVmdescription: VmdescDeviceEntry[] | null };
  readonly eof: { readonly offset: number } | null;
  readonly vmdescription: { readonly offset: number; readonly lengthBytes: number; readonly devices: number } | null;
  /** Bytes the decoder consumed (all of them on success). */
  readonly decodedBytes: number;
  readonly error: DecodeErrorEntry | null;
  readonly notes: string[];
}

export interface AnalyzeStreamOptions {
  readonly chunkBytes: number;
  readonly maxRamBytes?: number;
}

const OPAQUE_EXPLANATION =
  'QEMU device sections are not self-describing: only the VMDESCRIPTION JSON, which QEMU appends after EOF ' +
  'when it migrates to a file or pipe in precopy, tells their field layout. This input has no VMDESCRIPTION ' +
  '(a postcopy or live-socket capture, a truncated file, or a stream written with it switched off), so livemig ' +
  'cannot find where this section ends and stops here. Everything before it is reported above.';

/** Collects the analysis from decoder records. */
class AnalysisSink implements StreamSink {
  readonly sections: SectionEntry[] = [];
  readonly commands: CommandEntry[] = [];
  readonly devices: DeviceEntry[] = [];
  version: number | null = null;
  configuration: StreamAnalysis['configuration'] = null;
  eof: { offset: number } | null = null;
  vmdescOffset: number | null = null;
  vmdescLength = 0;
  private openPackage: NestedEntry[] | null = null;
  private sectionNormal = 0;
  private sectionZero = 0;

  constructor(readonly ram: RamTracker) {}

  record(r: StreamRecord): void {
    switch (r.kind) {
      case 'header':
        this.version = r.version;
        return;
      case 'configuration': {
        const c = r.configuration;
        this.configuration = {
          machine: c.machine,
          targetPageBits: c.targetPageBits ?? null,
          capabilities: [...(c.capabilities ?? [])],
          uuid: c.uuid === undefined ? null : Buffer.from(c.uuid).toString('hex'),
          offset: r.offset,
        };
        if (c.targetPageBits !== undefined) this.ram.pageSizeBytes = 2 ** c.targetPageBits;
        return;
      }
      case 'section-begin':
        this.sectionNormal = 0;
        this.sectionZero = 0;
        return;
      case 'section-end':
        return this.sectionEnd(r.header, r.lengthBytes);
      case 'ram-blocks':
        this.ram.onBlockList(r.totalBytes, r.blocks);
        return;
      case 'device':
        this.devices.push({
          idstr: r.header.idstr,
          instanceId: r.header.instanceId,
          versionId: r.header.versionId,
          sectionType: r.header.type.toUpperCase(),
          offset: r.header.offset,
          depth: r.header.depth,
          state: r.state,
        });
        return;
      case 'command':
        return this.command(r.command, r.offset, r.depth);
      case 'packaged-end':
        this.openPackage = null;
        return;
      case 'eof':
        if (r.depth === 0) this.eof = { offset: r.offset };
        else this.openPackage?.push({ kind: 'eof', offset: r.offset });
        return;
      case 'vmdescription':
        this.vmdescOffset = r.offset;
        this.vmdescLength = Buffer.byteLength(r.json, 'utf8');
        return;
      case 'ram-eos':
        return;
    }
  }

  private sectionEnd(h: SectionHeader, lengthBytes: number): void {
    const entry: { -readonly [K in keyof SectionEntry]: SectionEntry[K] } = {
      type: h.type.toUpperCase() as SectionEntry['type'],
      sectionId: h.sectionId,
      idstr: h.idstr,
      instanceId: h.instanceId,
      versionId: h.versionId,
      offset: h.offset,
      bytes: lengthBytes,
      depth: h.depth,
    };
    if (this.sectionNormal + this.sectionZero > 0) {
      entry.normalPages = this.sectionNormal;
      entry.zeroPages = this.sectionZero;
    }
    this.sections.push(entry);
    if (h.depth === 1) this.openPackage?.push({ kind: 'section', section: entry });
  }

  private command(command: Command, offset: number, depth: number): void {
    if (command.kind === 'postcopy-ram-discard') this.ram.discard(command.blockName, command.ranges);
    if (depth === 1 && this.openPackage !== null) {
      this.openPackage.push({ kind: 'command', offset, command });
      return;
    }
    if (command.kind === 'packaged') {
      const nested: NestedEntry[] = [];
      this.openPackage = nested;
      this.commands.push({ offset, command, nested });
      return;
    }
    this.commands.push({ offset, command });
  }

  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.sectionNormal++;
    this.ram.page(block, offsetBytes, data);
  }

  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void {
    this.sectionZero++;
    this.ram.zero(block, offsetBytes, fill);
  }
}

/** Decodes the whole stream of `source`; never throws a FormatError (it goes into `error`). */
export async function analyzeStream(source: ByteSource, options: AnalyzeStreamOptions): Promise<{ analysis: StreamAnalysis; ram: RamTracker }> {
  const notes: string[] = [];
  // The tail first: for a gzip file one decompression pass then yields the size as well.
  const tail = await source.tail(VMDESC_SEARCH_WINDOW_BYTES);
  const streamBytes = await source.contentBytes();
  const ram = new RamTracker(options.maxRamBytes ?? DEFAULT_MAX_RAM_BYTES);
  const sink = new AnalysisSink(ram);

  let deviceDecoder: DeviceSectionDecoder | undefined;
  let fromVmdescription: VmdescDeviceEntry[] | null = null;
  try {
    const found = findVmDescription(tail);
    if (found !== null) {
      deviceDecoder = createVmDescDeviceDecoder(found.description);
      fromVmdescription = found.description.devices.map((d) => ({
        name: d.name,
        instanceId: d.instanceId,
        version: d.version ?? null,
        vmsdName: d.vmsdName ?? null,
        fields: d.fields.length,
        subsections: d.subsections.map((s) => s.vmsdName ?? '?'),
      }));
      if (found.method !== 'length') notes.push('VMDESCRIPTION located by analyze-migration.py\'s heuristic, not by an exact record length');
    }
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    notes.push(`a VMDESCRIPTION was found but is unusable (${e.code}: ${e.message}); device sections other than timer/globalstate cannot be decoded`);
  }

  const decoder = new StreamDecoder(sink, deviceDecoder === undefined ? {} : { deviceDecoder });
  let error: DecodeErrorEntry | null = null;
  try {
    for await (const chunk of source.chunks(options.chunkBytes)) decoder.push(chunk);
    decoder.end();
  } catch (e) {
    const fe = e instanceof FormatError ? e : decoder.error;
    if (fe === null) throw e;
    error = {
      code: fe.code,
      message: fe.message,
      offset: fe.offset,
      section: fe.section,
      ...(fe.code === MIG_ERR_OPAQUE_SECTION && deviceDecoder === undefined ? { explanation: OPAQUE_EXPLANATION } : {}),
    };
  }
  notes.push(...ram.notes);
  const analysis: StreamAnalysis = {
    kind: 'stream',
    source: { path: source.label, fileBytes: source.fileBytes, gzip: source.gzip, streamBytes },
    chunkBytes: options.chunkBytes,
    version: sink.version,
    configuration: sink.configuration,
    sections: sink.sections,
    ramBlocks: ram.summaries(),
    commands: sink.commands,
    devices: { fromSections: sink.devices, fromVmdescription },
    eof: sink.eof,
    vmdescription: sink.vmdescOffset === null ? null : { offset: sink.vmdescOffset, lengthBytes: sink.vmdescLength, devices: fromVmdescription?.length ?? 0 },
    decodedBytes: decoder.offsetBytes,
    error,
    notes,
  };
  return { analysis, ram };
}
