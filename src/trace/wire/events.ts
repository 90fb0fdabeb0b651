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

/**
 * One decoded wire event. From a WireDecoder it is valid until the next decode (one object, reused): copy what
 * must outlive the call.
 */
export interface WireEvent {
  readonly tsNs: number;
  /** the socket cookie: one connection as one socket sees it */
  readonly cookie: number;
  /** SSL* of the libssl handshake the owner's thread ran when it sent its first flight (0 = none) */
  readonly linkSsl: number;
  readonly pid: number;
  readonly tid: number;
  readonly streamOffset: number;
  readonly kind: number;
  readonly flags: number;
  readonly localPort: number;
  readonly remotePort: number;
  readonly comm: string;
  readonly localAddr: string;
  readonly remoteAddr: string;
  /** the segment's whole payload length (the payload may be one chunk of it) */
  readonly segmentLength: number;
  /** the owner's cgroup v2 id when it was seen sending (with WireFlag.Owner); 0 = unknown */
  readonly cgroupId: number;
  /** a view into the ring buffer: copy what must outlive the drain callback */
  readonly payload: Uint8Array;
  /** the payload without a view: `memory[payloadStart, payloadEnd)`, the ring buffer's bytes */
  readonly memory: Uint8Array;
  readonly payloadStart: number;
  readonly payloadEnd: number;
}

const TWO_32 = 0x1_0000_0000;

/** Where the decoder reads each field: the layout table's offsets in 16- and 32-bit words (one table, checked). */
const W = {
  tsNs: WIRE_EVENT_LAYOUT.ts_ns[0] / 4,
  cookie: WIRE_EVENT_LAYOUT.cookie[0] / 4,
  linkSsl: WIRE_EVENT_LAYOUT.link_ssl[0] / 4,
  pid: WIRE_EVENT_LAYOUT.pid[0] / 4,
  tid: WIRE_EVENT_LAYOUT.tid[0] / 4,
  streamOffset: WIRE_EVENT_LAYOUT.stream_offset[0] / 4,
  flags: WIRE_EVENT_LAYOUT.flags[0] / 4,
  segmentLen: WIRE_EVENT_LAYOUT.segment_len[0] / 4,
  cgroupId: WIRE_EVENT_LAYOUT.cgroup_id[0] / 4,
} as const;
const H = {
  kind: WIRE_EVENT_LAYOUT.kind[0] / 2,
  dataLen: WIRE_EVENT_LAYOUT.data_len[0] / 2,
  localPort: WIRE_EVENT_LAYOUT.local_port[0] / 2,
  remotePort: WIRE_EVENT_LAYOUT.remote_port[0] / 2,
} as const;
const COMM = WIRE_EVENT_LAYOUT.comm[0];
const LOCAL_ADDR = WIRE_EVENT_LAYOUT.local_addr[0];
const REMOTE_ADDR = WIRE_EVENT_LAYOUT.remote_addr[0];

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

/** IPv4 bytes as a dotted quad (the common case, without formatAddress's general path). */
function ipv4(u8: Uint8Array, at: number): string {
  return `${u8[at]}.${u8[at + 1]}.${u8[at + 2]}.${u8[at + 3]}`;
}

interface CommEntry {
  pid: number;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  comm: string;
}

/**
 * Decodes wire events in place from a region of memory (the ring buffer's data area), through typed-array
 * views, into ONE event object it reuses: an event is valid until the next `decode` (the pipeline hands each to
 * the wire source, which keeps what it needs). The numbers are read at once; the comm, the addresses and the
 * payload view only when asked for (once per connection, or per segment): per event, nothing is allocated but
 * the payload's view. Comm strings are cached per process (their 16 bytes compared every time).
 */
export class WireDecoder {
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #text = new TextDecoder("utf-8", { fatal: false });
  readonly #comms = new Map<number, CommEntry>();
  /** IPv4 addresses as text by their 32-bit word: a host's connections share few endpoints */
  readonly #ipv4 = new Map<number, string>();
  readonly #event: DecodedWireEvent;

  constructor(buffer: ArrayBufferLike, byteOffset = 0, byteLength = buffer.byteLength - byteOffset) {
    if (byteOffset % 8 !== 0 || byteLength % 8 !== 0) throw new Error("event region must be 8-byte aligned");
    this.#u8 = new Uint8Array(buffer, byteOffset, byteLength);
    this.#u16 = new Uint16Array(buffer, byteOffset, byteLength / 2);
    this.#u32 = new Uint32Array(buffer, byteOffset, byteLength / 4);
    this.#event = new DecodedWireEvent(this);
  }

  /** The kind of the event at `offset` (same offset in every carnot event layout). */
  kind(offset: number): number {
    return this.#u16[(offset >>> 1) + H.kind]!;
  }

  /**
   * Decodes the event at byte `offset` (a multiple of 8) whose record is `length` bytes long: the fields every
   * event needs now, those a connection needs once (owner, link, ports) when asked for.
   */
  decode(offset: number, length: number): WireEvent {
    const u32 = this.#u32;
    const w = offset >>> 2;
    const h = offset >>> 1;
    const ev = this.#event;
    ev.offset = offset;
    const dataLen = Math.min(this.#u16[h + H.dataLen]!, Math.max(0, length - WIRE_HEADER_SIZE));
    ev.dataLen = dataLen;
    ev.payloadStart = offset + WIRE_HEADER_SIZE;
    ev.payloadEnd = offset + WIRE_HEADER_SIZE + dataLen;
    ev.tsNs = u32[w + W.tsNs]! + u32[w + W.tsNs + 1]! * TWO_32;
    ev.cookie = u32[w + W.cookie]! + u32[w + W.cookie + 1]! * TWO_32;
    ev.streamOffset = u32[w + W.streamOffset]!;
    ev.kind = this.#u16[h + H.kind]!;
    ev.flags = u32[w + W.flags]!;
    return ev;
  }

  /** @internal the 32-bit word at byte `offset` + 4 × `word` */
  u32At(offset: number, word: number): number {
    return this.#u32[(offset >>> 2) + word]!;
  }

  /** @internal the 16-bit word at byte `offset` + 2 × `half` */
  u16At(offset: number, half: number): number {
    return this.#u16[(offset >>> 1) + half]!;
  }

  /** @internal the region's bytes */
  get memory(): Uint8Array {
    return this.#u8;
  }

  /** @internal the payload of the event at `offset` */
  payloadAt(offset: number, dataLen: number): Uint8Array {
    return this.#u8.subarray(offset + WIRE_HEADER_SIZE, offset + WIRE_HEADER_SIZE + dataLen);
  }

  /** @internal an address of the event at `offset` */
  addressAt(offset: number, field: number, ipv6: boolean): string {
    const at = offset + field;
    if (ipv6) return formatAddress(this.#u8.subarray(at, at + 16), true);
    const word = this.#u32[at >>> 2]!;
    let text = this.#ipv4.get(word);
    if (text === undefined) {
      text = ipv4(this.#u8, at);
      // bounded: peers come and go
      if (this.#ipv4.size >= 4096) this.#ipv4.clear();
      this.#ipv4.set(word, text);
    }
    return text;
  }

  /** @internal the comm of the event at `offset`, cached per process */
  commAt(offset: number, pid: number): string {
    const u32 = this.#u32;
    const word = (offset + COMM) >>> 2;
    const w0 = u32[word]!;
    const w1 = u32[word + 1]!;
    const w2 = u32[word + 2]!;
    const w3 = u32[word + 3]!;
    const entry = this.#comms.get(pid);
    if (entry && entry.w0 === w0 && entry.w1 === w1 && entry.w2 === w2 && entry.w3 === w3) return entry.comm;
    const bytes = this.#u8.subarray(offset + COMM, offset + COMM + WIRE_COMM_LEN);
    const end = bytes.indexOf(0);
    const comm = this.#text.decode(bytes.subarray(0, end < 0 ? WIRE_COMM_LEN : end));
    // bounded: processes come and go
    if (this.#comms.size >= 4096) this.#comms.clear();
    this.#comms.set(pid, { pid, w0, w1, w2, w3, comm });
    return comm;
  }
}

/** The one event object a decoder fills; strings and the payload are read from its memory when asked for. */
class DecodedWireEvent implements WireEvent {
  offset = 0;
  dataLen = 0;
  payloadStart = 0;
  payloadEnd = 0;
  tsNs = 0;
  cookie = 0;
  streamOffset = 0;
  kind = 0;
  flags = 0;
  readonly memory: Uint8Array;

  constructor(private readonly decoder: WireDecoder) {
    this.memory = decoder.memory;
  }

  get linkSsl(): number {
    const d = this.decoder;
    return d.u32At(this.offset, W.linkSsl) + d.u32At(this.offset, W.linkSsl + 1) * TWO_32;
  }
  get pid(): number {
    return this.decoder.u32At(this.offset, W.pid);
  }
  get tid(): number {
    return this.decoder.u32At(this.offset, W.tid);
  }
  get localPort(): number {
    return this.decoder.u16At(this.offset, H.localPort);
  }
  get remotePort(): number {
    return this.decoder.u16At(this.offset, H.remotePort);
  }
  get segmentLength(): number {
    return this.decoder.u32At(this.offset, W.segmentLen);
  }
  get cgroupId(): number {
    const d = this.decoder;
    return cgroupIdOf(d.u32At(this.offset, W.cgroupId), d.u32At(this.offset, W.cgroupId + 1));
  }

  get comm(): string {
    return this.decoder.commAt(this.offset, this.pid);
  }
  get localAddr(): string {
    return this.decoder.addressAt(this.offset, LOCAL_ADDR, (this.flags & WireFlag.Ipv6) !== 0);
  }
  get remoteAddr(): string {
    return this.decoder.addressAt(this.offset, REMOTE_ADDR, (this.flags & WireFlag.Ipv6) !== 0);
  }
  get payload(): Uint8Array {
    return this.decoder.payloadAt(this.offset, this.dataLen);
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
  const at = (field: keyof typeof WIRE_EVENT_LAYOUT) => WIRE_EVENT_LAYOUT[field][0];
  view.setBigUint64(at("ts_ns"), BigInt(fields.tsNs ?? 0), true);
  view.setBigUint64(at("cookie"), BigInt(fields.cookie ?? 0), true);
  view.setBigUint64(at("link_ssl"), BigInt(fields.linkSsl ?? 0), true);
  view.setUint32(at("pid"), fields.pid ?? 0, true);
  view.setUint32(at("tid"), fields.tid ?? 0, true);
  view.setUint32(at("stream_offset"), fields.streamOffset ?? 0, true);
  view.setUint16(at("kind"), fields.kind ?? WireKind.Segment, true);
  view.setUint16(at("data_len"), payload.byteLength, true);
  const ipv6 = fields.localAddr?.includes(":") ?? false;
  view.setUint32(at("flags"), (fields.flags ?? 0) | (ipv6 ? WireFlag.Ipv6 : 0), true);
  view.setUint16(at("local_port"), fields.localPort ?? 0, true);
  view.setUint16(at("remote_port"), fields.remotePort ?? 0, true);
  bytes.set(new TextEncoder().encode(fields.comm ?? "").subarray(0, WIRE_COMM_LEN - 1), at("comm"));
  bytes.set(parseAddress(fields.localAddr ?? "0.0.0.0"), at("local_addr"));
  bytes.set(parseAddress(fields.remoteAddr ?? "0.0.0.0"), at("remote_addr"));
  view.setUint32(at("segment_len"), fields.segmentLength ?? payload.byteLength, true);
  view.setBigUint64(at("cgroup_id"), BigInt(fields.cgroupId ?? 0), true);
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
