/**
 * TCP reassembly of one direction of a connection, as the kernel hands it over: segments given by their
 * offset from the stream's first byte, in capture order — out of order, retransmitted, overlapping, one byte
 * at a time, or with holes. Bytes are delivered once, in stream order, from offset 0. A segment that continues
 * the stream is delivered as it is (no copy); one beyond a hole is copied and kept until the hole fills, within
 * a bound. The first copy of a byte wins, as in the receiving TCP stack; a later copy that disagrees with a
 * kept one is counted as a conflict (bytes already delivered are not kept, so cannot be compared).
 */

/** Where the delivered bytes go: `chunk[start, end)`, valid only during the call. */
export interface ByteSink {
  write(chunk: Uint8Array, start: number, end: number): void;
}

interface Piece {
  offset: number;
  bytes: Uint8Array;
}

export class StreamReassembler {
  /** offset of the first byte not yet delivered */
  delivered = 0;
  /** bytes kept beyond a hole */
  pendingBytes = 0;
  /** kept bytes that a later copy contradicted */
  conflicts = 0;
  /** a segment beyond a hole did not fit in `maxPending` (it was dropped) */
  overflowed = false;
  readonly #pieces: Piece[] = [];

  constructor(
    private readonly sink: ByteSink,
    /** stream bytes followed from offset 0; later ones are ignored */
    private readonly window: number,
    /** most bytes kept beyond a hole */
    private readonly maxPending: number,
  ) {}

  /** Whether bytes are waiting beyond a hole. */
  get hasHole(): boolean {
    return this.#pieces.length > 0;
  }

  /** The segment `bytes[start, end)` (all of `bytes` by default) at stream `offset`. */
  push(offset: number, bytes: Uint8Array, start = 0, end = bytes.length): void {
    let last = offset + (end - start);
    if (last > this.window) last = this.window;
    if (last <= this.delivered || offset >= last) return; // already delivered, or outside the window
    if (offset < this.delivered) {
      start += this.delivered - offset;
      offset = this.delivered;
    }
    end = start + (last - offset);
    if (offset > this.delivered) {
      this.#keep(offset, bytes.subarray(start, end));
      return;
    }
    if (this.#pieces.length > 0) this.#compareKept(offset, bytes.subarray(start, end));
    this.delivered = last;
    this.sink.write(bytes, start, end);
    this.#drain();
  }

  /** Delivers kept pieces that now continue the stream. */
  #drain(): void {
    const pieces = this.#pieces;
    let k = 0;
    for (; k < pieces.length && pieces[k]!.offset <= this.delivered; k++) {
      const piece = pieces[k]!;
      this.pendingBytes -= piece.bytes.length;
      const end = piece.offset + piece.bytes.length;
      if (end <= this.delivered) continue;
      const from = this.delivered - piece.offset;
      this.delivered = end;
      this.sink.write(piece.bytes, from, piece.bytes.length);
    }
    if (k > 0) pieces.splice(0, k);
  }

  /** Counts a conflict where `bytes` at `offset` disagree with a kept piece. */
  #compareKept(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    for (const piece of this.#pieces) {
      if (piece.offset >= end) break;
      const from = Math.max(offset, piece.offset);
      const to = Math.min(end, piece.offset + piece.bytes.length);
      for (let o = from; o < to; o++) {
        if (bytes[o - offset] !== piece.bytes[o - piece.offset]) {
          this.conflicts++;
          break;
        }
      }
    }
  }

  /** Keeps a copy of the parts of a segment beyond a hole that no kept piece covers yet. */
  #keep(offset: number, bytes: Uint8Array): void {
    this.#compareKept(offset, bytes);
    const pieces = this.#pieces;
    const end = offset + bytes.length;
    let at = offset;
    let i = 0;
    while (at < end) {
      while (i < pieces.length && pieces[i]!.offset + pieces[i]!.bytes.length <= at) i++;
      const next = pieces[i];
      const gapEnd = next === undefined ? end : Math.min(end, next.offset);
      if (gapEnd > at) {
        if (this.pendingBytes + (gapEnd - at) > this.maxPending) {
          this.overflowed = true;
          return;
        }
        pieces.splice(i, 0, { offset: at, bytes: bytes.slice(at - offset, gapEnd - offset) });
        this.pendingBytes += gapEnd - at;
        i++;
        at = gapEnd;
      } else if (next !== undefined) at = next.offset + next.bytes.length;
    }
  }
}
