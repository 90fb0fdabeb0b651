import { ftruncateSync } from "node:fs";
import { writeFully } from "../io/output.ts";
import type { Blake3 } from "./blake3.ts";

/** Output is written in chunks of about this size: one write syscall per ~1 MiB, never per line. */
export const FLUSH_BYTES = 1 << 20;
/** While the disk is full, lines are held in memory up to this much; past it the output fails. */
export const HOLD_MAX_BYTES = 64 << 20;

/** A write the disk refused for want of space: the lines are held and written again later. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}
/** `,"chain":"` — the chain value is the last key of every line. */
const CHAIN_PREFIX = new TextEncoder().encode(',"chain":"');
/** Bytes a line gains after its record JSON loses its final `}`: prefix, 64 hex, `"}` and `\n`. */
const SUFFIX_LEN = CHAIN_PREFIX.length + 64 + 3;
const HEX_ASCII = new TextEncoder().encode("0123456789abcdef");

/** Write 32 digest bytes (8 little-endian words) as 64 lowercase hex ASCII bytes at dest[pos..]. */
export function putHex(words: Uint32Array, dest: Uint8Array, pos: number): void {
  for (let i = 0; i < 8; i++) {
    const w = words[i]!;
    for (let s = 0; s < 32; s += 8) {
      const b = (w >>> s) & 255;
      dest[pos++] = HEX_ASCII[b >>> 4]!;
      dest[pos++] = HEX_ASCII[b & 15]!;
    }
  }
}

/**
 * The chain state and the output buffer: turns record bodies into chained lines and writes them
 * in large chunks. Knows what is on disk (whole lines only) so a failed write can be cut back.
 * Used by the writer in its own thread and by the hash worker.
 */
export class LineSink {
  /** chain value of the last appended line (genesis before the first) */
  readonly chain: Uint32Array;
  appended = 0;
  /** What is known to be written: whole lines only. */
  readonly flushedChain: Uint32Array;
  flushedCount = 0;
  flushedBytes = 0;
  private buf = new Uint8Array(FLUSH_BYTES + 64 * 1024);
  private pos = 0;
  /** The last write failed for want of space: lines are held, nothing is flushed until flush() is called. */
  private stalled = false;
  /** v2: this link's key, derived from the link key and the previous chain value */
  private readonly linkKeyNow = new Uint32Array(8);

  constructor(
    private readonly fd: number,
    /** Regular files are cut back to their last whole line after a failed write. */
    private readonly truncatable: boolean,
    chain: Uint32Array,
    count: number,
    writtenBytes: number,
    /** v2 (keyed): every link is keyed by blake3_keyed(linkKey, previous chain); null: v1 */
    private readonly linkKey: Uint32Array | null = null,
    /** a full disk holds the lines for a later flush (the tracer) instead of dropping them with an error */
    private readonly holdWhenFull = false,
  ) {
    this.chain = new Uint32Array(chain);
    this.flushedChain = new Uint32Array(chain);
    this.appended = this.flushedCount = count;
    this.flushedBytes = writtenBytes;
  }

  /**
   * Chain the record JSON in h.scratch[0..n) (a padded object text ending in `}`) and buffer its
   * line: the JSON without `}`, then `,"chain":"<hex>"}` and a newline.
   */
  appendBody(h: Blake3, n: number): void {
    // room first: a failed flush leaves the chain as it was
    if (this.pos + n + SUFFIX_LEN > this.buf.length) {
      if (!this.stalled) this.flushOrHold();
      if (this.pos + n + SUFFIX_LEN > this.buf.length) this.grow(this.pos + n + SUFFIX_LEN);
    }
    const chain = this.chain;
    chain.set(h.digest(n, linkKeyOf(h, this.linkKey, chain, this.linkKeyNow)));
    const buf = this.buf;
    let p = this.pos;
    h.scratch.copy(buf, p, 0, n - 1);
    p += n - 1;
    buf.set(CHAIN_PREFIX, p);
    p += CHAIN_PREFIX.length;
    putHex(chain, buf, p);
    p += 64;
    buf[p++] = 34; // "
    buf[p++] = 125; // }
    buf[p++] = 10; // \n
    this.pos = p;
    this.appended++;
    if (p >= FLUSH_BYTES && !this.stalled) this.flushOrHold();
  }

  /** Lines held in memory because the disk refused them (0 when none). */
  get heldBytes(): number {
    return this.stalled ? this.pos : 0;
  }

  /** Flush; a full disk only marks the lines held (the next flush() says so and tries again). */
  private flushOrHold(): void {
    try {
      this.flush();
    } catch (err) {
      if (!this.stalled) throw err;
    }
  }

  /** A larger buffer, keeping what it holds; past HOLD_MAX_BYTES the held lines are given up (an error). */
  private grow(need: number): void {
    if (need > HOLD_MAX_BYTES && this.stalled) {
      throw Object.assign(
        new Error(`more than ${HOLD_MAX_BYTES >> 20} MiB of lines held while the disk is full`),
        {
          code: "ENOSPC",
          held: true,
        },
      );
    }
    const bigger = new Uint8Array(Math.max(need + 64 * 1024, Math.min(this.buf.length * 2, HOLD_MAX_BYTES)));
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
  }

  /**
   * Write the buffered lines. On failure the file is cut back to its last whole line and the error is thrown;
   * the unwritten lines are dropped from the chain state, except when a file's disk is full (ENOSPC, EDQUOT)
   * and the sink holds lines then: they stay, in order, for the next flush.
   */
  flush(): void {
    try {
      // a file is written at its known end: after a failed write, the retry starts where it began
      writeFully(this.fd, this.buf, 0, this.pos, this.truncatable ? this.flushedBytes : undefined);
    } catch (err) {
      if (this.truncatable) {
        try {
          ftruncateSync(this.fd, this.flushedBytes);
        } catch {
          // verify will report the torn last line
        }
      }
      // a full disk: the lines stay buffered, in the chain, to be written once there is room
      this.stalled =
        this.holdWhenFull && this.truncatable && isOutOfSpace(err) && !(err as { held?: boolean }).held;
      if (!this.stalled) {
        this.pos = 0;
        this.appended = this.flushedCount;
        this.chain.set(this.flushedChain);
      }
      throw err;
    }
    this.stalled = false;
    this.flushedBytes += this.pos;
    this.pos = 0;
    this.flushedCount = this.appended;
    this.flushedChain.set(this.chain);
  }
}

/**
 * The key a line is chained under after `previous`: `previous` itself in v1; in v2 blake3_keyed(linkKey,
 * previous), written to `out`, so each link needs the secret, not only the first.
 */
export function linkKeyOf(
  h: Blake3,
  linkKey: Uint32Array | null,
  previous: Uint32Array,
  out: Uint32Array,
): Uint32Array {
  if (linkKey === null) return previous;
  h.keyedWords(linkKey, previous, out);
  return out;
}
