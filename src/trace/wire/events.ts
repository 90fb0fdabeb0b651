/**
 * The user-side mirror of bpf/wire.h: `struct carnot_wire_event` (a 112-byte header, then the payload) and
 * `struct carnot_wire_config`. test/trace/layout.test.ts compiles the header and compares every offset and size
 * with the tables below. The decoder reads fields straight from the ring buffer's memory; `payload` is a view
 * into it, valid only until the drain callback returns (whoever keeps bytes copies them).
 */
import { type CgroupFilter, cgroupIdOf } from "../libssl/events.ts";

export const WIRE_HEADER_SIZE = 112;
export const WIRE_CONFIG_SIZE = 40;
export const WIRE_COMM_LEN = 16;
export const WIRE_CHUNK = 4096;
export const WIRE_CAP = 64 * 1024;
export const WIRE_UNDECIDED_MAX = 16;

/** Index of each counter in the wire object's `stats` map. */
export const WireStat = {
  Attempted: 0,
  Dropped: 1,
  Followed: 2,
  NotTls: 3,
  Late: 4,
  Filtered: 5,
  Capped: 6,
  Released: 7,
  Undecided: 8,
  Deferred: 9,
} as const;
export const WIRE_STAT_COUNT = 10;

/** enum carnot_wire_kind */
export const WireKind = { Segment: 20, End: 21 } as const;

/** carnot_wire_event.flags */
export const WireFlag = {
  Egress: 1,
  Fin: 2,
  Rst: 4,
  Owner: 8,
  Link: 16,
  LinkWeak: 32,
  Filtered: 64,
  Ipv6: 128,
  /** a ClientHello that reached a listening socket (TCP_DEFER_ACCEPT): cookie 0, its connection's events follow */
  Listener: 256,
  /** this connection's ClientHello came as a Listener event with the same endpoints */
  Deferred: 512,
} as const;

/** Field → [offset, size] in struct carnot_wire_event, as in bpf/wire.h. */
export const WIRE_EVENT_LAYOUT = {
  ts_ns: [0, 8],
  cookie: [8, 8],
  link_ssl: [16, 8],
  pid: [24, 4],
  tid: [28, 4],
  stream_offset: [32, 4],
  kind: [36, 2],
  data_len: [38, 2],
  flags: [40, 4],
  local_port: [44, 2],
  remote_port: [46, 2],
  comm: [48, WIRE_COMM_LEN],
  local_addr: [64, 16],
  remote_addr: [80, 16],
  segment_len: [96, 4],
  reserved: [100, 4],
  cgroup_id: [104, 8],
} as const satisfies Record<string, readonly [number, number]>;

/** Field → [offset, size] in struct carnot_wire_config (the `.rodata` of wire.bpf.o). */
export const WIRE_CONFIG_LAYOUT = {
  targ_tgid: [0, 4],
  reserved: [4, 4],
  targ_comm: [8, WIRE_COMM_LEN],
  targ_cgroup: [24, 8],
  targ_cgroup_level: [32, 4],
  reserved2: [36, 4],
} as const satisfies Record<string, readonly [number, number]>;

/** One decoded wire event. */
export interface WireEvent {
  tsNs: number;
  /** the socket cookie: one connection as one socket sees it */
  cookie: number;
  /** SSL* of the libssl handshake the owner's thread ran when it sent its first flight (0 = none) */
  linkSsl: number;
  pid: number;
  tid: number;
  streamOffset: number;
  kind: number;
  flags: number;
  localPort: number;
  remotePort: number;
  comm: string;
  localAddr: string;
  remoteAddr: string;
  /** the segment's whole payload length (the payload may be one chunk of it) */
  segmentLength: number;
  /** the owner's cgroup v2 id when it was seen sending (with WireFlag.Owner); 0 = unknown */
  cgroupId: number;
  /** a view into the ring buffer: copy what must outlive the drain callback */
  payload: Uint8Array;
}

const TWO_32 = 0x1_0000_0000;

/** Text form of an address: dotted quad, or RFC 5952 IPv6 (an IPv4-mapped address as IPv4). */
export function formatAddress(bytes: Uint8Array, ipv6: boolean): string {
  if (!ipv6) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  // the longest run of two or more zero words becomes "::" (the first such run on a tie)
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/**
 * Decodes wire events in place from a region of memory (the ring buffer's data area), through typed-array
 * views. Addresses and comm are decoded once per connection and cached by cookie (they never change for it).
 */
export class WireDecoder {
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #text = new TextDecoder("utf-8", { fatal: false });
  /** cookie → [flags that shaped the strings, comm, local, remote] */
  readonly #strings = new Map<number, [number, string, string, string]>();

  constructor(buffer: ArrayBufferLike, byteOffset = 0, byteLength = buffer.byteLength - byteOffset) {
    if (byteOffset % 8 !== 0 || byteLength % 8 !== 0) throw new Error("event region must be 8-byte aligned");
    this.#u8 = new Uint8Array(buffer, byteOffset, byteLength);
    this.#u16 = new Uint16Array(buffer, byteOffset, byteLength / 2);
    this.#u32 = new Uint32Array(buffer, byteOffset, byteLength / 4);
  }

  /** The kind of the event at `offset` (same offset in every carnot event layout). */
  kind(offset: number): number {
    return this.#u16[(offset >>> 1) + 18]!;
  }

  /** Decodes the event at byte `offset` (a multiple of 8) whose record is `length` bytes long. */
  decode(offset: number, length: number): WireEvent {
    const u32 = this.#u32;
    const w = offset >>> 2;
    const h = offset >>> 1;
    const dataLen = Math.min(this.#u16[h + 19]!, Math.max(0, length - WIRE_HEADER_SIZE));
    const flags = u32[w + 10]!;
    const cookie = u32[w + 2]! + u32[w + 3]! * TWO_32;
    const [comm, localAddr, remoteAddr] = this.#connectionStrings(offset, cookie, flags);
    return {
      tsNs: u32[w]! + u32[w + 1]! * TWO_32,
      cookie,
      linkSsl: u32[w + 4]! + u32[w + 5]! * TWO_32,
      pid: u32[w + 6]!,
      tid: u32[w + 7]!,
      streamOffset: u32[w + 8]!,
      kind: this.#u16[h + 18]!,
      flags,
      localPort: this.#u16[h + 22]!,
      remotePort: this.#u16[h + 23]!,
      comm,
      localAddr,
      remoteAddr,
      segmentLength: u32[w + 24]!,
      cgroupId: cgroupIdOf(u32[w + 26]!, u32[w + 27]!),
      payload: this.#u8.subarray(offset + WIRE_HEADER_SIZE, offset + WIRE_HEADER_SIZE + dataLen),
    };
  }

  /** The connection is forgotten (ended, released): its cached strings go. */
  forget(cookie: number): void {
    this.#strings.delete(cookie);
  }

  #connectionStrings(offset: number, cookie: number, flags: number): [string, string, string] {
    const shape = flags & (WireFlag.Owner | WireFlag.Ipv6);
    const cached = this.#strings.get(cookie);
    if (cached && cached[0] === shape) return [cached[1], cached[2], cached[3]];
    const u8 = this.#u8;
    const commBytes = u8.subarray(offset + 48, offset + 48 + WIRE_COMM_LEN);
    const end = commBytes.indexOf(0);
    const comm = this.#text.decode(commBytes.subarray(0, end < 0 ? WIRE_COMM_LEN : end));
    const ipv6 = (flags & WireFlag.Ipv6) !== 0;
    const local = formatAddress(u8.subarray(offset + 64, offset + 80), ipv6);
    const remote = formatAddress(u8.subarray(offset + 80, offset + 96), ipv6);
    // bounded: connections end, but a lost END must not let the cache grow without limit
    if (this.#strings.size >= 65_536) this.#strings.clear();
    this.#strings.set(cookie, [shape, comm, local, remote]);
    return [comm, local, remote];
  }
}

/** In-kernel filters of wire.bpf.o. */
export interface WireFilter {
  pid?: number;
  comm?: string;
  /** only owners in this cgroup v2 or below it (--container) */
  cgroup?: CgroupFilter;
}

/** The bytes of `struct carnot_wire_config` for the `.rodata` map. */
export function encodeWireConfig(filter: WireFilter): Uint8Array {
  const bytes = new Uint8Array(WIRE_CONFIG_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(WIRE_CONFIG_LAYOUT.targ_tgid[0], filter.pid ?? 0, true);
  const comm = new TextEncoder().encode(filter.comm ?? "");
  if (comm.byteLength >= WIRE_COMM_LEN) {
    throw new Error(
      `comm "${filter.comm}" is longer than ${WIRE_COMM_LEN - 1} bytes (the kernel's task name limit)`,
    );
  }
  bytes.set(comm, WIRE_CONFIG_LAYOUT.targ_comm[0]);
  view.setBigUint64(WIRE_CONFIG_LAYOUT.targ_cgroup[0], BigInt(filter.cgroup?.id ?? 0), true);
  view.setUint32(WIRE_CONFIG_LAYOUT.targ_cgroup_level[0], filter.cgroup?.level ?? 0, true);
  return bytes;
}

/** Builds the kernel's bytes for a wire event (tests, the warm-up): the inverse of decode. */
export function encodeWireEvent(
  fields: Partial<Omit<WireEvent, "payload">> & { payload?: Uint8Array },
): Uint8Array {
  const payload = fields.payload ?? new Uint8Array(0);
  const bytes = new Uint8Array((WIRE_HEADER_SIZE + payload.byteLength + 7) & ~7);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(fields.tsNs ?? 0), true);
  view.setBigUint64(8, BigInt(fields.cookie ?? 0), true);
  view.setBigUint64(16, BigInt(fields.linkSsl ?? 0), true);
  view.setUint32(24, fields.pid ?? 0, true);
  view.setUint32(28, fields.tid ?? 0, true);
  view.setUint32(32, fields.streamOffset ?? 0, true);
  view.setUint16(36, fields.kind ?? WireKind.Segment, true);
  view.setUint16(38, payload.byteLength, true);
  const ipv6 = fields.localAddr?.includes(":") ?? false;
  view.setUint32(40, (fields.flags ?? 0) | (ipv6 ? WireFlag.Ipv6 : 0), true);
  view.setUint16(44, fields.localPort ?? 0, true);
  view.setUint16(46, fields.remotePort ?? 0, true);
  bytes.set(new TextEncoder().encode(fields.comm ?? "").subarray(0, WIRE_COMM_LEN - 1), 48);
  bytes.set(parseAddress(fields.localAddr ?? "0.0.0.0"), 64);
  bytes.set(parseAddress(fields.remoteAddr ?? "0.0.0.0"), 80);
  view.setUint32(96, fields.segmentLength ?? payload.byteLength, true);
  view.setBigUint64(WIRE_EVENT_LAYOUT.cgroup_id[0], BigInt(fields.cgroupId ?? 0), true);
  bytes.set(payload, WIRE_HEADER_SIZE);
  return bytes;
}

/** The 16 address bytes of a textual IPv4 or IPv6 address (IPv4 in the first four). */
function parseAddress(text: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!text.includes(":")) {
    text.split(".").forEach((part, i) => {
      out[i] = Number(part);
    });
    return out;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const words = (s: string | undefined) => (s ? s.split(":").map((w) => Number.parseInt(w, 16)) : []);
  const front = words(head);
  const back = words(tail);
  const all =
    tail === undefined ? front : [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
  all.forEach((word, i) => {
    out[2 * i] = word >> 8;
    out[2 * i + 1] = word & 255;
  });
  return out;
}
