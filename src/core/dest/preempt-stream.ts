/**
 * The destination's postcopy-preempt channel (facts §3.10): bare RAM records of requested
 * pages, decoded by format's BareRamDecoder and placed through the same page sink as the main
 * channel (page-sink.ts), so each page is placed once whichever channel brings it first.
 *
 *   onBytes('preempt') ─► BareRamDecoder (blocks = the main stream's MEM_SIZE list)
 *                             ├─ PAGE / ZERO ─► PagePlacer (exactly once) ─► page-ready
 *                             └─ EOS ─► mark 'preempt-eos' (the channel is over); a postcopy
 *                                        EOF on main that waited for it completes now
 *
 * With capability postcopy-preempt on the destination, the main stream's postcopy EOF
 * completes only once this channel's EOS was decoded (QEMU 7.2 joins the preempt thread,
 * which reads until EOS, before it completes): a requested page still in flight here must not
 * be lost to the end of postcopy.
 *
 * Bytes are taken while a load is under way (precopy, postcopy, postcopy-recover); bytes when
 * there is none (before the stream, paused, completed, failed) are dropped with a mark, as are
 * bytes after a decode error. A decode or placement error is a load error (pauses after RUN).
 * A replaced connection (postcopy recovery) gets a fresh decoder: its partial record is
 * dropped and its first record names its block again.
 */
import { BareRamDecoder } from '../../format/bare-ram-decoder.ts';
import type { VersionPageSink } from '../../format/ram-records.ts';
import type { StreamRecord } from '../../format/stream-types.ts';
import type { PagePayloadMode } from '../engine-types.ts';
import type { DestContext } from './dest-context.ts';
import { toDestError } from './dest-errors.ts';
import type { FaultTracker } from './fault-tracker.ts';
import { createPageSink } from './page-sink.ts';
import type { PagePlacer } from './placement.ts';
import type { IncomingStream } from './incoming-stream.ts';

export class PreemptStream {
  /** The shared per-input state. */
  private readonly ctx: DestContext;
  /** The main channel (its decoder holds the RAM block list). */
  private readonly main: IncomingStream;
  /** PAGE payload mode of both channels. */
  private readonly payloadMode: PagePayloadMode;
  /** Places this channel's records. */
  private readonly sink: VersionPageSink;
  /** The current connection's decoder; null until its first bytes. */
  private decoder: BareRamDecoder | null = null;
  /** Bytes pushed on this channel, over all its connections. */
  bytesReceived = 0;

  constructor(ctx: DestContext, placer: PagePlacer, faults: FaultTracker, main: IncomingStream, payloadMode: PagePayloadMode) {
    this.ctx = ctx;
    this.main = main;
    this.payloadMode = payloadMode;
    this.sink = createPageSink(ctx, placer, faults, (record) => this.onRecord(record));
  }

  /** True once the current connection's EOS was decoded. */
  get sawEos(): boolean {
    return this.decoder?.sawEos ?? false;
  }

  /** Bytes arrived on the preempt channel. */
  push(bytes: Uint8Array): void {
    const ctx = this.ctx;
    const kind = ctx.phase.kind;
    if (kind !== 'precopy' && kind !== 'postcopy' && kind !== 'recover') {
      ctx.mark('preempt-bytes-dropped', `${bytes.length} byte(s) in ${kind}`);
      return;
    }
    const decoder = this.current();
    if (decoder.error !== null) {
      ctx.mark('preempt-bytes-dropped', `${bytes.length} byte(s) after a preempt channel error`);
      return;
    }
    this.bytesReceived += bytes.length;
    try {
      decoder.push(bytes);
    } catch (e) {
      ctx.loadError(toDestError(e));
    }
  }

  /** The peer closed the channel: before its EOS, during a load after RUN, that is a load error. */
  close(): void {
    const decoder = this.decoder;
    const kind = this.ctx.phase.kind;
    if (decoder === null || decoder.error !== null || decoder.sawEos || (kind !== 'postcopy' && kind !== 'recover')) return;
    try {
      decoder.end();
    } catch (e) {
      this.ctx.loadError(toDestError(e));
    }
  }

  /** A new connection replaced the channel (postcopy recovery). */
  replace(): void {
    this.decoder = null;
  }

  private current(): BareRamDecoder {
    if (this.decoder === null) {
      this.decoder = new BareRamDecoder(this.sink, { pagePayloadMode: this.payloadMode });
      this.decoder.adoptBlocks(this.main.decoder.ramBlocks);
    }
    return this.decoder;
  }

  private onRecord(record: StreamRecord): void {
    if (record.kind !== 'ram-eos') return this.ctx.mark('preempt-record', record.kind);
    this.ctx.mark('preempt-eos');
    this.main.onPreemptEos();
  }
}
