import { ftruncateSync } from "node:fs";
import { writeFully } from "../io/output.ts";
import type { Blake3 } from "./blake3.ts";

/** Output is written in chunks of about this size: one write syscall per ~1 MiB, never per line. */
export const FLUSH_BYTES = 1 << 20;
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
    const chain = this.chain;
    chain.set(h.digest(n, linkKeyOf(h, this.linkKey, chain, this.linkKeyNow)));
    if (this.pos + n + SUFFIX_LEN > this.buf.length) {
      this.flush();
      if (n + SUFFIX_LEN > this.buf.length) this.buf = new Uint8Array(n + SUFFIX_LEN + 64 * 1024);
    }
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
    if (p >= FLUSH_BYTES) this.flush();
  }

  /**
   * Write the buffered lines. On failure the file is cut back to its last whole line, the
   * unwritten lines are dropped from the chain state, and the error is thrown.
   */
  flush(): void {
    try {
      writeFully(this.fd, this.buf, 0, this.pos);
    } catch (err) {
      if (this.truncatable) {
        try {
          ftruncateSync(this.fd, this.flushedBytes);
        } catch {
          // verify will report the torn last line
        }
      }
      this.pos = 0;
      this.appended = this.flushedCount;
      this.chain.set(this.flushedChain);
      throw err;
    }
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
