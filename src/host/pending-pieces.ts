/**
 * The destination's main-channel pieces received and not yet loaded, oldest first
 * (host/incoming.ts). `take` hands out the oldest pieces up to a byte budget, whole pieces
 * only, so a postcopy load can stop after a slice and leave the rest for the next event-loop
 * turn. With the hop trace on, each piece keeps the time it arrived.
 */
export class PendingPieces {
  private pieces: Uint8Array[] = [];
  private arrivedNs: number[] = [];
  /** Bytes held. */
  bytes = 0;

  /** Appends a piece (and when it arrived, with the hop trace on). */
  push(piece: Uint8Array, arrivedNs?: number): void {
    this.pieces.push(piece);
    if (arrivedNs !== undefined) this.arrivedNs.push(arrivedNs);
    this.bytes += piece.length;
  }

  get isEmpty(): boolean {
    return this.pieces.length === 0;
  }

  /**
   * Removes and returns the oldest pieces: at least one, then more while fewer than
   * `maxBytes` were taken (Infinity takes all). `arrivedNs` is empty without the hop trace.
   */
  take(maxBytes: number): { readonly pieces: Uint8Array[]; readonly arrivedNs: number[] } {
    let count = 0;
    let takenBytes = 0;
    while (count < this.pieces.length && (count === 0 || takenBytes < maxBytes)) takenBytes += this.pieces[count++].length;
    const all = count === this.pieces.length;
    const pieces = all ? this.pieces : this.pieces.slice(0, count);
    const arrivedNs = all ? this.arrivedNs : this.arrivedNs.slice(0, count);
    this.pieces = all ? [] : this.pieces.slice(count);
    this.arrivedNs = all ? [] : this.arrivedNs.slice(count);
    this.bytes -= takenBytes;
    return { pieces, arrivedNs };
  }

  /** Drops every piece (a dead connection's bytes). */
  clear(): void {
    this.pieces = [];
    this.arrivedNs = [];
    this.bytes = 0;
  }
}
