/**
 * The user-side mirror of bpf/carnot.h: the fixed 328-byte `struct carnot_event` and `struct carnot_config`.
 * test/trace/layout.test.ts compiles the header and compares every offset and size with the tables below.
 * 64-bit fields are decoded as numbers: exact for user-space pointers (< 2^47) and for counts; `tsNs` loses
 * sub-microsecond precision only after 104 days of uptime.
 */

export const EVENT_SIZE = 328;
export const DATA_MAX = 256;
export const COMM_LEN = 16;
export const NIDS_MAX = DATA_MAX / 4;
export const CONFIG_SIZE = 40;

/** Index of each counter in the `stats` map. */
export const STAT_ATTEMPTED = 0;
export const STAT_DROPPED = 1;
export const STAT_CONN_CREATED = 2;
export const STAT_CONN_DELETED = 3;
export const STAT_COUNT = 4;

/** enum carnot_event_kind */
export const EventKind = {
  SslNew: 1,
  SslFree: 2,
  SetHostname: 3,
  SetGroupsList: 4,
  SetGroupsNids: 5,
  CtxGroupsList: 6,
  CtxGroupsNids: 7,
  HandshakeEnter: 8,
  HandshakeReturn: 9,
  SetState: 10,
  GetError: 11,
  HandshakeImplicit: 12,
  HandshakeDone: 13,
  Exe: 14,
  Synthetic: 100,
} as const;
export type EventKindValue = (typeof EventKind)[keyof typeof EventKind];

/** enum carnot_probe_func: the low 8 bits of a probe's attach cookie; the library id is the rest. */
export const ProbeFunc = {
  SSL_new: 1,
  SSL_free: 2,
  SSL_ctrl: 3,
  SSL_CTX_ctrl: 4,
  SSL_set_connect_state: 5,
  SSL_set_accept_state: 6,
  SSL_do_handshake: 7,
  SSL_connect: 8,
  SSL_accept: 9,
  SSL_get_error: 10,
  SSL_read: 11,
  SSL_write: 12,
  SSL_read_ex: 13,
  SSL_write_ex: 14,
} as const;
export const COOKIE_FUNC_BITS = 8;

/** enum carnot_hs_func: which handshake call an HS_ENTER / HS_RETURN event is about (in `aux`). */
export const HandshakeFunc = { DoHandshake: 1, Connect: 2, Accept: 3 } as const;

/** enum carnot_role: `aux` of a SET_STATE event. */
export const Role = { Client: 1, Server: 2 } as const;

/** Field → [offset, size] in struct carnot_event, as in bpf/carnot.h. */
export const EVENT_LAYOUT = {
  ts_ns: [0, 8],
  ptr: [8, 8],
  aux: [16, 8],
  pid: [24, 4],
  tid: [28, 4],
  ret: [32, 4],
  kind: [36, 2],
  data_len: [38, 2],
  lib_id: [40, 4],
  depth: [44, 4],
  comm: [48, COMM_LEN],
  cgroup_id: [64, 8],
  data: [72, DATA_MAX],
} as const satisfies Record<string, readonly [number, number]>;

/** Field → [offset, size] in struct carnot_config (the `.rodata` of carnot.bpf.o). */
export const CONFIG_LAYOUT = {
  targ_tgid: [0, 4],
  flags: [4, 4],
  targ_comm: [8, COMM_LEN],
  targ_cgroup: [24, 8],
  targ_cgroup_level: [32, 4],
  reserved: [36, 4],
} as const satisfies Record<string, readonly [number, number]>;

/** One decoded kernel event. `text` is set for host-name / groups-list kinds, `nids` for the NID kinds. */
export interface CarnotEvent {
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns). */
  tsNs: number;
  /** SSL* (SSL_CTX* for the CTX kinds). */
  ptr: number;
  /** Kind-specific; decoded as a signed 64-bit value (SSL_get_error's ret argument may be negative). */
  aux: number;
  pid: number;
  tid: number;
  ret: number;
  kind: number;
  /** Which probed library (index into SslProbes.libraries). */
  libId: number;
  /** Handshake-call nesting on the thread, 1 = outermost (HS events only). */
  depth: number;
  comm: string;
  /** the task's cgroup v2 id at this event (bpf_get_current_cgroup_id); 0 = unknown */
  cgroupId: number;
  /** The valid bytes of `data` (a copy). */
  data: Uint8Array;
  text: string | null;
  nids: number[] | null;
}

const TWO_32 = 0x1_0000_0000;

/**
 * A cgroup id from its two 32-bit halves, 0 (unknown) when it would not be exact as a number. The id is the
 * kernfs node id: an allocation counter in the low 32 bits, a wrap count above (2^21 wraps of 2^31 nodes first).
 */
export function cgroupIdOf(low: number, high: number): number {
  return high < 0x20_0000 ? low + high * TWO_32 : 0;
}

/** Where the decoder reads each field: the layout table's offsets in 16- and 32-bit words (one table, checked). */
const W = {
  tsNs: EVENT_LAYOUT.ts_ns[0] / 4,
  ptr: EVENT_LAYOUT.ptr[0] / 4,
  aux: EVENT_LAYOUT.aux[0] / 4,
  pid: EVENT_LAYOUT.pid[0] / 4,
  tid: EVENT_LAYOUT.tid[0] / 4,
  ret: EVENT_LAYOUT.ret[0] / 4,
  libId: EVENT_LAYOUT.lib_id[0] / 4,
  depth: EVENT_LAYOUT.depth[0] / 4,
  comm: EVENT_LAYOUT.comm[0] / 4,
  cgroupId: EVENT_LAYOUT.cgroup_id[0] / 4,
} as const;
const H = { kind: EVENT_LAYOUT.kind[0] / 2, dataLen: EVENT_LAYOUT.data_len[0] / 2 } as const;
const DATA_OFFSET = EVENT_LAYOUT.data[0];

function kindHasText(kind: number): boolean {
  return (
    kind === EventKind.SetHostname ||
    kind === EventKind.SetGroupsList ||
    kind === EventKind.CtxGroupsList ||
    kind === EventKind.Exe
  );
}

function kindHasNids(kind: number): boolean {
  return kind === EventKind.SetGroupsNids || kind === EventKind.CtxGroupsNids;
}

const NO_DATA = new Uint8Array(0);

interface CommEntry {
  tid: number;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  comm: string;
}

/**
 * Decodes events in place from a region of memory (the ring buffer's data area, or a copy of one event),
 * through typed-array views: several times faster than DataView calls. Event offsets are 8-byte aligned, as
 * the kernel places them. Caches decoded comm strings per thread (the 16 bytes are compared every time, so a
 * renamed thread is seen at once); one decoder per reader.
 */
export class EventDecoder {
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  readonly #text = new TextDecoder("utf-8", { fatal: false });
  readonly #comms = new Map<number, CommEntry>();
  #lastComm: CommEntry = { tid: -1, w0: 0, w1: 0, w2: 0, w3: 0, comm: "" };

  constructor(buffer: ArrayBufferLike, byteOffset = 0, byteLength = buffer.byteLength - byteOffset) {
    if (byteOffset % 8 !== 0 || byteLength % 8 !== 0) throw new Error("event region must be 8-byte aligned");
    this.#u8 = new Uint8Array(buffer, byteOffset, byteLength);
    this.#u16 = new Uint16Array(buffer, byteOffset, byteLength / 2);
    this.#u32 = new Uint32Array(buffer, byteOffset, byteLength / 4);
    this.#i32 = new Int32Array(buffer, byteOffset, byteLength / 4);
  }

  /** Decodes the event at byte `offset` of the region (a multiple of 8; needs EVENT_SIZE bytes). */
  decode(offset: number): CarnotEvent {
    const u32 = this.#u32;
    const w = offset >>> 2;
    const kind = this.#u16[(offset >>> 1) + H.kind]!;
    const dataLen = Math.min(this.#u16[(offset >>> 1) + H.dataLen]!, DATA_MAX);
    const tid = u32[w + W.tid]!;
    // A copy: the ring buffer space is reused once the batch is consumed.
    const data = dataLen > 0 ? this.#u8.slice(offset + DATA_OFFSET, offset + DATA_OFFSET + dataLen) : NO_DATA;
    return {
      tsNs: u32[w + W.tsNs]! + u32[w + W.tsNs + 1]! * TWO_32,
      ptr: u32[w + W.ptr]! + u32[w + W.ptr + 1]! * TWO_32,
      aux: u32[w + W.aux]! + this.#i32[w + W.aux + 1]! * TWO_32,
      pid: u32[w + W.pid]!,
      tid,
      ret: this.#i32[w + W.ret]!,
      kind,
      libId: u32[w + W.libId]!,
      depth: u32[w + W.depth]!,
      comm: this.#comm(w + W.comm, tid),
      cgroupId: cgroupIdOf(u32[w + W.cgroupId]!, u32[w + W.cgroupId + 1]!),
      data,
      text: kindHasText(kind) ? this.#text.decode(data) : null,
      nids: kindHasNids(kind) ? decodeNids(data) : null,
    };
  }

  #comm(word: number, tid: number): string {
    const u32 = this.#u32;
    const w0 = u32[word]!;
    const w1 = u32[word + 1]!;
    const w2 = u32[word + 2]!;
    const w3 = u32[word + 3]!;
    let entry: CommEntry | undefined = this.#lastComm;
    if (entry.tid !== tid) entry = this.#comms.get(tid);
    if (entry && entry.w0 === w0 && entry.w1 === w1 && entry.w2 === w2 && entry.w3 === w3) {
      this.#lastComm = entry;
      return entry.comm;
    }
    const bytes = this.#u8.subarray(word * 4, word * 4 + COMM_LEN);
    const end = bytes.indexOf(0);
    const comm = this.#text.decode(bytes.subarray(0, end < 0 ? COMM_LEN : end));
    // Bounded: thread ids churn on long runs; starting over is cheap.
    if (this.#comms.size >= 4096) this.#comms.clear();
    const fresh = { tid, w0, w1, w2, w3, comm };
    this.#comms.set(tid, fresh);
    this.#lastComm = fresh;
    return comm;
  }
}

function decodeNids(data: Uint8Array): number[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nids: number[] = [];
  for (let i = 0; i + 4 <= data.byteLength; i += 4) nids.push(view.getInt32(i, true));
  return nids;
}

/** Decodes one event from exactly-sized bytes (tests, fixtures). */
export function decodeEvent(bytes: Uint8Array): CarnotEvent {
  if (bytes.byteLength < EVENT_SIZE)
    throw new Error(`event too short: ${bytes.byteLength} of ${EVENT_SIZE} bytes`);
  return new EventDecoder(bytes.slice(0, EVENT_SIZE).buffer).decode(0);
}

/** What encodeEvent needs; the rest defaults to zero/empty. */
export type EventFields = Partial<Omit<CarnotEvent, "data" | "text" | "nids">> & {
  kind: number;
  data?: Uint8Array;
  text?: string;
  nids?: number[];
};

/**
 * Builds the kernel's bytes for an event (the inverse of decode): user-side stages are tested unprivileged
 * with it, and the tracer's warm-up (src/trace/warmup.ts) feeds its pipeline with it.
 */
export function encodeEvent(fields: EventFields): Uint8Array {
  const bytes = new Uint8Array(EVENT_SIZE);
  const view = new DataView(bytes.buffer);
  const setU64 = (offset: number, value: number, signed: boolean) => {
    const big = BigInt(Math.trunc(value));
    if (signed) view.setBigInt64(offset, big, true);
    else view.setBigUint64(offset, big, true);
  };
  const at = (field: keyof typeof EVENT_LAYOUT) => EVENT_LAYOUT[field][0];
  setU64(at("ts_ns"), fields.tsNs ?? 0, false);
  setU64(at("ptr"), fields.ptr ?? 0, false);
  setU64(at("aux"), fields.aux ?? 0, true);
  view.setUint32(at("pid"), fields.pid ?? 0, true);
  view.setUint32(at("tid"), fields.tid ?? 0, true);
  view.setInt32(at("ret"), fields.ret ?? 0, true);
  view.setUint16(at("kind"), fields.kind, true);
  view.setUint32(at("lib_id"), fields.libId ?? 0, true);
  view.setUint32(at("depth"), fields.depth ?? 0, true);
  const comm = new TextEncoder().encode(fields.comm ?? "").subarray(0, COMM_LEN - 1);
  bytes.set(comm, at("comm"));
  setU64(at("cgroup_id"), fields.cgroupId ?? 0, false);
  let data = fields.data ?? new Uint8Array(0);
  if (fields.text !== undefined) data = new TextEncoder().encode(fields.text);
  if (fields.nids !== undefined) {
    data = new Uint8Array(fields.nids.length * 4);
    const nidView = new DataView(data.buffer);
    for (const [i, nid] of fields.nids.entries()) nidView.setInt32(i * 4, nid, true);
  }
  data = data.subarray(0, DATA_MAX);
  bytes.set(data, at("data"));
  view.setUint16(at("data_len"), data.byteLength, true);
  return bytes;
}

/** struct carnot_kex: the facts read at handshake completion (data of HS_RETURN ret 1 / HS_IMPLICIT ret 1). */
export const KEX_SIZE = 16;
export const KEX_LAYOUT = {
  version: [0, 4],
  cipher_id: [4, 4],
  group: [8, 2],
  group13: [10, 2],
  valid: [12, 4],
} as const satisfies Record<string, readonly [number, number]>;
/** CARNOT_KEX_* bits of `valid`. */
export const KexValid = { Version: 1, Cipher: 2, Group: 4, Group13: 8 } as const;

/** The raw key-exchange facts of a handshake; a field is null when its read did not succeed. */
export interface KexFacts {
  version: number | null;
  /** SSL_CIPHER id (0x0300xxxx) */
  cipherId: number | null;
  /** SSL_SESSION kex group (IANA code point, 0 = none) */
  group: number | null;
  /** TLS 1.3 group in the SSL object (cross-check) */
  group13: number | null;
}

/**
 * Little-endian integers read from bytes directly: a DataView over an event's data would first make the
 * engine materialize the data's ArrayBuffer, which cost more than the rest of decoding a handshake.
 */
const u16le = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const i32le = (b: Uint8Array, o: number): number =>
  b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
const u32le = (b: Uint8Array, o: number): number => i32le(b, o) >>> 0;

/** The facts in an event's data, or null when it carries none. */
export function decodeKex(data: Uint8Array): KexFacts | null {
  if (data.byteLength < KEX_SIZE) return null;
  const valid = u32le(data, KEX_LAYOUT.valid[0]);
  return {
    version: valid & KexValid.Version ? i32le(data, KEX_LAYOUT.version[0]) : null,
    cipherId: valid & KexValid.Cipher ? u32le(data, KEX_LAYOUT.cipher_id[0]) : null,
    group: valid & KexValid.Group ? u16le(data, KEX_LAYOUT.group[0]) : null,
    group13: valid & KexValid.Group13 ? u16le(data, KEX_LAYOUT.group13[0]) : null,
  };
}

/** The bytes of a struct carnot_kex (tests, fixtures). */
export function encodeKex(facts: KexFacts): Uint8Array {
  const bytes = new Uint8Array(KEX_SIZE);
  const view = new DataView(bytes.buffer);
  let valid = 0;
  if (facts.version !== null) {
    view.setInt32(KEX_LAYOUT.version[0], facts.version, true);
    valid |= KexValid.Version;
  }
  if (facts.cipherId !== null) {
    view.setUint32(KEX_LAYOUT.cipher_id[0], facts.cipherId, true);
    valid |= KexValid.Cipher;
  }
  if (facts.group !== null) {
    view.setUint16(KEX_LAYOUT.group[0], facts.group, true);
    valid |= KexValid.Group;
  }
  if (facts.group13 !== null) {
    view.setUint16(KEX_LAYOUT.group13[0], facts.group13, true);
    valid |= KexValid.Group13;
  }
  view.setUint32(KEX_LAYOUT.valid[0], valid, true);
  return bytes;
}

/** struct carnot_lib_offsets: one entry of the `lib_offsets` array map (-1 = not verified). */
export const LIBS_MAX = 64;
export const LIB_OFFSETS_SIZE = 40;
export const LIB_OFFSETS_LAYOUT = {
  calibrated: [0, 4],
  version: [4, 4],
  cipher: [8, 4],
  cipher_id: [12, 4],
  session: [16, 4],
  kex_group: [20, 4],
  group13: [24, 4],
  hand_state: [28, 4],
  hand_state_ok: [32, 4],
  ssl_ctx: [36, 4],
} as const satisfies Record<string, readonly [number, number]>;

export interface LibOffsets {
  version: number | null;
  cipher: number | null;
  cipherId: number | null;
  session: number | null;
  kexGroup: number | null;
  group13: number | null;
  handState: number | null;
  handStateOk: number;
  sslCtx: number | null;
}

export function encodeLibOffsets(o: LibOffsets | null): Uint8Array {
  const bytes = new Uint8Array(LIB_OFFSETS_SIZE);
  const view = new DataView(bytes.buffer);
  if (o === null) return bytes;
  const set = (field: keyof typeof LIB_OFFSETS_LAYOUT, value: number | null) =>
    view.setInt32(LIB_OFFSETS_LAYOUT[field][0], value ?? -1, true);
  view.setUint32(LIB_OFFSETS_LAYOUT.calibrated[0], 1, true);
  set("version", o.version);
  set("cipher", o.cipher);
  set("cipher_id", o.cipherId);
  set("session", o.session);
  set("kex_group", o.kexGroup);
  set("group13", o.group13);
  set("hand_state", o.handState);
  set("hand_state_ok", o.handStateOk);
  set("ssl_ctx", o.sslCtx);
  return bytes;
}

/** enum carnot_outcome: why an aggregated handshake ended; null = success. */
export const OUTCOME_ERRORS: readonly (string | null)[] = [null, "fatal", "syscall", "closed", "freed"];

/** struct carnot_done: the data of an HS_DONE event (aggregated mode). */
export const DONE_SIZE = 40;
export const DONE_LAYOUT = {
  kex: [0, KEX_SIZE],
  ctx: [16, 8],
  role: [24, 4],
  outcome: [28, 4],
  implicit: [32, 4],
  reserved: [36, 4],
} as const satisfies Record<string, readonly [number, number]>;

export interface HandshakeDone {
  kex: KexFacts | null;
  /** SSL_CTX* read through a verified offset, null when unknown */
  ctx: number | null;
  role: "client" | "server" | null;
  /** null on success, else "fatal", "syscall", "closed" or "freed" */
  error: string | null;
  implicit: boolean;
}

export function decodeDone(data: Uint8Array): HandshakeDone | null {
  if (data.byteLength < DONE_SIZE) return null;
  const outcome = u32le(data, DONE_LAYOUT.outcome[0]);
  const role = u32le(data, DONE_LAYOUT.role[0]);
  // a user-space pointer: below 2^53, exact as a number
  const ctx = u32le(data, DONE_LAYOUT.ctx[0]) + u32le(data, DONE_LAYOUT.ctx[0] + 4) * 0x1_0000_0000;
  const error = outcome < OUTCOME_ERRORS.length ? OUTCOME_ERRORS[outcome]! : `outcome ${outcome}`;
  return {
    kex: error === null ? decodeKex(data) : null,
    ctx: ctx === 0 ? null : ctx,
    role: role === Role.Client ? "client" : role === Role.Server ? "server" : null,
    error,
    implicit: u32le(data, DONE_LAYOUT.implicit[0]) === 1,
  };
}

export function encodeDone(done: HandshakeDone): Uint8Array {
  const bytes = new Uint8Array(DONE_SIZE);
  const view = new DataView(bytes.buffer);
  if (done.kex) bytes.set(encodeKex(done.kex), 0);
  view.setBigUint64(DONE_LAYOUT.ctx[0], BigInt(done.ctx ?? 0), true);
  view.setUint32(
    DONE_LAYOUT.role[0],
    done.role === "client" ? Role.Client : done.role === "server" ? Role.Server : 0,
    true,
  );
  view.setUint32(DONE_LAYOUT.outcome[0], Math.max(0, OUTCOME_ERRORS.indexOf(done.error)), true);
  view.setUint32(DONE_LAYOUT.implicit[0], done.implicit ? 1 : 0, true);
  return bytes;
}

/** struct carnot_conn_key / carnot_conn_state: the `conns` hash map, read by user space to give up handshakes. */
export const CONN_KEY_SIZE = 16;
export const CONN_KEY_LAYOUT = {
  tgid: [0, 4],
  reserved: [4, 4],
  ssl: [8, 8],
} as const satisfies Record<string, readonly [number, number]>;
export const CONN_STATE_SIZE = 32;
export const CONN_STATE_LAYOUT = {
  start_ns: [0, 8],
  last_ns: [8, 8],
  role: [16, 4],
  flags: [20, 4],
  lib_id: [24, 4],
  reserved: [28, 4],
} as const satisfies Record<string, readonly [number, number]>;
/** CARNOT_CONN_* bits of carnot_conn_state.flags */
export const ConnFlags = { Live: 1, AwaitError: 2, Implicit: 4, Visible: 8, Finished: 16 } as const;

/** A handshake in progress as the kernel holds it (aggregated mode). */
export interface KernelHandshake {
  pid: number;
  ssl: number;
  startNs: number;
  lastNs: number;
  role: "client" | "server" | null;
  flags: number;
  libId: number;
  key: Uint8Array;
}

export function decodeConn(key: Uint8Array, value: Uint8Array): KernelHandshake {
  const k = new DataView(key.buffer, key.byteOffset, CONN_KEY_SIZE);
  const v = new DataView(value.buffer, value.byteOffset, CONN_STATE_SIZE);
  const role = v.getUint32(CONN_STATE_LAYOUT.role[0], true);
  return {
    pid: k.getUint32(CONN_KEY_LAYOUT.tgid[0], true),
    ssl: Number(k.getBigUint64(CONN_KEY_LAYOUT.ssl[0], true)),
    startNs: Number(v.getBigUint64(CONN_STATE_LAYOUT.start_ns[0], true)),
    lastNs: Number(v.getBigUint64(CONN_STATE_LAYOUT.last_ns[0], true)),
    role: role === Role.Client ? "client" : role === Role.Server ? "server" : null,
    flags: v.getUint32(CONN_STATE_LAYOUT.flags[0], true),
    libId: v.getUint32(CONN_STATE_LAYOUT.lib_id[0], true),
    key,
  };
}

/** carnot_config.flags */
export const ConfigFlags = { Aggregate: 1 } as const;

/** In-kernel filters of carnot.bpf.o. */
export interface ProbeFilter {
  /** Process id (tgid) to trace; 0 or absent = all. */
  pid?: number;
  /** Exact task comm (at most 15 bytes); empty or absent = all. */
  comm?: string;
  /** one HS_DONE event per handshake instead of one event per call */
  aggregate?: boolean;
  /** only tasks in this cgroup v2 or below it (--container) */
  cgroup?: CgroupFilter;
}

/** A cgroup v2 and its level in the hierarchy (the root is 0): the kernel's --container filter. */
export interface CgroupFilter {
  id: number;
  level: number;
}

/** The bytes of `struct carnot_config` for the `.rodata` map. */
export function encodeConfig(filter: ProbeFilter): Uint8Array {
  const bytes = new Uint8Array(CONFIG_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(CONFIG_LAYOUT.targ_tgid[0], filter.pid ?? 0, true);
  view.setUint32(CONFIG_LAYOUT.flags[0], filter.aggregate ? ConfigFlags.Aggregate : 0, true);
  const comm = new TextEncoder().encode(filter.comm ?? "");
  if (comm.byteLength >= COMM_LEN) {
    throw new Error(
      `comm "${filter.comm}" is longer than ${COMM_LEN - 1} bytes (the kernel's task name limit)`,
    );
  }
  bytes.set(comm, CONFIG_LAYOUT.targ_comm[0]);
  view.setBigUint64(CONFIG_LAYOUT.targ_cgroup[0], BigInt(filter.cgroup?.id ?? 0), true);
  view.setUint32(CONFIG_LAYOUT.targ_cgroup_level[0], filter.cgroup?.level ?? 0, true);
  return bytes;
}
