/**
 * One TCP connection seen on the wire, from one socket's side: the first bytes of its two directions
 * (0 = sent by this socket, 1 = received by it), reassembled, read as TLS records, and the handshake's facts
 * and outcome decided from them. Every value is what the bytes prove; what they do not prove is null.
 *
 * Outcome (`success`, `error`):
 * - a plaintext alert: false, the alert's name (fatal alerts; close_notify; in TLS 1.3 every alert but
 *   user_canceled). Warning alerts of TLS ≤ 1.2 such as unrecognized_name do not end a handshake.
 * - TLS ≤ 1.2: true once each direction has sent ChangeCipherSpec and then a protected handshake record
 *   (its Finished).
 * - TLS 1.3: true once the client has sent a protected record (it follows the server's whole flight: its
 *   Finished) and one more protected record has followed it from either side (application data, a ticket).
 *   When the client offered early data, its protected records may be 0-RTT data: never true.
 * - the connection reset (RST) or closed (FIN both ways) before that: false, "reset" / "closed"; but a TLS 1.3
 *   client that had sent its Finished may have completed: null, "unconfirmed".
 * - given up before any of these (`result()` while undecided): null, "unconfirmed".
 * - bytes that cannot be read: null, the problem's name, which is also in `problem`.
 */
import { cipherSuiteFacts } from "../../bom/algorithms.ts";
import { type GroupIndex, indexGroups, type KexClass } from "../groups.ts";
import { StreamReassembler } from "./reassembly.ts";
import { FfdheGroups } from "./tls/ffdhe.ts";
import {
  asciiString,
  type ClientHello,
  type KeyExchangeParams,
  keyExchangeParams,
  parseClientHello,
  parseServerHello,
  parseServerKeyExchange,
  type ServerHello,
} from "./tls/hello.ts";
import { Ja4 } from "./tls/ja4.ts";
import {
  ALERT_CLOSE_NOTIFY,
  ALERT_USER_CANCELED,
  alertName,
  CIPHER_SUITE_NAMES,
  ContentType,
  HandshakeType,
  hex16,
  isGrease,
  TLS13,
  TLS_VERSIONS,
} from "./tls/names.ts";
import { RecordBody, type RecordListener, type RecordProblem, RecordReader } from "./tls/records.ts";

/** 0 = bytes sent by this socket, 1 = bytes it received. */
export type Direction = 0 | 1;
export type WireEnd = "fin" | "rst";
/**
 * Why the bytes could not be read: not a TLS stream, a broken record or message, the stream stopped in the
 * middle of the ClientHello, a hole never filled, retransmitted bytes that disagree, more than the bounds.
 */
export type WireProblem = "not-tls" | "malformed" | "truncated" | "gap" | "conflict" | "overflow";

export interface WireLimits {
  /** stream bytes followed per direction from offset 0 */
  window: number;
  /** bytes kept beyond a hole, per direction */
  maxPending: number;
  /** largest handshake message read whole (ClientHello, ServerHello, ServerKeyExchange) */
  maxMessage: number;
}

export const DEFAULT_WIRE_LIMITS: WireLimits = { window: 65536, maxPending: 65536, maxMessage: 65536 };

/**
 * What every connection shares: name tables and the lists of names made from them, limits, and the JA4 scratch
 * buffers (built once by the caller, used by one thread).
 */
export interface WireContext {
  readonly groups: GroupIndex;
  /** supported_groups and key_share lists as canonical group names */
  readonly groupLists: NamedLists;
  readonly cipherLists: NamedLists;
  readonly versionLists: NamedLists;
  readonly ffdhe: FfdheGroups;
  readonly ja4: Ja4;
  /** TLS ≤ 1.2 suite → how its ServerKeyExchange carries the group, filled as suites are seen */
  readonly keyExchange: Map<number, KeyExchangeParams>;
  readonly limits: WireLimits;
}

export function wireContext(
  limits: Partial<WireLimits> = {},
  groups: GroupIndex = indexGroups(),
): WireContext {
  return {
    groups,
    groupLists: new NamedLists(
      codeNames(new Map([...groups.byCodePoint].map(([code, g]) => [code, g.name]))),
    ),
    cipherLists: new NamedLists(CIPHER_NAMES),
    versionLists: new NamedLists(VERSION_NAMES),
    ffdhe: new FfdheGroups(),
    ja4: new Ja4(),
    keyExchange: new Map(),
    limits: { ...DEFAULT_WIRE_LIMITS, ...limits },
  };
}

/** A name per 16-bit code point, null for none: read per value of every ClientHello, faster than a Map. */
type CodeNames = readonly (string | null)[];

function codeNames(names: ReadonlyMap<number, string>): CodeNames {
  const table: (string | null)[] = new Array(0x10000).fill(null);
  for (const [code, name] of names) if (code >= 0 && code < 0x10000) table[code] = name;
  return table;
}

const CIPHER_NAMES = codeNames(CIPHER_SUITE_NAMES);
const VERSION_NAMES = codeNames(TLS_VERSIONS);

const EMPTY_STRINGS: readonly string[] = Object.freeze([]);

/** Lists remembered per NamedLists (emptied when full). */
const NAMED_LISTS_MAX = 1024;
/** Longer lists are named each time, not remembered (bounds what hostile hellos can make it keep). */
const NAMED_LIST_LENGTH = 512;

/**
 * Lists of code points as names, remembered by their code points (compared one by one): a host's clients offer
 * few distinct lists, and a list seen before gives the same array again (whoever keeps one copies it).
 */
export class NamedLists {
  readonly #lists = new Map<number, { codes: readonly number[]; names: readonly string[] }>();

  constructor(private readonly names: CodeNames) {}

  /** The names of code points in order, GREASE left out; a code point without a name as `0x….`. */
  of(codes: readonly number[] | null): readonly string[] {
    if (codes === null) return EMPTY_STRINGS;
    if (codes.length > NAMED_LIST_LENGTH) return namesOf(codes, this.names);
    let hash = 0x811c9dc5 ^ codes.length;
    for (let i = 0; i < codes.length; i++) hash = Math.imul(hash ^ codes[i]!, 0x01000193);
    const known = this.#lists.get(hash);
    if (known !== undefined && sameCodes(known.codes, codes)) return known.names;
    // not frozen: copying a frozen array cost ten times as much, and every record copies these
    const names: readonly string[] = namesOf(codes, this.names);
    if (this.#lists.size >= NAMED_LISTS_MAX) this.#lists.clear();
    this.#lists.set(hash, { codes: codes.slice(), names });
    return names;
  }
}

function sameCodes(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How a TLS ≤ 1.2 suite's ServerKeyExchange carries its group, from the suite's IANA name. */
function suiteKeyExchange(ctx: WireContext, suite: number): KeyExchangeParams {
  let params = ctx.keyExchange.get(suite);
  if (params === undefined) {
    const name = CIPHER_SUITE_NAMES.get(suite);
    params = name === undefined ? null : keyExchangeParams(cipherSuiteFacts(name).keyExchange);
    ctx.keyExchange.set(suite, params);
  }
  return params;
}

/** The client's offer, from its (first) ClientHello. Lists keep the client's order, without GREASE. */
export interface WireClientFacts {
  serverName: string | null;
  /** supported_groups: canonical names; a code point carnot has no name for as `0x….` */
  groupsOffered: readonly string[];
  /** the groups the client sent key shares for */
  keySharesOffered: readonly string[];
  /** supported_versions, or the legacy version alone without it */
  versionsOffered: readonly string[];
  /** IANA names; a code point without a name as `0x….` */
  ciphersOffered: readonly string[];
  /** ALPN protocols; one that is not printable ASCII as `0x` and its hex */
  alpnOffered: readonly string[];
  ja4: string;
  earlyData: boolean;
  pskOffered: boolean;
  grease: boolean;
}

/** The server's answer, from its ServerHello (the final one after a HelloRetryRequest) and ServerKeyExchange. */
export interface WireServerFacts {
  helloRetry: boolean;
  tlsVersion: string | null;
  tlsVersionId: number;
  cipher: string | null;
  cipherId: number;
  negotiatedGroup: string | null;
  negotiatedGroupId: number | null;
  kexClass: KexClass | null;
  /** the protocol selected; null when none or not visible (TLS 1.3 sends it encrypted) */
  alpn: string | null;
  resumed: boolean | null;
}

export interface WireHandshake {
  role: "client" | "server" | null;
  client: WireClientFacts | null;
  server: WireServerFacts | null;
  success: boolean | null;
  error: string | null;
  problem: WireProblem | null;
  /** protected records seen, per direction */
  protectedRecords: [number, number];
}

interface Alert {
  level: number;
  description: number;
}

/** One direction: its reassembly, its record reader and what its records said. */
class Flow implements RecordListener {
  readonly reassembler: StreamReassembler;
  readonly reader: RecordReader;
  /** this direction sent the ClientHello (true) or a ServerHello (false) */
  isClient: boolean | null = null;
  messages = 0;
  sentChangeCipherSpec = false;
  /** handshake records after ChangeCipherSpec not read (TLS ≤ 1.2: protected; TLS 1.3 client: its second hello) */
  handshakeAfterCcs = 0;
  /** application_data records */
  protectedRecords = 0;
  serverHelloDone = false;
  ended: WireEnd | null = null;
  /** where a FIN said the stream ends */
  finOffset = -1;

  constructor(
    private readonly conn: WireConnection,
    readonly direction: Direction,
    limits: WireLimits,
  ) {
    this.reader = new RecordReader(this, limits.maxMessage);
    this.reassembler = new StreamReassembler(this.reader, limits.window, limits.maxPending);
  }

  /** All bytes up to a FIN have come. */
  get finished(): boolean {
    return this.ended === "fin" && this.reassembler.delivered >= this.finOffset;
  }

  /** Stops reading this direction. */
  fail(problem: RecordProblem): void {
    this.reader.problem ??= problem;
  }

  record(type: number, length: number): RecordBody {
    const conn = this.conn;
    // a TLS stream starts with a handshake record (or, from a server refusing it, an alert)
    if (this.reader.records === 1 && type !== ContentType.handshake && type !== ContentType.alert) {
      this.fail("not-tls");
      return RecordBody.skip;
    }
    switch (type) {
      case ContentType.handshake:
        if (!this.sentChangeCipherSpec) return RecordBody.handshake;
        // after ChangeCipherSpec: TLS 1.3 servers still send a plaintext ServerHello after a retry request
        if (this.isClient === false && conn.version === TLS13) return RecordBody.handshake;
        this.handshakeAfterCcs++;
        return RecordBody.skip;
      case ContentType.alert: {
        // an encrypted alert is longer than two bytes (its tag); TLS ≤ 1.2 encrypts after ChangeCipherSpec
        const encrypted = this.sentChangeCipherSpec && conn.version !== null && conn.version < TLS13;
        return length === 2 && !encrypted ? RecordBody.alert : RecordBody.skip;
      }
      case ContentType.changeCipherSpec:
        return this.sentChangeCipherSpec ? RecordBody.skip : RecordBody.changeCipherSpec;
      case ContentType.applicationData:
        this.protectedRecords++;
        conn.protectedRecord(this);
        return RecordBody.skip;
      default:
        return RecordBody.skip;
    }
  }

  wants(type: number): boolean {
    if (this.messages === 0) return true;
    if (this.isClient !== false) return false;
    if (type === HandshakeType.serverHello) return true;
    return type === HandshakeType.serverKeyExchange && this.conn.keyExchangeParams !== null;
  }

  message(type: number, body: Uint8Array | null): void {
    const first = this.messages++ === 0;
    if (first) {
      if (type === HandshakeType.clientHello || type === HandshakeType.serverHello) {
        this.isClient = type === HandshakeType.clientHello;
      }
      if (this.isClient === null || !this.conn.roleAgrees(this)) {
        this.fail("malformed");
        return;
      }
    }
    if (body === null) {
      if (type === HandshakeType.serverHelloDone && this.isClient === false) this.serverHelloDone = true;
      return;
    }
    let ok = true;
    if (this.isClient) ok = !first || this.conn.clientHelloBody(body);
    else if (type === HandshakeType.serverHello) ok = this.conn.serverHelloBody(body);
    else if (type === HandshakeType.serverKeyExchange) ok = this.conn.serverKeyExchangeBody(body);
    if (!ok) this.fail("malformed");
  }

  alert(level: number, description: number): void {
    if (level !== 1 && level !== 2) this.fail("malformed");
    else this.conn.alertSeen({ level, description });
  }

  changeCipherSpec(): void {
    this.sentChangeCipherSpec = true;
  }
}

/** A connection's handshake, decided from the bytes of both directions as they come. */
export class WireConnection {
  /** the client's first ClientHello, once read */
  clientHello: ClientHello | null = null;
  /** the HelloRetryRequest, if the server sent one */
  helloRetryRequest: ServerHello | null = null;
  /** the (final) ServerHello */
  serverHello: ServerHello | null = null;
  /** the negotiated protocol version, once a ServerHello (or HelloRetryRequest) says it */
  version: number | null = null;
  /** TLS ≤ 1.2: the group of the ServerKeyExchange (null: none, or not a named or RFC 7919 group) */
  serverKeyExchangeGroup: number | null = null;
  /** TLS ≤ 1.2: how the negotiated suite's ServerKeyExchange carries its group (null: it carries none) */
  keyExchangeParams: KeyExchangeParams = null;
  /** plaintext alerts, in order (at most a few are kept) */
  readonly alerts: Alert[] = [];

  readonly #ctx: WireContext;
  readonly #flows: readonly [Flow, Flow];
  #problem: WireProblem | null = null;
  #outcome: boolean | null = null;
  #error: string | null = null;
  #decided = false;
  /** the client's first protected record has been seen; protected records from either side since */
  #clientProtected = false;
  #protectedAfterClient = 0;
  #result: WireHandshake | null = null;

  constructor(ctx: WireContext) {
    this.#ctx = ctx;
    this.#flows = [new Flow(this, 0, ctx.limits), new Flow(this, 1, ctx.limits)];
  }

  /** The outcome is final: the kernel may stop following this connection. */
  get decided(): boolean {
    return this.#decided;
  }

  get problem(): WireProblem | null {
    return this.#problem;
  }

  /**
   * A segment of one direction: `bytes[start, end)` (all of it by default) start at `streamOffset` of that
   * direction's stream; read during the call.
   */
  segment(
    direction: Direction,
    streamOffset: number,
    bytes: Uint8Array,
    start = 0,
    end = bytes.length,
  ): void {
    if (this.#decided) return;
    const flow = this.#flows[direction];
    flow.reassembler.push(streamOffset, bytes, start, end);
    this.#afterBytes(flow);
    if (!this.#decided && flow.ended !== null) this.#afterEnd();
  }

  /** A FIN or RST seen in one direction; `streamOffset` of a FIN is where its stream ends (all bytes before it). */
  end(direction: Direction, kind: WireEnd, streamOffset?: number): void {
    if (this.#decided) return;
    const flow = this.#flows[direction];
    if (flow.ended !== "rst") flow.ended = kind;
    if (kind === "fin") flow.finOffset = streamOffset ?? flow.reassembler.delivered;
    this.#afterEnd();
  }

  /** The handshake as far as the bytes go; while undecided, what giving up now would say. */
  result(): WireHandshake {
    if (this.#result !== null) return this.#result;
    let success = this.#outcome;
    let error = this.#error;
    let problem = this.#problem;
    if (!this.#decided) {
      const final = this.#finalOutcome();
      success = final.success;
      error = final.error;
      problem = final.problem;
    }
    const conflict = problem === "conflict";
    const client = conflict || this.clientHello === null ? null : this.#clientFacts(this.clientHello);
    const server = conflict || this.serverHello === null ? null : this.#serverFacts(this.serverHello);
    const clientFlow = this.#clientFlow();
    const result: WireHandshake = {
      role: clientFlow === null ? null : clientFlow.direction === 0 ? "client" : "server",
      client,
      server,
      success,
      error,
      problem,
      protectedRecords: [this.#flows[0].protectedRecords, this.#flows[1].protectedRecords],
    };
    if (this.#decided) this.#result = result;
    return result;
  }

  // --- called by the flows ---

  /** A direction's first handshake message says which side it is: the two directions must differ. */
  roleAgrees(flow: Flow): boolean {
    const other = this.#flows[1 - flow.direction]!;
    return other.isClient === null || other.isClient !== flow.isClient;
  }

  /** The client's first hello; false when malformed. */
  clientHelloBody(body: Uint8Array): boolean {
    this.clientHello = parseClientHello(body);
    return this.clientHello !== null;
  }

  /** A ServerHello or HelloRetryRequest; false when malformed or out of place. */
  serverHelloBody(body: Uint8Array): boolean {
    const hello = parseServerHello(body);
    // a second ServerHello only after a HelloRetryRequest
    if (hello === null || this.serverHello !== null || (hello.retry && this.helloRetryRequest !== null))
      return false;
    const version = hello.selectedVersion ?? hello.legacyVersion;
    // TLS 1.3 is said by supported_versions only (RFC 8446 §4.1.3); a retry request exists only in TLS 1.3
    const bad =
      (hello.selectedVersion !== null && hello.selectedVersion < TLS13) ||
      (hello.selectedVersion === null && (version > 0x0303 || version < 0x0300 || hello.retry)) ||
      (this.version !== null && this.version !== version);
    if (bad) return false;
    this.version = version;
    if (hello.retry) {
      this.helloRetryRequest = hello;
      return true;
    }
    this.serverHello = hello;
    this.keyExchangeParams = version < TLS13 ? suiteKeyExchange(this.#ctx, hello.cipherSuite) : null;
    return true;
  }

  /** TLS ≤ 1.2: the group of a ServerKeyExchange; false when malformed. */
  serverKeyExchangeBody(body: Uint8Array): boolean {
    const group = parseServerKeyExchange(body, this.keyExchangeParams);
    if (group === null) return false;
    if (group.kind === "named") this.serverKeyExchangeGroup = group.group;
    else if (group.kind === "dh-prime")
      this.serverKeyExchangeGroup = this.#ctx.ffdhe.codePointOf(group.prime);
    return true;
  }

  alertSeen(alert: Alert): void {
    if (this.alerts.length < 4) this.alerts.push(alert);
  }

  /** An application_data record: counts toward TLS 1.3's proof of completion. */
  protectedRecord(flow: Flow): void {
    if (this.#clientProtected) this.#protectedAfterClient++;
    else if (flow.isClient === true) this.#clientProtected = true;
  }

  // --- deciding ---

  #clientFlow(): Flow | null {
    const [a, b] = this.#flows;
    if (a.isClient !== null) return a.isClient ? a : b;
    if (b.isClient !== null) return b.isClient ? b : a;
    return null;
  }

  #decide(success: boolean | null, error: string | null): void {
    this.#outcome = success;
    this.#error = error;
    this.#decided = true;
  }

  /** After bytes of one direction: problems first, then an alert, then the proof of completion. */
  #afterBytes(flow: Flow): void {
    const r = flow.reassembler;
    this.#problem = r.conflicts > 0 ? "conflict" : r.overflowed ? "overflow" : flow.reader.problem;
    if (this.#problem !== null) {
      this.#decide(null, this.#problem);
      return;
    }
    const alert = this.#endingAlert();
    if (alert !== null) {
      this.#decide(false, alertName(alert.description));
      return;
    }
    if (this.#completed()) this.#decide(true, null);
  }

  /** The first alert that ends the handshake, given the version known now. */
  #endingAlert(): Alert | null {
    for (const a of this.alerts) {
      if (a.level === 2 || a.description === ALERT_CLOSE_NOTIFY) return a;
      if (this.version === TLS13 && a.description !== ALERT_USER_CANCELED) return a;
    }
    return null;
  }

  #completed(): boolean {
    const client = this.#clientFlow();
    if (client === null || this.serverHello === null || this.version === null) return false;
    const server = this.#flows[1 - client.direction]!;
    if (this.version < TLS13) {
      return (
        client.sentChangeCipherSpec &&
        client.handshakeAfterCcs > 0 &&
        server.sentChangeCipherSpec &&
        server.handshakeAfterCcs > 0
      );
    }
    return this.#clientProtected && this.#protectedAfterClient > 0 && !this.clientHello?.earlyData;
  }

  /** Both directions ended, or one was reset: the outcome is what the bytes so far prove. */
  #afterEnd(): void {
    const [a, b] = this.#flows;
    if (a.ended !== "rst" && b.ended !== "rst" && !(a.finished && b.finished)) return;
    const final = this.#finalOutcome();
    this.#problem = final.problem;
    this.#decide(final.success, final.error);
  }

  /** The outcome if nothing more comes. */
  #finalOutcome(): { success: boolean | null; error: string | null; problem: WireProblem | null } {
    const [a, b] = this.#flows;
    const hole = (f: Flow) => f.reassembler.hasHole || (f.ended === "fin" && !f.finished);
    let problem = this.#problem;
    if (problem === null && (hole(a) || hole(b))) problem = "gap";
    if (problem === null && this.clientHello === null) problem = "truncated";
    if (problem !== null) return { success: null, error: problem, problem };
    const ended = a.ended === "rst" || b.ended === "rst" ? "reset" : a.ended || b.ended ? "closed" : null;
    if (ended === null) return { success: null, error: "unconfirmed", problem: null };
    // a TLS 1.3 client that sent its Finished may have completed: the bytes do not say
    if (this.version === TLS13 && this.#clientProtected)
      return { success: null, error: "unconfirmed", problem: null };
    return { success: false, error: ended, problem: null };
  }

  // --- facts ---

  #clientFacts(h: ClientHello): WireClientFacts {
    const ctx = this.#ctx;
    return {
      serverName: h.serverName,
      groupsOffered: ctx.groupLists.of(h.supportedGroups),
      keySharesOffered: ctx.groupLists.of(h.keyShares),
      versionsOffered: ctx.versionLists.of(h.supportedVersions ?? [h.legacyVersion]),
      ciphersOffered: ctx.cipherLists.of(h.cipherSuites),
      alpnOffered: h.alpn === null ? EMPTY_STRINGS : h.alpn.map(protocolName),
      ja4: this.#ctx.ja4.of(h),
      earlyData: h.earlyData,
      pskOffered: h.pskIdentities !== null,
      grease: anyGrease(h.cipherSuites) || anyGrease(h.extensions) || anyGrease(h.supportedGroups),
    };
  }

  #serverFacts(sh: ServerHello): WireServerFacts {
    const version = this.version ?? sh.legacyVersion;
    const tls13 = version === TLS13;
    const groupId = tls13 ? sh.keyShareGroup : this.serverKeyExchangeGroup;
    const group = groupId === null ? undefined : this.#ctx.groups.byCodePoint.get(groupId);
    return {
      helloRetry: this.helloRetryRequest !== null,
      tlsVersion: VERSION_NAMES[version] ?? null,
      tlsVersionId: version,
      cipher: CIPHER_NAMES[sh.cipherSuite] ?? null,
      cipherId: sh.cipherSuite,
      negotiatedGroup: group?.name ?? null,
      negotiatedGroupId: groupId,
      kexClass: group?.kexClass ?? null,
      alpn: !tls13 && sh.alpn !== null ? protocolName(sh.alpn) : null,
      resumed: tls13 ? sh.pskIdentity !== null : this.#resumed12(sh),
    };
  }

  /** TLS ≤ 1.2: the server echoed the client's session id, or went to ChangeCipherSpec without a full flight. */
  #resumed12(sh: ServerHello): boolean | null {
    const sid = this.clientHello?.sessionId;
    if (sid !== undefined && sid.length > 0 && Buffer.compare(sid, sh.sessionId) === 0) return true;
    const client = this.#clientFlow();
    const server = client === null ? null : this.#flows[1 - client.direction]!;
    if (server === null) return null;
    if (server.serverHelloDone) return false;
    return server.sentChangeCipherSpec ? true : null;
  }
}

/** The names of code points in order, GREASE left out; a code point without a name as `0x….`. */
function namesOf(codes: readonly number[], names: CodeNames): string[] {
  const out: string[] = [];
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (!isGrease(c)) out.push(names[c] ?? hex16(c));
  }
  return out;
}

function anyGrease(codes: readonly number[] | null): boolean {
  if (codes === null) return false;
  for (let i = 0; i < codes.length; i++) if (isGrease(codes[i]!)) return true;
  return false;
}

/** An ALPN protocol name: printable ASCII as it is, anything else as `0x` and its hex (never re-encoded). */
function protocolName(bytes: Uint8Array): string {
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c < 0x20 || c > 0x7e) return `0x${Buffer.from(bytes).toString("hex")}`;
  }
  return asciiString(bytes);
}
