/**
 * A push decoder for QEMU 7.2's main migration stream (facts §1, §2, §3.1). Chunks of any
 * size go in through `push`; records come out through a `StreamSink` as soon as they are
 * complete. At each record boundary the decoder tries to read one whole unit (a header, a
 * command, a RAM record, a device section with its footer) from the bytes it has; a
 * ShortReadError means "wait", and only the unconsumed tail is carried into the next push.
 * Runs of RAM pages inside one chunk take a fast loop that hands the sink views of the chunk,
 * without copies or per-record objects.
 *
 * The first error is sticky: `error` keeps it and every later push or end throws it again.
 * Chunk handling (the carry, limits on buffering, offsets) lives in PushDecoder; this file is
 * the stream's grammar.
 */
import { ByteReader, ShortReadError, Unsafe64Error, utf8Decode } from '../lib/bytes.ts';
import type { ErrorSection } from './errors.ts';
import type { DeviceSectionDecoder, RamBlockRef, SectionHeader, SectionType, StreamSink } from './stream-types.ts';
import {
  DEFAULT_TARGET_PAGE_BITS,
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_FILE_VERSION_COMPAT,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_VMDESCRIPTION,
  RAM_SECTION_IDSTR,
  RAM_SECTION_VERSION,
} from './constants.ts';
import {
  DEFAULT_STREAM_LIMITS,
  MIG_ERR_BAD_MAGIC,
  MIG_ERR_CONFIG,
  MIG_ERR_INTEGER_RANGE,
  MIG_ERR_LIMIT,
  MIG_ERR_OBSOLETE_VERSION,
  MIG_ERR_PACKAGED,
  MIG_ERR_POSTCOPY_STATE,
  MIG_ERR_SECTION_VERSION,
  MIG_ERR_TRAILING,
  MIG_ERR_TRUNCATED,
  MIG_ERR_UNKNOWN_SECTION,
  MIG_ERR_UNKNOWN_TYPE,
  MIG_ERR_UNSUPPORTED_VERSION,
} from './stream-errors.ts';
import type { StreamLimits } from './stream-errors.ts';
import { isVersionPageSink, RamLoader, type RamPayloadMode } from './ram-records.ts';
import { PushDecoder } from './push-decoder.ts';
import { nextPostcopyPhase, readCommand } from './commands.ts';
import type { PostcopyPhase } from './commands.ts';
import { decodeDeviceSectionPayload, readConfiguration, readFooter, readFullHeaderFields } from './sections.ts';

export interface StreamDecoderOptions {
  /** Decodes device sections other than ram/timer/globalstate (e.g. one driven by a VMDESCRIPTION). */
  readonly deviceDecoder?: DeviceSectionDecoder;
  /** Overrides of the default limits. */
  readonly limits?: Partial<StreamLimits>;
  /** Local target page bits (12 on x86_64); a CONFIGURATION that disagrees is an error. */
  readonly targetPageBits?: number;
  /** Capability postcopy-ram on the receiving side (MEM_SIZE page sizes of `hugePageBlocks`). */
  readonly postcopyRam?: boolean;
  /** Receiving-side blocks whose page size differs from the host page size. */
  readonly hugePageBlocks?: readonly string[];
  /** Capability x-ignore-shared (also switched on by the CONFIGURATION capabilities list). */
  readonly ignoreShared?: boolean;
  /** QEMU refuses a stream without CONFIGURATION ("Configuration section missing"); default true. */
  readonly requireConfiguration?: boolean;
  /**
   * PAGE payloads: `bytes` (default, QEMU's) or the simulator's compact `version` mode (see
   * ram-records.ts), which needs a sink with `ramPageVersion` (a VersionPageSink).
   */
  readonly pagePayloadMode?: RamPayloadMode;
}

const enum St {
  Header,
  Config,
  Top,
  Ram,
  Footer,
  AfterEof,
  Done,
}

/** What kind of unit a short read happened in: bounds how much the carry may hold. */
const enum Unit {
  Small,
  Device,
  Vmdesc,
}

interface SectionInfo {
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  readonly isRam: boolean;
}

export class StreamDecoder extends PushDecoder {
  private readonly sink: StreamSink;
  private readonly deviceDecoder: DeviceSectionDecoder | undefined;
  private readonly limits: StreamLimits;
  private readonly localPageBits: number | undefined;
  private readonly requireConfiguration: boolean;
  private readonly ram: RamLoader;
  private st = St.Header;
  private depth = 0;
  /** Absolute offset where the current PACKAGED data ends (valid at depth 1). */
  private packageEnd = 0;
  private postcopy: PostcopyPhase = 'none';
  private readonly sections = new Map<number, SectionInfo>();
  /** The section being decoded (for errors), or null between sections. */
  private current: SectionHeader | null = null;
  private sectionStartOffset = 0;
  private unit = Unit.Small;

  constructor(sink: StreamSink, options: StreamDecoderOptions = {}) {
    super();
    if (options.pagePayloadMode === 'version' && !isVersionPageSink(sink)) {
      throw new TypeError("StreamDecoder: pagePayloadMode 'version' needs a sink with ramPageVersion (VersionPageSink)");
    }
    this.sink = sink;
    this.deviceDecoder = options.deviceDecoder;
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...options.limits };
    this.localPageBits = options.targetPageBits;
    this.requireConfiguration = options.requireConfiguration ?? true;
    this.ram = new RamLoader(
      {
        limits: this.limits,
        postcopyRam: options.postcopyRam ?? false,
        hugePageBlocks: new Set(options.hugePageBlocks ?? []),
        ignoreShared: options.ignoreShared ?? false,
        pagePayloadMode: options.pagePayloadMode ?? 'bytes',
      },
      options.targetPageBits ?? DEFAULT_TARGET_PAGE_BITS,
    );
  }

  /** True once EOF of the main stream was decoded. */
  get sawEof(): boolean {
    return this.st === St.AfterEof || this.st === St.Done;
  }

  /** The RAM blocks of the last MEM_SIZE list (empty before the RAM setup). */
  get ramBlocks(): readonly RamBlockRef[] {
    return this.ram.blockList;
  }

  /**
   * Postcopy recovery (facts §3.11): the stream goes on at the top level of a new connection
   * (no header, no CONFIGURATION). The old connection's partial record and a sticky error are
   * dropped; sections, RAM blocks and the postcopy state are kept; CONTINUE needs a named
   * record first. Later error offsets count from the new connection's start.
   */
  resumeOnNewChannel(): void {
    this.restartInput();
    this.st = St.Top;
    this.depth = 0;
    this.packageEnd = 0;
    this.current = null;
    this.unit = Unit.Small;
    this.ram.forgetLastBlock();
  }

  protected checkComplete(): void {
    if (this.depth === 1) throw this.fail(MIG_ERR_TRUNCATED, 'stream ended inside PACKAGED data', this.pushedBytes);
    if (!this.sawEof) throw this.fail(MIG_ERR_TRUNCATED, 'stream ended before EOF', this.pushedBytes);
  }

  protected currentSection(): ErrorSection | null {
    const cur = this.current;
    return cur === null ? null : { idstr: cur.idstr, sectionId: cur.sectionId };
  }

  /** The most bytes the pending unit may take, by kind. */
  protected pendingBound(): { bound: number; what: string } {
    const l = this.limits;
    if (this.unit === Unit.Device) return { bound: l.maxDeviceSectionBytes + 300, what: 'device section' };
    if (this.unit === Unit.Vmdesc) return { bound: l.maxVmdescriptionBytes + 5, what: 'VMDESCRIPTION' };
    return { bound: 65536 + 300 * l.maxRamBlocks + l.maxMachineNameBytes + 256 * l.maxCapabilities, what: 'record' };
  }

  /**
   * Decodes whole units (see PushDecoder.parse). On the carry (`stopAt` finite) the RAM fast
   * loop stays off, so that pages after the cut record are decoded from the chunk as views.
   */
  protected parse(bytes: Uint8Array, view: DataView, start: number, end: number, base: number, stopAt: number): number {
    this.base = base;
    let pos = start;
    for (;;) {
      if (pos >= stopAt) {
        this.shortNeedBytes = 0;
        return pos;
      }
      let limit = end;
      let packageLimited = false;
      if (this.depth === 1) {
        const packageEndPos = this.packageEnd - base;
        if (pos === packageEndPos) {
          if (this.st !== St.Top) throw this.fail(MIG_ERR_PACKAGED, 'PACKAGED data ended inside a section', pos);
          this.depth = 0;
          this.sink.record({ kind: 'packaged-end', offset: base + pos });
          continue;
        }
        if (packageEndPos <= end) {
          limit = packageEndPos;
          packageLimited = true;
        }
      }
      if (this.st === St.Ram && stopAt === Infinity) {
        pos = this.ram.fastRun(bytes, view, pos, limit, this.sink);
        this.consumedBytes = base + pos;
        // A page record cut by the end of the chunk: wait for the rest (no slow-path throw).
        if (this.ram.fastShortNeedBytes > 0 && !packageLimited) {
          this.shortNeedBytes = this.ram.fastShortNeedBytes;
          return pos;
        }
      }
      if (pos >= end) {
        this.shortNeedBytes = 0;
        return pos;
      }
      const r = new ByteReader(bytes, pos, limit);
      try {
        this.unit = Unit.Small;
        this.step(r);
      } catch (e) {
        if (e instanceof ShortReadError) {
          if (packageLimited) throw this.fail(MIG_ERR_PACKAGED, 'a record crosses the end of the PACKAGED data', pos);
          this.shortNeedBytes = e.needBytes;
          return pos;
        }
        if (e instanceof Unsafe64Error) throw this.fail(MIG_ERR_INTEGER_RANGE, e.message, e.offset);
        throw e;
      }
      pos = r.pos;
      this.consumedBytes = base + pos;
    }
  }

  /** Decodes one unit in the current state. */
  private step(r: ByteReader): void {
    switch (this.st) {
      case St.Header:
        return this.stepHeader(r);
      case St.Config:
        return this.stepConfig(r);
      case St.Top:
        return this.stepTop(r);
      case St.Ram:
        if (this.ram.readRecord(r, this, this.sink, this.current as SectionHeader)) this.st = St.Footer;
        return;
      case St.Footer:
        return this.stepFooter(r);
      case St.AfterEof:
        return this.stepAfterEof(r);
      case St.Done:
        throw this.fail(MIG_ERR_TRAILING, 'unexpected bytes after the VMDESCRIPTION', r.pos);
    }
  }

  private stepHeader(r: ByteReader): void {
    const magic = r.be32();
    if (magic !== QEMU_VM_FILE_MAGIC) throw this.fail(MIG_ERR_BAD_MAGIC, 'Not a migration stream', 0);
    const version = r.be32();
    if (version === QEMU_VM_FILE_VERSION_COMPAT) {
      throw this.fail(MIG_ERR_OBSOLETE_VERSION, "SaveVM v2 format is obsolete and don't work anymore", 4);
    }
    if (version !== QEMU_VM_FILE_VERSION) {
      throw this.fail(MIG_ERR_UNSUPPORTED_VERSION, `Unsupported migration stream version ${version}`, 4);
    }
    this.st = St.Config;
    this.sink.record({ kind: 'header', version });
  }

  private stepConfig(r: ByteReader): void {
    const at = r.pos;
    if (r.peekU8() !== QEMU_VM_CONFIGURATION) {
      if (this.requireConfiguration) throw this.fail(MIG_ERR_CONFIG, 'Configuration section missing', at);
      this.st = St.Top;
      return;
    }
    r.u8();
    const configuration = readConfiguration(r, this, this.limits);
    if (configuration.targetPageBits !== undefined) {
      if (this.localPageBits !== undefined && configuration.targetPageBits !== this.localPageBits) {
        throw this.fail(MIG_ERR_CONFIG, `Received TARGET_PAGE_BITS is ${configuration.targetPageBits} but local is ${this.localPageBits}`, at);
      }
      this.ram.setTargetPageBits(configuration.targetPageBits);
    }
    if (configuration.capabilities?.includes('x-ignore-shared')) this.ram.enableIgnoreShared();
    this.st = St.Top;
    this.sink.record({ kind: 'configuration', configuration, offset: this.base + at });
  }

  private stepTop(r: ByteReader): void {
    this.current = null;
    const at = r.pos;
    const type = r.u8();
    switch (type) {
      case QEMU_VM_EOF:
        if (this.depth === 0) this.st = St.AfterEof;
        this.sink.record({ kind: 'eof', offset: this.base + at, depth: this.depth });
        return;
      case QEMU_VM_SECTION_START:
      case QEMU_VM_SECTION_FULL: {
        const f = readFullHeaderFields(r);
        const isRam = f.idstr === RAM_SECTION_IDSTR;
        const sectionType: SectionType = type === QEMU_VM_SECTION_START ? 'start' : 'full';
        const header: SectionHeader = { type: sectionType, ...f, offset: this.base + at, depth: this.depth };
        this.current = header;
        if (isRam && f.versionId !== RAM_SECTION_VERSION) {
          throw this.fail(MIG_ERR_SECTION_VERSION, `savevm: unsupported version ${f.versionId} for 'ram' v${RAM_SECTION_VERSION}`, at);
        }
        this.sections.set(f.sectionId, { idstr: f.idstr, instanceId: f.instanceId, versionId: f.versionId, isRam });
        if (isRam) return this.beginRam(header, true);
        return this.deviceSection(r, header, at);
      }
      case QEMU_VM_SECTION_PART:
      case QEMU_VM_SECTION_END: {
        const sectionId = r.be32();
        const info = this.sections.get(sectionId);
        if (info === undefined) throw this.fail(MIG_ERR_UNKNOWN_SECTION, `Unknown savevm section ${sectionId}`, at);
        const header: SectionHeader = {
          type: type === QEMU_VM_SECTION_PART ? 'part' : 'end',
          sectionId,
          idstr: info.idstr,
          instanceId: info.instanceId,
          versionId: info.versionId,
          offset: this.base + at,
          depth: this.depth,
        };
        this.current = header;
        if (info.isRam) return this.beginRam(header, false);
        return this.deviceSection(r, header, at);
      }
      case QEMU_VM_COMMAND:
        return this.stepCommand(r, at);
      case QEMU_VM_CONFIGURATION:
        throw this.fail(MIG_ERR_CONFIG, 'CONFIGURATION record out of place: it must follow the file header', at);
      case QEMU_VM_VMDESCRIPTION:
        throw this.fail(MIG_ERR_UNKNOWN_TYPE, `VMDESCRIPTION before EOF${this.depth === 1 ? ' (inside PACKAGED data)' : ''}`, at);
      default:
        throw this.fail(MIG_ERR_UNKNOWN_TYPE, `Unknown savevm section type ${type}`, at);
    }
  }

  private beginRam(header: SectionHeader, setup: boolean): void {
    if (setup) this.ram.beginSetup();
    this.sectionStartOffset = header.offset;
    this.st = St.Ram;
    this.sink.record({ kind: 'section-begin', header });
  }

  /** A non-RAM section as one unit: payload and footer, then its three records. */
  private deviceSection(r: ByteReader, header: SectionHeader, at: number): void {
    this.unit = Unit.Device;
    const state = decodeDeviceSectionPayload(r, this, header, at, this.deviceDecoder);
    readFooter(r, this, header.sectionId, header.idstr);
    this.sink.record({ kind: 'section-begin', header });
    this.sink.record({ kind: 'device', header, state });
    this.sink.record({ kind: 'section-end', header, lengthBytes: r.pos - at });
  }

  private stepFooter(r: ByteReader): void {
    const header = this.current as SectionHeader;
    readFooter(r, this, header.sectionId, header.idstr);
    this.st = St.Top;
    this.current = null;
    this.sink.record({ kind: 'section-end', header, lengthBytes: this.base + r.pos - this.sectionStartOffset });
  }

  private stepCommand(r: ByteReader, at: number): void {
    const command = readCommand(r, this, this.limits);
    const next = nextPostcopyPhase(this.postcopy, command);
    if (next === null) {
      throw this.fail(MIG_ERR_POSTCOPY_STATE, `CMD_${command.kind.toUpperCase().replace(/-/g, '_')} in wrong postcopy state (${this.postcopy})`, at);
    }
    if (command.kind === 'postcopy-ram-discard') this.ram.checkDiscard(command.blockName, command.ranges, this, at);
    if (command.kind === 'packaged' && this.depth === 1) throw this.fail(MIG_ERR_PACKAGED, 'PACKAGED inside PACKAGED data', at);
    this.postcopy = next;
    this.ram.postcopyMode = next === 'listening' || next === 'running';
    this.sink.record({ kind: 'command', command, offset: this.base + at, depth: this.depth });
    if (command.kind === 'packaged') {
      this.depth = 1;
      this.packageEnd = this.base + r.pos + command.lengthBytes;
    }
  }

  private stepAfterEof(r: ByteReader): void {
    const at = r.pos;
    const type = r.u8();
    if (type !== QEMU_VM_VMDESCRIPTION) throw this.fail(MIG_ERR_TRAILING, `Expected vmdescription section, but got ${type}`, at);
    const length = r.be32();
    if (length > this.limits.maxVmdescriptionBytes) {
      throw this.fail(MIG_ERR_LIMIT, `VMDESCRIPTION of ${length} bytes exceeds the limit of ${this.limits.maxVmdescriptionBytes}`, at);
    }
    this.unit = Unit.Vmdesc;
    const json = utf8Decode(r.bytesView(length));
    this.st = St.Done;
    this.sink.record({ kind: 'vmdescription', json, offset: this.base + at });
  }
}

/** Decodes a whole stream held in memory; throws the first FormatError. */
export function decodeStream(bytes: Uint8Array, sink: StreamSink, options: StreamDecoderOptions = {}): StreamDecoder {
  const decoder = new StreamDecoder(sink, options);
  decoder.push(bytes);
  decoder.end();
  return decoder;
}
