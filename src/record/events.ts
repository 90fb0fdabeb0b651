/**
 * The user-side mirror of bpf/record.h: `struct record_event` (an 80-byte header), `struct record_data` after it,
 * and `struct record_config`. test/record/layout.test.ts compiles the header and compares every offset, size and
 * constant with the tables below. The decoder reads from the ring buffer's memory and copies what it keeps.
 */

export const RECORD_HEADER_SIZE = 80;
export const RECORD_DATA_SIZE = 904;
export const RECORD_NR_MAX = 512;
export const RECORD_STR_MAX = 256;
export const RECORD_ARGV_MAX = 8;
export const RECORD_ARGV_LEN = 32;
export const RECORD_BLOB_MAX = 128;
export const RECORD_CONFIG_SIZE = 4 * RECORD_NR_MAX;

/** Index of each counter in the object's `stats` map. */
export const RecordStat = { Attempted: 0, Dropped: 1 } as const;
export const RECORD_STAT_COUNT = 2;

/** enum record_kind */
export const RecordKind = { Enter: 1, Exit: 2, Fork: 3, Exec: 4, Gone: 5 } as const;

/** RECORD_SHARE_*: what a new task shares with its creator. */
export const Share = { Thread: 1, Files: 2, Fs: 4, Vm: 8 } as const;

/** record_event.flags */
export const RecordFlag = {
  Str0Cut: 1,
  Str1Cut: 2,
  ArgvMore: 4,
  Str0Fault: 8,
  Str1Fault: 16,
  BlobFault: 32,
  Reread: 64,
} as const;

/** The fields of a descriptor word, in order (RECORD_D_*): each holds an argument index + 1. */
export const DescField = {
  Str0: 0,
  Str1: 1,
  AddrIn: 2,
  StructIn: 3,
  Argv: 4,
  AddrOut: 5,
  FdsOut: 6,
  StrOut: 7,
  StatOut: 8,
} as const;

/** Field → [offset, size] in struct record_event. */
export const RECORD_EVENT_LAYOUT = {
  ts_ns: [0, 8],
  pid: [8, 4],
  tid: [12, 4],
  kind: [16, 2],
  nr: [18, 2],
  flags: [20, 2],
  data_len: [22, 2],
  ret: [24, 8],
  args: [32, 48],
} as const;

/** Field → [offset, size] in struct record_data. */
export const RECORD_DATA_LAYOUT = {
  len0: [0, 2],
  len1: [2, 2],
  blob_len: [4, 2],
  argc: [6, 2],
  str0: [8, RECORD_STR_MAX],
  blob: [264, RECORD_BLOB_MAX],
  str1: [392, RECORD_STR_MAX],
  argv: [648, RECORD_ARGV_MAX * RECORD_ARGV_LEN],
} as const;

export const RECORD_CONFIG_LAYOUT = { desc: [0, RECORD_CONFIG_SIZE] } as const;

export const DATA_STR0 = RECORD_DATA_LAYOUT.str0[0];
const DATA_BLOB = RECORD_DATA_LAYOUT.blob[0];
export const DATA_STR1 = RECORD_DATA_LAYOUT.str1[0];
const DATA_ARGV = RECORD_DATA_LAYOUT.argv[0];

/**
 * One event, decoded into an object that is filled again and again (no allocation per event): its data part is
 * copied out of the ring buffer, and str0, str1, blob and argv are views of that copy, made when asked for.
 */
export class RecordEvent {
  tsNs = 0;
  pid = 0;
  tid = 0;
  kind = 0;
  nr = 0;
  flags = 0;
  /** the return value; FORK: the new tid; EXEC: the tid that called execve; GONE: the exit code */
  ret = 0;
  /** the six argument registers, low and high 32 bits of each (see argWord) */
  readonly argLo = [0, 0, 0, 0, 0, 0];
  readonly argHi = [0, 0, 0, 0, 0, 0];
  /** struct record_data as it came, in the parts used (lengths below, bounded) */
  readonly data = Buffer.from(new ArrayBuffer(RECORD_DATA_SIZE));
  /** the same bytes, a word at a time (the decoder copies them so) */
  readonly data32 = new Uint32Array(this.data.buffer, 0, RECORD_DATA_SIZE >>> 2);
  /** bytes of str0 and str1 without their NUL; -1: none */
  len0 = -1;
  len1 = -1;
  blobLen = 0;
  argc = 0;

  get str0(): Uint8Array | null {
    return this.len0 >= 0 ? this.data.subarray(DATA_STR0, DATA_STR0 + this.len0) : null;
  }

  get str1(): Uint8Array | null {
    return this.len1 >= 0 ? this.data.subarray(DATA_STR1, DATA_STR1 + this.len1) : null;
  }

  get blob(): Uint8Array | null {
    return this.blobLen > 0 ? this.data.subarray(DATA_BLOB, DATA_BLOB + this.blobLen) : null;
  }

  /** execve's argv entries, each without its NUL */
  get argv(): Uint8Array[] | null {
    if (this.argc === 0) return null;
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.argc; i++) {
      const at = DATA_ARGV + i * RECORD_ARGV_LEN;
      const nul = this.data.subarray(at, at + RECORD_ARGV_LEN).indexOf(0);
      out.push(this.data.subarray(at, at + (nul < 0 ? RECORD_ARGV_LEN : nul)));
    }
    return out;
  }
}

const utf8 = new TextDecoder();
export const textOf = (bytes: Uint8Array): string => utf8.decode(bytes);

/** Length of a NUL-terminated field of `len` bytes (the NUL included), without the NUL. */
function cLength(bytes: Uint8Array, at: number, len: number): number {
  return len > 0 && bytes[at + len - 1] === 0 ? len - 1 : len;
}

/**
 * Reads events out of one buffer (the ring buffer's data area) through typed-array views in the host's byte
 * order, as the kernel wrote them: no DataView call, no BigInt, no allocation per event. Events start 8-byte
 * aligned (the ring buffer's records do), so every field is read at its natural alignment.
 */
export class RecordDecoder {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;

  /** `byteOffset` a multiple of 8 */
  constructor(buffer: ArrayBufferLike, byteOffset: number, byteLength: number) {
    this.u8 = new Uint8Array(buffer, byteOffset, byteLength);
    this.u16 = new Uint16Array(buffer, byteOffset, byteLength >>> 1);
    this.u32 = new Uint32Array(buffer, byteOffset, byteLength >>> 2);
    this.i32 = new Int32Array(buffer, byteOffset, byteLength >>> 2);
  }

  /**
   * The event at `offset` (8-byte aligned, `length` bytes, padded to 8 as ring records are) into `into`. Events
   * shorter than their header, or whose data does not fit, are refused (null): nothing is read past the record.
   */
  decode(offset: number, length: number, into: RecordEvent): RecordEvent | null {
    if (length < RECORD_HEADER_SIZE || (offset & 7) !== 0) return null;
    const u16 = this.u16;
    const u32 = this.u32;
    const w = offset >>> 2;
    const h = offset >>> 1;
    const dataLen = u16[h + 11]!;
    if (
      dataLen !== 0 &&
      (dataLen < DATA_STR0 || dataLen > RECORD_DATA_SIZE || RECORD_HEADER_SIZE + dataLen > length)
    )
      return null;
    const d = offset + RECORD_HEADER_SIZE;
    const dh = d >>> 1;
    const len0 = dataLen === 0 ? 0 : u16[dh]!;
    const len1 = dataLen === 0 ? 0 : u16[dh + 1]!;
    const blobLen = dataLen === 0 ? 0 : u16[dh + 2]!;
    const argc = dataLen === 0 ? 0 : u16[dh + 3]!;
    // a field must lie whole within the data the kernel sent, and within its own bounds
    if (
      len0 > RECORD_STR_MAX ||
      len1 > RECORD_STR_MAX ||
      blobLen > RECORD_BLOB_MAX ||
      argc > RECORD_ARGV_MAX ||
      (len0 > 0 && DATA_STR0 + len0 > dataLen) ||
      (blobLen > 0 && DATA_BLOB + blobLen > dataLen) ||
      (len1 > 0 && DATA_STR1 + len1 > dataLen) ||
      (argc > 0 && DATA_ARGV + argc * RECORD_ARGV_LEN > dataLen)
    )
      return null;
    const ev = into;
    ev.tsNs = u32[w + 1]! * 0x1_0000_0000 + u32[w]!;
    ev.pid = u32[w + 2]!;
    ev.tid = u32[w + 3]!;
    ev.kind = u16[h + 8]!;
    ev.nr = u16[h + 9]!;
    ev.flags = u16[h + 10]!;
    ev.ret = this.i32[w + 7]! * 0x1_0000_0000 + u32[w + 6]!;
    const lo = ev.argLo;
    const hi = ev.argHi;
    for (let i = 0, a = w + 8; i < 6; i++, a += 2) {
      lo[i] = u32[a]!;
      hi[i] = u32[a + 1]!;
    }
    ev.len0 = -1;
    ev.len1 = -1;
    ev.blobLen = 0;
    ev.argc = 0;
    if (dataLen === 0) return ev;
    const u8 = this.u8;
    if (len0 > 0) {
      ev.len0 = cLength(u8, d + DATA_STR0, len0);
      this.copy(d + DATA_STR0, ev, DATA_STR0, ev.len0);
    }
    if (blobLen > 0) {
      ev.blobLen = blobLen;
      this.copy(d + DATA_BLOB, ev, DATA_BLOB, blobLen);
    }
    if (len1 > 0) {
      ev.len1 = cLength(u8, d + DATA_STR1, len1);
      this.copy(d + DATA_STR1, ev, DATA_STR1, ev.len1);
    }
    if (argc > 0) {
      ev.argc = argc;
      this.copy(d + DATA_ARGV, ev, DATA_ARGV, argc * RECORD_ARGV_LEN);
    }
    return ev;
  }

  /**
   * `n` bytes at `from` into the event's data at `to` (both 4-byte aligned), a word at a time: the last word may
   * take up to 3 bytes past the field, never past the record (its fields end within its 8-byte padded length).
   */
  private copy(from: number, ev: RecordEvent, to: number, n: number): void {
    const src = this.u32;
    const dst = ev.data32;
    const s = from >>> 2;
    const t = to >>> 2;
    const words = (n + 3) >>> 2;
    for (let i = 0; i < words; i++) dst[t + i] = src[s + i] ?? 0;
  }
}

/**
 * The event at `offset` (of `length` bytes) in `bytes` (its buffer offset 8-byte aligned), into `into` (a new
 * event when none is given); see RecordDecoder. For one event: a stream of them goes through one decoder.
 */
export function decodeRecordEvent(
  bytes: Uint8Array,
  offset: number,
  length: number,
  into: RecordEvent = new RecordEvent(),
): RecordEvent | null {
  return new RecordDecoder(bytes.buffer, bytes.byteOffset, bytes.byteLength).decode(offset, length, into);
}

/** The descriptor table as the `.rodata` image of record.bpf.c (struct record_config). */
export function encodeRecordConfig(desc: Uint32Array): Uint8Array {
  const out = new Uint8Array(RECORD_CONFIG_SIZE);
  const view = new DataView(out.buffer);
  for (let nr = 0; nr < RECORD_NR_MAX && nr < desc.length; nr++) view.setUint32(4 * nr, desc[nr]!, true);
  return out;
}

/** A descriptor word from its fields (argument index per field; undefined = none). */
export function descriptor(fields: Partial<Record<keyof typeof DescField, number>>): number {
  let d = 0;
  for (const [name, index] of Object.entries(fields)) {
    if (index === undefined) continue;
    d |= (index + 1) << (3 * DescField[name as keyof typeof DescField]);
  }
  return d >>> 0;
}

/**
 * An argument register read as its C type: `i` signed 32-bit, `u` unsigned 32-bit, `l` a signed 64-bit word
 * (null when not exact in a double), `p` a pointer (unsigned; user pointers are below 2^47).
 */
export function argWord(lo: number, hi: number, kind: string): number | null {
  if (kind === "i") return lo | 0;
  if (kind === "u") return lo;
  if (kind === "p") return hi * 0x1_0000_0000 + lo;
  const v = (hi | 0) * 0x1_0000_0000 + lo;
  return Number.isSafeInteger(v) ? v : null;
}
