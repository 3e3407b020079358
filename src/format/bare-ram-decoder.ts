/**
 * A push decoder for the postcopy-preempt channel (facts §3.10): bare RAM records, with no
 * file header, no sections and no footers, ended by one EOS. QEMU 7.2's source writes the
 * pages a destination requested there, each as `be64 offset|flags [+ u8 n, block name] +
 * payload`, with a CONTINUE state of its own (the first record on the channel, and the first
 * after a recovery, names its block).
 *
 *   push(chunk) ─► fast run of PAGE|CONTINUE / ZERO|CONTINUE ─► sink.ramPage / ramZero
 *                └► one record at a time (named records, exact pages, EOS) ─► sink
 *
 * The records are the main stream's RAM records, so this reuses RamLoader (ram-records.ts) in
 * postcopy mode: only ZERO, PAGE and EOS are accepted. The channel never carries a MEM_SIZE
 * list; the block list comes from the main stream's decoder (`adoptBlocks`, before the first
 * record). EOS is delivered as a `ram-eos` record; any byte after it is MIG_ERR_TRAILING.
 * Errors are sticky FormatErrors with offsets in this channel's bytes.
 */
import { ByteReader, ShortReadError, Unsafe64Error } from '../lib/bytes.ts';
import type { ErrorSection } from './errors.ts';
import { DEFAULT_TARGET_PAGE_BITS } from './constants.ts';
import { PushDecoder } from './push-decoder.ts';
import { isVersionPageSink, RamLoader, type RamPayloadMode } from './ram-records.ts';
import { DEFAULT_STREAM_LIMITS, MIG_ERR_INTEGER_RANGE, MIG_ERR_TRAILING, MIG_ERR_TRUNCATED } from './stream-errors.ts';
import type { RamBlockRef, SectionHeader, StreamSink } from './stream-types.ts';

export interface BareRamDecoderOptions {
  /** PAGE payloads: `bytes` (default, QEMU's) or the simulator's compact `version` mode. */
  readonly pagePayloadMode?: RamPayloadMode;
  /** Target page bits (12 on x86_64, the default). */
  readonly targetPageBits?: number;
}

/** The section header records are read under: the channel has none, so a stand-in PART. */
const BARE_HEADER: SectionHeader = { type: 'part', sectionId: 0, idstr: 'ram', instanceId: 0, versionId: 4, offset: 0, depth: 0 };
/** Bound on one buffered record: word, name, and an exact page behind its version mark. */
const MAX_RECORD_BYTES = 8 + 256 + 8 + 65536;

export class BareRamDecoder extends PushDecoder {
  private readonly sink: StreamSink;
  private readonly ram: RamLoader;
  /** EOS was decoded: the channel is over. */
  private eos = false;

  constructor(sink: StreamSink, options: BareRamDecoderOptions = {}) {
    super();
    const mode = options.pagePayloadMode ?? 'bytes';
    if (mode === 'version' && !isVersionPageSink(sink)) {
      throw new TypeError("BareRamDecoder: pagePayloadMode 'version' needs a sink with ramPageVersion (VersionPageSink)");
    }
    this.sink = sink;
    this.ram = new RamLoader(
      { limits: DEFAULT_STREAM_LIMITS, postcopyRam: true, hugePageBlocks: new Set(), ignoreShared: false, pagePayloadMode: mode },
      options.targetPageBits ?? DEFAULT_TARGET_PAGE_BITS,
    );
    this.ram.postcopyMode = true;
  }

  /** The blocks records may name: the main stream's MEM_SIZE list (StreamDecoder.ramBlocks). */
  adoptBlocks(blocks: readonly RamBlockRef[]): void {
    this.ram.adoptBlocks(blocks);
  }

  /** True once the channel's EOS was decoded. */
  get sawEos(): boolean {
    return this.eos;
  }

  protected checkComplete(): void {
    if (!this.eos) throw this.fail(MIG_ERR_TRUNCATED, 'postcopy-preempt channel ended before EOS', this.pushedBytes);
  }

  protected currentSection(): ErrorSection | null {
    return null;
  }

  protected pendingBound(): { bound: number; what: string } {
    return { bound: MAX_RECORD_BYTES, what: 'postcopy-preempt record' };
  }

  protected parse(bytes: Uint8Array, view: DataView, start: number, end: number, base: number, stopAt: number): number {
    this.base = base;
    let pos = start;
    for (;;) {
      if (pos >= stopAt) {
        this.shortNeedBytes = 0;
        return pos;
      }
      if (!this.eos && stopAt === Infinity) {
        pos = this.ram.fastRun(bytes, view, pos, end, this.sink);
        this.consumedBytes = base + pos;
      }
      if (pos >= end) {
        this.shortNeedBytes = 0;
        return pos;
      }
      if (this.eos) throw this.fail(MIG_ERR_TRAILING, 'bytes after EOS on the postcopy-preempt channel', pos);
      const r = new ByteReader(bytes, pos, end);
      try {
        if (this.ram.readRecord(r, this, this.sink, BARE_HEADER)) this.eos = true;
      } catch (e) {
        if (e instanceof ShortReadError) {
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
}
