/**
 * Bytes → text without losing any: UTF-8 is decoded, and a byte that is not part of valid UTF-8 becomes
 * the escape `\xNN`, as strace itself writes bytes it does not print. A record's raw_line is then the line
 * as read, never a U+FFFD in place of what was there.
 */

const HEX = "0123456789abcdef";
/** ignoreBOM keeps a U+FEFF inside the input; the stream's own leading BOM is dropped by LosslessDecoder. */
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Length of the valid UTF-8 sequence at `i` (1–4), or 0 when the byte there does not start one. */
function sequenceAt(b: Uint8Array, i: number, end: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0;
    else if (c === 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90;
    else if (c === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > end) return 0;
  const second = b[i + 1]!;
  if (second < lo || second > hi) return 0;
  for (let k = 2; k < n; k++) {
    const d = b[i + k]!;
    if (d < 0x80 || d > 0xbf) return 0;
  }
  return n;
}

/** `\xNN` for one byte. */
export function byteEscape(c: number): string {
  return `\\x${HEX[c >> 4]}${HEX[c & 15]}`;
}

/** Decodes b[start..end): valid UTF-8 as text, every other byte as `\xNN`. */
export function utf8OrEscapes(b: Uint8Array, start = 0, end = b.length): string {
  try {
    return fatal.decode(b.subarray(start, end));
  } catch {
    // some byte is not UTF-8: decode the valid runs and escape the rest
  }
  let out = "";
  let run = start;
  let i = start;
  while (i < end) {
    const n = sequenceAt(b, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) out += fatal.decode(b.subarray(run, i));
    out += byteEscape(b[i]!);
    i++;
    run = i;
  }
  if (end > run) out += fatal.decode(b.subarray(run, end));
  return out;
}

/** How many bytes at the end of b[0..end) begin a UTF-8 sequence that the next chunk may complete. */
function openTail(b: Uint8Array, end: number): number {
  for (let k = 1; k <= 3 && k <= end; k++) {
    const c = b[end - k]!;
    if (c < 0x80) return 0;
    if (c >= 0xc0) {
      const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      return need > k ? k : 0;
    }
  }
  return 0;
}

/** A stream of chunks → text; a sequence split between chunks is kept until its end arrives. */
export class LosslessDecoder {
  private carry: Uint8Array | null = null;
  private started = false;

  decode(chunk: Uint8Array): string {
    let bytes = chunk;
    if (this.carry !== null) {
      bytes = new Uint8Array(this.carry.length + chunk.length);
      bytes.set(this.carry);
      bytes.set(chunk, this.carry.length);
      this.carry = null;
    }
    const tail = openTail(bytes, bytes.length);
    // a copy (a Buffer's slice would share memory): the caller may reuse the chunk's buffer
    if (tail > 0) this.carry = Uint8Array.from(bytes.subarray(bytes.length - tail));
    let start = 0;
    if (!this.started && bytes.length - tail > 0) {
      this.started = true;
      if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    }
    return utf8OrEscapes(bytes, start, bytes.length - tail);
  }

  /** End of input: an unfinished sequence is escaped byte by byte. */
  end(): string {
    const carry = this.carry;
    this.carry = null;
    return carry === null ? "" : utf8OrEscapes(carry);
  }
}
