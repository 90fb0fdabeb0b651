/**
 * The user-space half of the wire source: per connection (socket cookie), the decoded kernel events go to a
 * TLS analyzer (reassembly and parsing: ./connection.ts); once the handshake is decided — or the connection
 * ends, idles past the window, or the table is full — one WireObservation comes out and the kernel is told to
 * stop copying that connection. Links to libssl handshakes are reported as soon as the kernel makes them.
 */
import type { WireLink, WireSide } from "../join.ts";
import { type WireEvent, WireFlag, WireKind } from "./events.ts";

/** What the bytes of one handshake prove, as code points (names are resolved when the record is built). */
export interface WireTlsFacts {
  role: "client" | "server";
  serverName: string | null;
  /** supported_groups of the ClientHello, GREASE left out; null when it had none */
  groupsOffered: number[] | null;
  /** the groups the client sent key shares for, GREASE left out */
  keySharesOffered: number[] | null;
  helloRetry: boolean | null;
  version: number | null;
  cipher: number | null;
  group: number | null;
  alpn: string | null;
  ja4: string | null;
  resumed: boolean | null;
  success: boolean | null;
  error: string | null;
}

/** One connection's TLS, fed in capture order. */
export interface ConnectionAnalyzer {
  /** `sent`: bytes this socket sent (else received), at `streamOffset` of that direction's stream */
  push(sent: boolean, streamOffset: number, bytes: Uint8Array, tsNs: number): void;
  /** FIN (reset false) or RST seen in one direction */
  end(sent: boolean, reset: boolean, tsNs: number): void;
  /** nothing more is needed to write the line */
  readonly decided: boolean;
  /** the facts so far; null when the bytes are not a TLS handshake carnot can read */
  facts(): WireTlsFacts | null;
  /** why there are no facts or they stopped (counted in the metrics) */
  readonly problem: string | null;
  /** ktime of the handshake's first and last message seen (for duration_us), null when unknown */
  readonly startNs: number | null;
  readonly finishedNs: number | null;
}

export interface WireObservation extends WireSide, WireTlsFacts {
  owner: { pid: number; tid: number; comm: string } | null;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  startNs: number | null;
  finishedNs: number | null;
}

export interface WireCounters {
  events: number;
  segments: number;
  connections: number;
  observations: number;
  /** connections whose bytes were not a readable TLS handshake, by problem */
  unreadable: Record<string, number>;
  /** connections the kernel dropped after their first bytes (filters, not TLS after all) */
  forgotten: number;
  /** connections given up after the window without being decided */
  timeouts: number;
  /** connections pushed out of a full table */
  evictions: number;
}

interface Connection {
  cookie: number;
  analyzer: ConnectionAnalyzer;
  owner: WireObservation["owner"];
  link: WireLink | null;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  lastNs: number;
  ended: number;
}

export interface WireSourceOptions {
  windowNs: number;
  maxPending: number;
  newAnalyzer: () => ConnectionAnalyzer;
  /** tell the kernel to stop copying this connection */
  release: (cookie: number) => void;
}

export interface WireSourceHandlers {
  linked(cookie: number, link: WireLink): void;
  decided(obs: WireObservation): void;
}

/** How many written cookies are remembered (their late events are dropped). */
const WRITTEN_MAX = 65_536;
const SENT_ENDED = 1;
const RECEIVED_ENDED = 2;

export class WireSource {
  readonly counters: WireCounters = {
    events: 0,
    segments: 0,
    connections: 0,
    observations: 0,
    unreadable: {},
    forgotten: 0,
    timeouts: 0,
    evictions: 0,
  };
  /** insertion order = age: the first entry is the oldest (evicted first) */
  readonly #connections = new Map<number, Connection>();
  /** cookies already written: their late events (in the ring before the kernel heard of the release) are dropped */
  readonly #written = new Set<number>();

  constructor(
    private readonly opts: WireSourceOptions,
    private readonly handlers: WireSourceHandlers,
  ) {}

  get pending(): number {
    return this.#connections.size;
  }

  push(ev: WireEvent): void {
    this.counters.events++;
    let conn = this.#connections.get(ev.cookie);
    if (ev.kind === WireKind.End && ev.flags & WireFlag.Filtered) {
      if (conn) this.#forget(conn);
      return;
    }
    if (conn === undefined) {
      if (ev.kind !== WireKind.Segment || this.#written.has(ev.cookie)) return;
      conn = this.#open(ev);
    }
    conn.lastNs = ev.tsNs;
    if (conn.owner === null && ev.flags & WireFlag.Owner)
      conn.owner = { pid: ev.pid, tid: ev.tid, comm: ev.comm };
    if (conn.link === null && ev.flags & (WireFlag.Link | WireFlag.LinkWeak) && ev.linkSsl !== 0) {
      conn.link = { pid: ev.pid, ssl: ev.linkSsl, strong: (ev.flags & WireFlag.Link) !== 0 };
      this.handlers.linked(conn.cookie, conn.link);
    }
    const sent = (ev.flags & WireFlag.Egress) !== 0;
    if (ev.kind === WireKind.Segment) {
      this.counters.segments++;
      if (ev.payload.byteLength > 0) conn.analyzer.push(sent, ev.streamOffset, ev.payload, ev.tsNs);
    } else {
      const reset = (ev.flags & WireFlag.Rst) !== 0;
      conn.analyzer.end(sent, reset, ev.tsNs);
      conn.ended |= reset ? SENT_ENDED | RECEIVED_ENDED : sent ? SENT_ENDED : RECEIVED_ENDED;
    }
    if (conn.analyzer.decided || conn.ended === (SENT_ENDED | RECEIVED_ENDED)) this.#finish(conn, ev.tsNs);
  }

  /** The joiner wants this connection's line now (its libssl handshake finished). */
  decideNow(cookie: number, nowNs: number): WireObservation | null {
    const conn = this.#connections.get(cookie);
    return conn ? this.#finish(conn, nowNs, false) : null;
  }

  /** Connections idle for longer than the window are written as they are. */
  expire(nowNs: number): void {
    const limit = nowNs - this.opts.windowNs;
    for (const conn of this.#connections.values()) {
      if (conn.lastNs > limit) continue;
      this.counters.timeouts++;
      this.#finish(conn, nowNs);
    }
  }

  /** At the end of the trace: everything still open is written as it is. */
  flush(nowNs: number): void {
    for (const conn of [...this.#connections.values()]) this.#finish(conn, nowNs);
  }

  #open(ev: WireEvent): Connection {
    if (this.#connections.size >= this.opts.maxPending) {
      const oldest = this.#connections.values().next().value;
      if (oldest) {
        this.counters.evictions++;
        this.#finish(oldest, ev.tsNs);
      }
    }
    this.counters.connections++;
    const conn: Connection = {
      cookie: ev.cookie,
      analyzer: this.opts.newAnalyzer(),
      owner: null,
      link: null,
      localAddr: ev.localAddr,
      localPort: ev.localPort,
      remoteAddr: ev.remoteAddr,
      remotePort: ev.remotePort,
      lastNs: ev.tsNs,
      ended: 0,
    };
    this.#connections.set(ev.cookie, conn);
    return conn;
  }

  #forget(conn: Connection): void {
    this.#connections.delete(conn.cookie);
    this.#remember(conn.cookie);
    this.counters.forgotten++;
  }

  /** Bounded: a cookie is never reused, and its late events come within a drain or two. */
  #remember(cookie: number): void {
    if (this.#written.size >= WRITTEN_MAX) {
      const oldest = this.#written.values().next().value;
      if (oldest !== undefined) this.#written.delete(oldest);
    }
    this.#written.add(cookie);
  }

  /** The connection's observation (handed to `decided` unless the caller takes it), or null if unreadable. */
  #finish(conn: Connection, nowNs: number, handOver = true): WireObservation | null {
    this.#connections.delete(conn.cookie);
    this.#remember(conn.cookie);
    if (conn.ended !== (SENT_ENDED | RECEIVED_ENDED)) this.opts.release(conn.cookie);
    const facts = conn.analyzer.facts();
    if (facts === null) {
      const why = conn.analyzer.problem ?? "unreadable";
      this.counters.unreadable[why] = (this.counters.unreadable[why] ?? 0) + 1;
      return null;
    }
    this.counters.observations++;
    const obs: WireObservation = {
      ...facts,
      cookie: conn.cookie,
      link: conn.link,
      owner: conn.owner,
      localAddr: conn.localAddr,
      localPort: conn.localPort,
      remoteAddr: conn.remoteAddr,
      remotePort: conn.remotePort,
      startNs: conn.analyzer.startNs,
      finishedNs: conn.analyzer.finishedNs,
      endNs: nowNs,
    };
    if (handOver) this.handlers.decided(obs);
    return obs;
  }
}
