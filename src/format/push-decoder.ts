/**
 * The chunk handling shared by push decoders: feeding, carrying a unit cut by a chunk
 * boundary into the next push, bounding what may be buffered, sticky errors and offsets.
 * A subclass supplies `parse`, which decodes whole units from a buffer and stops at the first
 * incomplete one (recording how many more bytes its failed read needed); this class decides
 * where those bytes come from. Only the unconsumed tail of a chunk is ever copied.
 */
import { FormatError } from './errors.ts';
import type { ErrorSection } from './errors.ts';
import { CarryBuffer } from './carry-buffer.ts';
import { MIG_ERR_CALLBACK, MIG_ERR_LIMIT, MIG_ERR_TRUNCATED, MIG_ERR_USAGE } from './stream-errors.ts';
import type { DecodeContext } from './sections.ts';

export abstract class PushDecoder implements DecodeContext {
  /** The first error, once one happened; later calls throw it again. */
  error: FormatError | null = null;
  /** Absolute offset of `bytes[0]` of the buffer being parsed. */
  protected base = 0;
  protected pushedBytes = 0;
  protected consumedBytes = 0;
  /** After `parse` stopped at an incomplete unit: how many more bytes its failed read needed. */
  protected shortNeedBytes = 0;
  private readonly carry = new CarryBuffer();
  private ended = false;

  /**
   * Decodes whole units from `bytes[start, end)`, where `bytes[0]` is at absolute offset
   * `base`. Returns `end`, the start of an incomplete unit (with shortNeedBytes set), or the
   * first unit boundary at or after `stopAt`.
   */
  protected abstract parse(bytes: Uint8Array, view: DataView, start: number, end: number, base: number, stopAt: number): number;

  /** The most bytes the pending (incomplete) unit may occupy, and what to call it. */
  protected abstract pendingBound(): { readonly bound: number; readonly what: string };

  /** Called by `end()` when no partial unit is left: throws when the input is incomplete. */
  protected abstract checkComplete(): void;

  /** The section errors should name, if any. */
  protected abstract currentSection(): ErrorSection | null;

  /** Bytes fully decoded so far: the absolute offset of the next undecoded byte. */
  get offsetBytes(): number {
    return this.consumedBytes;
  }

  /** Bytes received through push so far. */
  get receivedBytes(): number {
    return this.pushedBytes;
  }

  /** Feeds the next bytes; throws the (sticky) FormatError on malformed input. */
  push(chunk: Uint8Array): void {
    if (this.error !== null) throw this.error;
    if (this.ended) throw this.setError(new FormatError(MIG_ERR_USAGE, 'push() after end()', this.pushedBytes, null));
    const chunkBase = this.pushedBytes;
    this.pushedBytes += chunk.length;
    try {
      let start = 0;
      if (this.carry.length > 0) {
        start = this.drainCarry(chunk);
        if (start < 0) return;
      }
      const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const stop = this.parse(chunk, view, start, chunk.length, chunkBase, Infinity);
      if (stop < chunk.length) {
        this.checkPending(chunk.length - stop, stop);
        this.carry.append(chunk, stop, chunk.length - stop);
      }
    } catch (e) {
      throw this.onThrow(e);
    }
  }

  /** Declares the end of input; a partial unit is MIG_ERR_TRUNCATED. */
  end(): void {
    if (this.error !== null) throw this.error;
    if (this.ended) return;
    this.ended = true;
    this.base = 0;
    try {
      if (this.carry.length > 0) {
        throw this.fail(MIG_ERR_TRUNCATED, `stream ended inside a record (${this.shortNeedBytes} more byte(s) needed)`, this.pushedBytes);
      }
      this.checkComplete();
    } catch (e) {
      throw this.onThrow(e);
    }
  }

  /**
   * Starts over on a new connection (postcopy recovery): the carried partial unit, the sticky
   * error and the end are forgotten and offsets count from 0 again. The subclass resets its
   * grammar state to the unit boundary the new connection starts at.
   */
  protected restartInput(): void {
    this.error = null;
    this.ended = false;
    this.carry.clear();
    this.base = 0;
    this.pushedBytes = 0;
    this.consumedBytes = 0;
    this.shortNeedBytes = 0;
  }

  /** DecodeContext: a FormatError at position `pos` of the buffer being parsed. */
  fail(code: string, message: string, pos: number): FormatError {
    return new FormatError(code, message, this.base + pos, this.currentSection());
  }

  private setError(e: FormatError): FormatError {
    this.error = e;
    return e;
  }

  /** Makes a thrown value sticky; a non-format exception (from a callback) propagates as is. */
  private onThrow(e: unknown): unknown {
    if (e instanceof FormatError) return this.setError(e);
    const message = e instanceof Error ? e.message : String(e);
    const wrapped = new FormatError(MIG_ERR_CALLBACK, `a callback threw: ${message}`, this.consumedBytes, null);
    wrapped.cause = e;
    this.setError(wrapped);
    return e;
  }

  /**
   * Completes the unit the carry starts with, taking bytes from `chunk`. Returns the chunk
   * position where direct parsing resumes, or -1 when the whole chunk went into the carry.
   * The first attempt takes exactly the bytes the failed read asked for, so a RAM record cut
   * by a chunk boundary costs one record's copy and the pages after it stay views of the
   * chunk; a unit that keeps asking (a device section read field by field) gets geometrically
   * larger steps, so it is re-parsed only a logarithmic number of times. No parse is tried
   * before the failed read could succeed.
   */
  private drainCarry(chunk: Uint8Array): number {
    const c = this.carry;
    let taken = 0;
    for (let attempt = 0; ; attempt++) {
      const available = chunk.length - taken;
      if (available === 0) return -1;
      const want = attempt === 0 ? this.shortNeedBytes : Math.max(this.shortNeedBytes, c.length);
      const step = Math.min(available, Math.max(want, 1));
      c.append(chunk, taken, step);
      taken += step;
      if (step < this.shortNeedBytes) {
        this.shortNeedBytes -= step;
        return -1;
      }
      // The carry's own bytes come first, then `taken` bytes of this chunk; stopping at the
      // first boundary inside the chunk's bytes leaves the rest to be decoded from the chunk.
      const ownBytes = c.length - taken;
      const stop = this.parse(c.bytes, c.view, 0, c.length, this.pushedBytes - chunk.length - ownBytes, ownBytes);
      if (stop >= ownBytes) {
        c.clear();
        return stop - ownBytes;
      }
      this.checkPending(c.length - stop, stop);
      if (stop > 0) c.dropFront(stop);
    }
  }

  /**
   * Refuses to keep waiting for a unit that would exceed its bound: `heldBytes` of it are
   * here (from `pos` of the buffer just parsed) and shortNeedBytes more are needed.
   */
  private checkPending(heldBytes: number, pos: number): void {
    const { bound, what } = this.pendingBound();
    if (heldBytes + this.shortNeedBytes > bound) {
      throw this.fail(MIG_ERR_LIMIT, `${what} larger than ${bound} bytes while buffering`, pos);
    }
  }
}
