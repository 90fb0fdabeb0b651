/**
 * The user-space half of the wire source: per connection (socket cookie), the decoded kernel events go to a
 * TLS analyzer (reassembly and parsing: ./connection.ts); once the handshake is decided — or the connection
 * ends, idles past the window, or the table is full — one WireObservation comes out and the kernel is told to
 * stop copying that connection. Links to libssl handshakes are reported as soon as the kernel makes them.
 */
import type { WireLink, WireSide } from "../join.ts";
import type { WireClientFacts, WireConnection, WireHandshake } from "./connection.ts";
import { type WireEvent, WireFlag, WireKind } from "./events.ts";
import { RecentCookies } from "./recent-cookies.ts";

export interface WireObservation extends WireSide {
  /** what the bytes prove (client facts always there: no line without a ClientHello) */
  handshake: WireHandshake & { client: WireClientFacts };
  /** the socket's owner as the kernel saw it sending; cgroupId 0 = unknown */
  owner: { pid: number; tid: number; comm: string; cgroupId: number } | null;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** ktime of the first byte of the ClientHello */
  startNs: number;
}

export interface WireCounters {
  events: number;
  segments: number;
  connections: number;
  observations: number;
  /** connections whose bytes were not a readable TLS handshake (no line), by problem */
  unreadable: Record<string, number>;
  /** lines written with a problem after their ClientHello (a gap, a conflict, …), by problem */
  problems: Record<string, number>;
  /** connections the kernel dropped after their first bytes (filters, not TLS after all), or whose owner the
   * filters needed and never showed */
  forgotten: number;
  /** connections given up after the window without being decided */
  timeouts: number;
  /** connections pushed out of a full table */
  evictions: number;
}

interface Connection {
  cookie: number;
  analyzer: WireConnection;
  startNs: number;
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
  newAnalyzer: () => WireConnection;
  /** tell the kernel to stop copying this connection */
  release: (cookie: number) => void;
  /**
   * --pid / --comm are set: a connection whose owner was never seen sending cannot be shown to match them, and
   * gives no line (counted as filtered)
   */
  requireOwner?: boolean;
}

export interface WireSourceHandlers {
  linked(cookie: number, link: WireLink): void;
  decided(obs: WireObservation): void;
}

const endpointsKey = (localAddr: string, localPort: number, remoteAddr: string, remotePort: number): string =>
  `${localAddr} ${localPort} ${remoteAddr} ${remotePort}`;

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
    problems: {},
    forgotten: 0,
    timeouts: 0,
    evictions: 0,
  };
  readonly #connections = new Map<number, Connection>();
  /**
   * Cookies in the order their connections opened, finished ones included (skipped when met): the oldest open
   * one is found without walking the Map, whose first entry after many deletions is a walk past each of them.
   */
  #opened: number[] = [];
  #openedHead = 0;
  /**
   * cookies already written: their late events (in the ring before the kernel heard of the release) are dropped.
   * Bounded: a cookie is never reused, and its late events come within a drain or two.
   */
  readonly #written = new RecentCookies(WRITTEN_MAX);
  /** ClientHello segments that reached a listening socket, by endpoints, until their connection shows up */
  readonly #deferred = new Map<string, { tsNs: number; segments: { offset: number; bytes: Uint8Array }[] }>();

  constructor(
    private readonly opts: WireSourceOptions,
    private readonly handlers: WireSourceHandlers,
  ) {}

  get pending(): number {
    return this.#connections.size;
  }

  push(ev: WireEvent): void {
    this.counters.events++;
    if (ev.flags & WireFlag.Listener) {
      this.#holdDeferred(ev);
      return;
    }
    let conn = this.#connections.get(ev.cookie);
    if (ev.kind === WireKind.End && ev.flags & WireFlag.Filtered) {
      if (conn) this.#forget(conn);
      return;
    }
    if (conn === undefined) {
      if (ev.kind !== WireKind.Segment || this.#written.has(ev.cookie)) return;
      conn = this.#open(ev);
      if (ev.flags & WireFlag.Deferred) this.#replayDeferred(conn);
    }
    conn.lastNs = ev.tsNs;
    if (conn.owner === null && ev.flags & WireFlag.Owner)
      conn.owner = { pid: ev.pid, tid: ev.tid, comm: ev.comm, cgroupId: ev.cgroupId };
    if (conn.link === null && ev.flags & (WireFlag.Link | WireFlag.LinkWeak) && ev.linkSsl !== 0) {
      conn.link = { pid: ev.pid, ssl: ev.linkSsl, strong: (ev.flags & WireFlag.Link) !== 0 };
      this.handlers.linked(conn.cookie, conn.link);
    }
    const sent = (ev.flags & WireFlag.Egress) !== 0;
    if (ev.kind === WireKind.Segment) {
      this.counters.segments++;
      // read in place: a view per segment cost more than deciding what it holds
      if (ev.payloadEnd > ev.payloadStart)
        conn.analyzer.segment(sent ? 0 : 1, ev.streamOffset, ev.memory, ev.payloadStart, ev.payloadEnd);
    } else {
      const reset = (ev.flags & WireFlag.Rst) !== 0;
      conn.analyzer.end(sent ? 0 : 1, reset ? "rst" : "fin", reset ? undefined : ev.streamOffset);
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
    for (const [key, held] of this.#deferred) if (held.tsNs <= limit) this.#deferred.delete(key);
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
      const oldest = this.#oldest();
      if (oldest) {
        this.counters.evictions++;
        this.#finish(oldest, ev.tsNs);
      }
    }
    this.#opened.push(ev.cookie);
    this.counters.connections++;
    const conn: Connection = {
      cookie: ev.cookie,
      analyzer: this.opts.newAnalyzer(),
      startNs: ev.tsNs,
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

  /** The oldest connection still open (null when none). */
  #oldest(): Connection | null {
    const opened = this.#opened;
    while (this.#openedHead < opened.length) {
      const conn = this.#connections.get(opened[this.#openedHead]!);
      if (conn) return conn;
      this.#openedHead++;
    }
    return null;
  }

  /** Keeps the order list as long as the open connections, not as long as every connection ever opened. */
  #compactOpened(): void {
    if (this.#opened.length - this.#openedHead <= 2 * this.#connections.size + 4096) return;
    this.#opened = this.#opened.slice(this.#openedHead).filter((cookie) => this.#connections.has(cookie));
    this.#openedHead = 0;
  }

  /** A ClientHello (or a piece of it) seen on a listening socket: kept (a copy) until its connection exists. */
  #holdDeferred(ev: WireEvent): void {
    const key = endpointsKey(ev.localAddr, ev.localPort, ev.remoteAddr, ev.remotePort);
    let held = this.#deferred.get(key);
    if (held === undefined) {
      if (this.#deferred.size >= this.opts.maxPending) {
        const oldest = this.#deferred.keys().next().value;
        if (oldest !== undefined) this.#deferred.delete(oldest);
      }
      held = { tsNs: ev.tsNs, segments: [] };
      this.#deferred.set(key, held);
    }
    held.segments.push({ offset: ev.streamOffset, bytes: ev.payload.slice() });
  }

  /** The connection's own first events came: its ClientHello goes in front of them. */
  #replayDeferred(conn: Connection): void {
    const key = endpointsKey(conn.localAddr, conn.localPort, conn.remoteAddr, conn.remotePort);
    const held = this.#deferred.get(key);
    if (held === undefined) return;
    this.#deferred.delete(key);
    conn.startNs = held.tsNs;
    for (const s of held.segments) conn.analyzer.segment(1, s.offset, s.bytes);
  }

  #forget(conn: Connection): void {
    this.#connections.delete(conn.cookie);
    this.#written.add(conn.cookie);
    this.#compactOpened();
    this.counters.forgotten++;
  }

  /** The connection's observation (handed to `decided` unless the caller takes it), or null if unreadable. */
  #finish(conn: Connection, nowNs: number, handOver = true): WireObservation | null {
    this.#connections.delete(conn.cookie);
    this.#written.add(conn.cookie);
    this.#oldest();
    this.#compactOpened();
    if (conn.ended !== (SENT_ENDED | RECEIVED_ENDED)) this.opts.release(conn.cookie);
    if (conn.owner === null && this.opts.requireOwner) {
      this.counters.forgotten++;
      return null;
    }
    const handshake = conn.analyzer.result();
    const client = handshake.client;
    if (client === null || handshake.role === null) {
      const why = handshake.problem ?? "unreadable";
      this.counters.unreadable[why] = (this.counters.unreadable[why] ?? 0) + 1;
      return null;
    }
    if (handshake.problem !== null)
      this.counters.problems[handshake.problem] = (this.counters.problems[handshake.problem] ?? 0) + 1;
    this.counters.observations++;
    const obs: WireObservation = {
      cookie: conn.cookie,
      link: conn.link,
      role: handshake.role,
      serverName: client.serverName,
      version: handshake.server?.tlsVersionId ?? null,
      cipher: handshake.server?.cipherId ?? null,
      group: handshake.server?.negotiatedGroupId ?? null,
      endNs: nowNs,
      // client is there (checked above): the same object, narrowed
      handshake: handshake as WireObservation["handshake"],
      owner: conn.owner,
      localAddr: conn.localAddr,
      localPort: conn.localPort,
      remoteAddr: conn.remoteAddr,
      remotePort: conn.remotePort,
      startNs: conn.startNs,
    };
    if (handOver) this.handlers.decided(obs);
    return obs;
  }
}
