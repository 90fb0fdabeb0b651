/**
 * The user-side mirror of bpf/record.h: `struct record_event` (an 80-byte header), `struct record_data` after it,
 * and `struct record_config`. test/record/layout.test.ts compiles the header and compares every offset, size and
 * constant with the tables below. The decoder reads from the ring buffer's memory and copies what it keeps.
 */

export const RECORD_HEADER_SIZE = 80;
export const RECORD_DATA_SIZE = 904;
export const RECORD_DATA_SHORT = 392;
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

/** One event, decoded; strings and bytes are copies. */
export interface RecordEvent {
  tsNs: number;
  pid: number;
  tid: number;
  kind: number;
  nr: number;
  flags: number;
  /** the return value; FORK: the new tid; EXEC: the tid that called execve; GONE: the exit code */
  ret: number;
  /** the six argument registers, low and high 32 bits of each (see argWord) */
  argLo: number[];
  argHi: number[];
  str0: Uint8Array | null;
  str1: Uint8Array | null;
  blob: Uint8Array | null;
  argv: Uint8Array[] | null;
}

const utf8 = new TextDecoder();
export const textOf = (bytes: Uint8Array): string => utf8.decode(bytes);

/** Bytes of a NUL-terminated field of `len` bytes (the NUL included), without the NUL. */
function cString(bytes: Uint8Array, at: number, len: number): Uint8Array {
  const end = len > 0 && bytes[at + len - 1] === 0 ? len - 1 : len;
  return bytes.slice(at, at + end);
}

/**
 * Decodes the event at `offset` (of `length` bytes) in `bytes`/`view` (the ring buffer's data area). Events
 * shorter than their header, or whose data does not fit, are refused (null): nothing is read past the record.
 */
export function decodeRecordEvent(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  length: number,
): RecordEvent | null {
  if (length < RECORD_HEADER_SIZE) return null;
  const dataLen = view.getUint16(offset + 22, true);
  if (dataLen !== 0 && (dataLen < RECORD_DATA_SHORT || RECORD_HEADER_SIZE + dataLen > length)) return null;
  const argLo: number[] = [];
  const argHi: number[] = [];
  for (let i = 0; i < 6; i++) {
    argLo.push(view.getUint32(offset + 32 + 8 * i, true));
    argHi.push(view.getUint32(offset + 36 + 8 * i, true));
  }
  const ev: RecordEvent = {
    tsNs: Number(view.getBigUint64(offset, true)),
    pid: view.getUint32(offset + 8, true),
    tid: view.getUint32(offset + 12, true),
    kind: view.getUint16(offset + 16, true),
    nr: view.getUint16(offset + 18, true),
    flags: view.getUint16(offset + 20, true),
    ret: view.getInt32(offset + 28, true) * 0x1_0000_0000 + view.getUint32(offset + 24, true),
    argLo,
    argHi,
    str0: null,
    str1: null,
    blob: null,
    argv: null,
  };
  if (dataLen === 0) return ev;
  const d = offset + RECORD_HEADER_SIZE;
  const len0 = Math.min(view.getUint16(d, true), RECORD_STR_MAX);
  const blobLen = Math.min(view.getUint16(d + 4, true), RECORD_BLOB_MAX);
  if (len0 > 0) ev.str0 = cString(bytes, d + RECORD_DATA_LAYOUT.str0[0], len0);
  if (blobLen > 0)
    ev.blob = bytes.slice(d + RECORD_DATA_LAYOUT.blob[0], d + RECORD_DATA_LAYOUT.blob[0] + blobLen);
  if (dataLen < RECORD_DATA_SIZE) return ev;
  const len1 = Math.min(view.getUint16(d + 2, true), RECORD_STR_MAX);
  const argc = Math.min(view.getUint16(d + 6, true), RECORD_ARGV_MAX);
  if (len1 > 0) ev.str1 = cString(bytes, d + RECORD_DATA_LAYOUT.str1[0], len1);
  if (argc > 0) {
    ev.argv = [];
    for (let i = 0; i < argc; i++) {
      const at = d + RECORD_DATA_LAYOUT.argv[0] + i * RECORD_ARGV_LEN;
      const nul = bytes.subarray(at, at + RECORD_ARGV_LEN).indexOf(0);
      ev.argv.push(bytes.slice(at, at + (nul < 0 ? RECORD_ARGV_LEN : nul)));
    }
  }
  return ev;
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
