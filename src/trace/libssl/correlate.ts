/**
 * Correlation: kernel events (SNI set, groups set, handshake calls and returns, SSL_free) → one result per
 * TLS handshake. Pure: no I/O, no clock; time comes from the events and from the caller of `expire`.
 *
 * Keys. The spec joins events by (pid, tid, ssl_ptr), but two of its rules rule out tid as part of the key:
 * a handshake may move between threads of one process (event loops with worker pools), and the SNI/groups
 * are often set on another thread than the one that later runs the handshake. An `SSL*` is unique within one
 * address space while it is alive, so state lives under (pid, ssl_ptr), and the tid of the handshake call is
 * recorded in it (the line carries the tid of the call that finished the handshake). Reuse of a freed
 * pointer is handled by SSL_new/SSL_free, which reset the entry.
 *
 * Two kinds of state:
 * - the connection (SSL* → SSL_CTX*, role, library, the SNI/groups set for its next handshake): lives until
 *   SSL_free or a new SSL_new of the same pointer; bounded by `maxPending` (the oldest evicted first,
 *   counted in `cacheEvictions`);
 * - the handshake in progress (from its first handshake call to success or fatal failure): expires when no
 *   event touched it for `windowNs` (a line with error "timeout", counted in `correlationTimeouts`).
 */
import {
  type CarnotEvent,
  decodeDone,
  decodeKex,
  type HandshakeDone,
  HandshakeFunc as HsFunc,
  type KexFacts,
  EventKind as Kind,
  Role as StateRole,
} from "./events.ts";
import { canonicalGroupList, canonicalGroupNids, type GroupIndex, indexGroups } from "../groups.ts";

/** The fields of a decoded kernel event that correlation reads. */
export type SslEvent = Pick<
  CarnotEvent,
  | "tsNs"
  | "ptr"
  | "aux"
  | "pid"
  | "tid"
  | "ret"
  | "kind"
  | "libId"
  | "comm"
  | "data"
  | "text"
  | "nids"
  | "cgroupId"
>;

export type Role = "client" | "server";
export type GroupsSource = "connection" | "context";

/** One handshake, finished (success or failure) or given up (timeout, freed, evicted, incomplete). */
export interface CorrelatedHandshake {
  pid: number;
  tid: number;
  ssl: number;
  libId: number;
  comm: string;
  role: Role | null;
  sni: string | null;
  groups: string[] | null;
  groupsSource: GroupsSource | null;
  success: boolean;
  /** null on success; "fatal", "syscall", "closed", "timeout", "freed", "evicted" or "incomplete" */
  error: string | null;
  /** ktime of the first handshake call seen, null when the tracer missed it (started mid-handshake) */
  startNs: number | null;
  /** ktime of completion (or of the last event, for a handshake given up) */
  endNs: number;
  /** key-exchange facts read by the kernel at completion (verified offsets only), null when none */
  kex: KexFacts | null;
  /** true when the handshake ran inside SSL_read/SSL_write (no handshake call of its own) */
  implicit: boolean;
  /**
   * the process's cgroup v2 id at the handshake's events; null when unknown (a handshake the kernel gave up) or
   * when they disagree (the process moved to another cgroup during the handshake)
   */
  cgroupId: number | null;
}

export interface CorrelationCounters {
  eventsCorrelated: number;
  handshakesEmitted: number;
  correlationTimeouts: number;
  cacheEvictions: number;
}

export interface CorrelationOptions {
  /** how long a handshake in progress may go without an event before it is given up */
  windowNs: number;
  /** bound of each table (connections, contexts, handshakes in progress) */
  maxPending: number;
  groupIndex?: GroupIndex;
}

export const DEFAULT_WINDOW_NS = 2_000_000_000;
export const DEFAULT_MAX_PENDING = 65_536;

interface Handshake {
  startNs: number | null;
  lastNs: number;
  tid: number;
  /** handshake calls entered and not yet returned (SSL_connect → SSL_do_handshake nest on one thread) */
  openCalls: number;
  /** the outermost call returned < 0: the next SSL_get_error says whether that was fatal */
  awaitingError: boolean;
  /** the cgroup of its events so far (mergeCgroup) */
  cgroupId: number;
}

/** Events of one handshake in two cgroups: the process moved during it, so no one cgroup is its. */
const MOVED = -1;

/** The cgroup of a handshake's events once `next` (0 = unknown) is seen too: 0 none yet, MOVED on a change. */
function mergeCgroup(soFar: number, next: number): number {
  if (next === 0 || soFar === next) return soFar;
  return soFar === 0 ? next : MOVED;
}

interface Connection {
  key: string;
  pid: number;
  ssl: number;
  ctx: number | null;
  libId: number;
  comm: string;
  role: Role | null;
  sni: string | null;
  groups: string[] | null;
  hs: Handshake | null;
  /** handshakes finished on this SSL* since its SSL_new (an unfinished implicit one at SSL_free is then moot) */
  finished: number;
}

/** SSL_get_error codes that end a handshake; every other code (want read/write/…) keeps it going. */
const FATAL_SSL_ERRORS: ReadonlyMap<number, string> = new Map([
  [1, "fatal"], // SSL_ERROR_SSL
  [5, "syscall"], // SSL_ERROR_SYSCALL
  [6, "closed"], // SSL_ERROR_ZERO_RETURN
]);

/** Puts `key` last in a Map's iteration order (the Map then doubles as a least-recently-used list). */
function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
}

/** Streaming correlation; `onHandshake` receives each handshake once, in the order they finish. */
export class HandshakeCorrelator {
  readonly counters: CorrelationCounters = {
    eventsCorrelated: 0,
    handshakesEmitted: 0,
    correlationTimeouts: 0,
    cacheEvictions: 0,
  };
  private readonly connections = new Map<string, Connection>();
  /**
   * handshakes in progress, oldest started first. Not reordered per event: a Map delete + set on every event
   * cost ~10 % of the tracer's CPU under load, so expiry scans the (small) table instead.
   */
  private readonly inProgress = new Map<string, Connection>();
  private readonly contextGroups = new Map<string, string[]>();
  /** (pid, tid) → connection of the last handshake call on that thread, for events that lack the SSL* */
  private readonly threadCall = new Map<string, string>();
  private readonly groupIndex: GroupIndex;

  constructor(
    private readonly options: CorrelationOptions,
    private readonly onHandshake: (hs: CorrelatedHandshake) => void,
  ) {
    this.groupIndex = options.groupIndex ?? indexGroups();
  }

  /** Number of handshakes in progress. */
  get pending(): number {
    return this.inProgress.size;
  }

  push(ev: SslEvent): void {
    this.counters.eventsCorrelated++;
    switch (ev.kind) {
      case Kind.SslNew:
        this.onSslNew(ev);
        break;
      case Kind.SslFree:
        this.onSslFree(ev);
        break;
      case Kind.SetHostname:
        this.connection(ev).sni = ev.text;
        break;
      case Kind.SetGroupsList:
        this.connection(ev).groups = canonicalGroupList(ev.text ?? "", this.groupIndex);
        break;
      case Kind.SetGroupsNids:
        this.connection(ev).groups = canonicalGroupNids(ev.nids ?? [], this.groupIndex);
        break;
      case Kind.CtxGroupsList:
        this.setContextGroups(ev, canonicalGroupList(ev.text ?? "", this.groupIndex));
        break;
      case Kind.CtxGroupsNids:
        this.setContextGroups(ev, canonicalGroupNids(ev.nids ?? [], this.groupIndex));
        break;
      case Kind.SetState:
        if (ev.aux === StateRole.Client) this.connection(ev).role = "client";
        else if (ev.aux === StateRole.Server) this.connection(ev).role = "server";
        break;
      case Kind.HandshakeEnter:
        this.onHandshakeEnter(ev);
        break;
      case Kind.HandshakeReturn:
        this.onHandshakeReturn(ev);
        break;
      case Kind.GetError:
        this.onGetError(ev);
        break;
      case Kind.HandshakeImplicit:
        this.onImplicit(ev);
        break;
      case Kind.HandshakeDone:
        this.onDone(ev);
        break;
    }
  }

  /** Gives up every handshake in progress untouched since `nowNs - windowNs`. */
  expire(nowNs: number): void {
    const limit = nowNs - this.options.windowNs;
    for (const conn of this.inProgress.values()) {
      if (conn.hs === null || conn.hs.lastNs > limit) continue;
      this.counters.correlationTimeouts++;
      this.finish(conn, false, "timeout", conn.hs.lastNs, conn.hs.tid, conn.comm);
    }
  }

  /**
   * Aggregated mode: a handshake the kernel held in progress is given up (timeout at the window, incomplete at
   * exit); it becomes a line with what user space knows of its connection (SNI, groups).
   */
  giveUp(
    hs: { pid: number; ssl: number; startNs: number; role: Role | null; libId: number },
    error: string,
    endNs: number,
    comm: string,
  ): void {
    const conn = this.connection({ pid: hs.pid, ptr: hs.ssl, libId: hs.libId, comm } as SslEvent);
    conn.role ??= hs.role;
    // the kernel's table holds no cgroup: this line has none from libssl
    const progress = this.progress(conn, { tsNs: endNs, tid: hs.pid, cgroupId: 0 } as SslEvent);
    if (hs.startNs > 0) progress.startNs ??= hs.startNs;
    if (error === "timeout") this.counters.correlationTimeouts++;
    this.finish(conn, false, error, endNs, hs.pid, conn.comm);
  }

  /** Gives up every handshake in progress (at exit): each becomes a line with `error`. */
  flush(error = "incomplete"): void {
    for (const conn of [...this.inProgress.values()]) {
      if (conn.hs) this.finish(conn, false, error, conn.hs.lastNs, conn.hs.tid, conn.comm);
    }
  }

  private key(pid: number, ptr: number): string {
    return `${pid}:${ptr}`;
  }

  /** The connection of `ev.ptr`, created when the tracer missed its SSL_new. */
  private connection(ev: SslEvent, ssl: number = ev.ptr): Connection {
    const key = this.key(ev.pid, ssl);
    let conn = this.connections.get(key);
    if (!conn) {
      conn = {
        key,
        pid: ev.pid,
        ssl,
        ctx: null,
        libId: ev.libId,
        comm: ev.comm,
        role: null,
        sni: null,
        groups: null,
        hs: null,
        finished: 0,
      };
      this.connections.set(key, conn);
      this.bound(this.connections, (evicted) => {
        if (evicted.hs)
          this.finish(evicted, false, "evicted", evicted.hs.lastNs, evicted.hs.tid, evicted.comm);
      });
    }
    conn.comm = ev.comm;
    return conn;
  }

  /** Evicts the least recently used entries above `maxPending`, counting each. */
  private bound<V>(map: Map<string, V>, onEvict?: (value: V) => void): void {
    while (map.size > this.options.maxPending) {
      const oldest = map.entries().next().value;
      if (!oldest) return;
      map.delete(oldest[0]);
      this.counters.cacheEvictions++;
      onEvict?.(oldest[1]);
    }
  }

  private setContextGroups(ev: SslEvent, groups: string[]): void {
    touch(this.contextGroups, this.key(ev.pid, ev.ptr), groups);
    this.bound(this.contextGroups);
  }

  private onSslNew(ev: SslEvent): void {
    const key = this.key(ev.pid, ev.ptr);
    const old = this.connections.get(key);
    // SSL_new returned a pointer still known: its SSL_free was missed, so whatever ran on it is over.
    if (old?.hs) this.finish(old, false, "freed", ev.tsNs, old.hs.tid, old.comm);
    this.connections.delete(key);
    const conn = this.connection(ev);
    conn.ctx = ev.aux;
  }

  private onSslFree(ev: SslEvent): void {
    const key = this.key(ev.pid, ev.ptr);
    const conn = this.connections.get(key);
    if (!conn) return;
    if (conn.hs) this.finish(conn, false, "freed", ev.tsNs, conn.hs.tid, ev.comm, null, false, ev.cgroupId);
    this.connections.delete(key);
  }

  private onHandshakeEnter(ev: SslEvent): void {
    const conn = this.connection(ev);
    if (ev.aux === HsFunc.Connect) conn.role = "client";
    else if (ev.aux === HsFunc.Accept) conn.role = "server";
    const hs = this.progress(conn, ev);
    hs.startNs ??= ev.tsNs;
    hs.openCalls++;
    // called again after returning < 0 without a fatal SSL_get_error: that was want-read/want-write
    hs.awaitingError = false;
    this.rememberThread(ev, conn.key);
  }

  private onHandshakeReturn(ev: SslEvent): void {
    const conn = this.callConnection(ev);
    if (!conn) return;
    const hs = this.progress(conn, ev);
    hs.openCalls = Math.max(0, hs.openCalls - 1);
    if (hs.openCalls > 0) return; // an inner call (SSL_do_handshake inside SSL_connect): the outer one decides
    if (ev.ret === 1) this.finish(conn, true, null, ev.tsNs, ev.tid, ev.comm, decodeKex(ev.data));
    else if (ev.ret === 0) this.finish(conn, false, "fatal", ev.tsNs, ev.tid, ev.comm);
    else hs.awaitingError = true;
  }

  /**
   * The kernel saw a handshake that ran inside SSL_read/SSL_write finish (ret 1, with its facts), or an SSL*
   * set up for one freed before it finished (ret 0). aux = ktime of SSL_set_connect/accept_state.
   */
  private onImplicit(ev: SslEvent): void {
    const conn = this.connection(ev);
    if (ev.ret === 1) {
      const hs = this.progress(conn, ev);
      if (ev.aux > 0) hs.startNs ??= ev.aux;
      this.finish(conn, true, null, ev.tsNs, ev.tid, ev.comm, decodeKex(ev.data), true);
      return;
    }
    // an explicit handshake already ended (or is still running, and SSL_free ends it): nothing more to say
    if (conn.hs || conn.finished > 0) return;
    const hs = this.progress(conn, ev);
    if (ev.aux > 0) hs.startNs ??= ev.aux;
    this.finish(conn, false, "freed", ev.tsNs, ev.tid, ev.comm, null, true);
  }

  /** Aggregated mode: the kernel correlated the calls; this one event is the whole handshake. */
  private onDone(ev: SslEvent): void {
    const done = decodeDone(ev.data);
    if (!done) return;
    // The kernel reports SSL_free only for connections user space holds state for (SNI, groups, SSL_new):
    // a connection first heard of now is forgotten right after its line, so it needs no table entry at all.
    // (the size checks first: building a key string costs more than the rest of this fast path)
    if (this.connections.size === 0 || !this.connections.has(this.key(ev.pid, ev.ptr))) {
      this.finishUnknown(ev, done);
      return;
    }
    const conn = this.connection(ev);
    if (done.ctx !== null) conn.ctx = done.ctx;
    if (done.role !== null) conn.role = done.role;
    const hs = this.progress(conn, ev);
    if (ev.aux > 0) hs.startNs ??= ev.aux;
    this.finish(conn, done.error === null, done.error, ev.tsNs, ev.tid, ev.comm, done.kex, done.implicit);
  }

  /**
   * An aggregated handshake on an SSL* user space holds nothing for (no SSL_new, SNI or groups seen; a
   * server's connections, typically): the line straight from the event, as `finish` would make it.
   */
  private finishUnknown(ev: SslEvent, done: HandshakeDone): void {
    const contextGroups =
      done.ctx === null || this.contextGroups.size === 0
        ? undefined
        : this.contextGroups.get(this.key(ev.pid, done.ctx));
    this.counters.handshakesEmitted++;
    this.onHandshake({
      pid: ev.pid,
      tid: ev.tid,
      ssl: ev.ptr,
      libId: ev.libId,
      comm: ev.comm,
      role: done.role,
      sni: null,
      groups: contextGroups ? [...contextGroups] : null,
      groupsSource: contextGroups ? "context" : null,
      success: done.error === null,
      error: done.error,
      startNs: ev.aux > 0 ? ev.aux : null,
      endNs: ev.tsNs,
      kex: done.kex,
      implicit: done.implicit,
      cgroupId: ev.cgroupId > 0 ? ev.cgroupId : null,
    });
  }

  private onGetError(ev: SslEvent): void {
    if (ev.aux > 0) return; // SSL_get_error about a successful call says nothing about failure
    const conn = this.callConnection(ev);
    const hs = conn?.hs;
    if (!conn || !hs?.awaitingError) return; // about SSL_read/SSL_write, not a handshake call
    hs.lastNs = ev.tsNs;
    const error = FATAL_SSL_ERRORS.get(ev.ret);
    if (error) this.finish(conn, false, error, ev.tsNs, hs.tid, ev.comm, null, false, ev.cgroupId);
    else hs.awaitingError = false;
  }

  /** The connection an event is about: by SSL*, or, when the kernel could not give one, by the thread. */
  private callConnection(ev: SslEvent): Connection | undefined {
    if (ev.ptr !== 0) return this.connection(ev);
    const key = this.threadCall.get(`${ev.pid}:${ev.tid}`);
    return key === undefined ? undefined : this.connections.get(key);
  }

  private rememberThread(ev: SslEvent, key: string): void {
    this.threadCall.set(`${ev.pid}:${ev.tid}`, key);
    // bounded without counting: this table only helps events that lack the SSL*
    while (this.threadCall.size > this.options.maxPending) {
      const oldest = this.threadCall.keys().next().value;
      if (oldest === undefined) break;
      this.threadCall.delete(oldest);
    }
  }

  /** The handshake in progress on `conn`, started by this event if there is none. */
  private progress(conn: Connection, ev: SslEvent): Handshake {
    if (!conn.hs) {
      conn.hs = {
        startNs: null,
        lastNs: ev.tsNs,
        tid: ev.tid,
        openCalls: 0,
        awaitingError: false,
        cgroupId: 0,
      };
    }
    conn.hs.lastNs = ev.tsNs;
    conn.hs.tid = ev.tid;
    conn.hs.cgroupId = mergeCgroup(conn.hs.cgroupId, ev.cgroupId);
    if (this.inProgress.has(conn.key)) return conn.hs;
    this.inProgress.set(conn.key, conn);
    this.bound(this.inProgress, (evicted) => {
      if (evicted.hs) this.finish(evicted, false, "evicted", evicted.hs.lastNs, evicted.hs.tid, evicted.comm);
    });
    return conn.hs;
  }

  private finish(
    conn: Connection,
    success: boolean,
    error: string | null,
    endNs: number,
    tid: number,
    comm: string,
    kex: KexFacts | null = null,
    implicit = false,
    /** the cgroup of the event that ends it, when that event did not go through `progress` */
    endCgroupId = 0,
  ): void {
    const hs = conn.hs;
    const cgroupId = mergeCgroup(hs?.cgroupId ?? 0, endCgroupId);
    conn.finished++;
    const sni = conn.sni;
    let groups = conn.groups;
    let groupsSource: GroupsSource | null = groups ? "connection" : null;
    if (!groups && conn.ctx !== null) {
      groups = this.contextGroups.get(this.key(conn.pid, conn.ctx)) ?? null;
      if (groups) groupsSource = "context";
    }
    // whatever is set on this SSL* from now on belongs to its next handshake
    conn.hs = null;
    conn.sni = null;
    conn.groups = null;
    this.inProgress.delete(conn.key);
    this.counters.handshakesEmitted++;
    this.onHandshake({
      pid: conn.pid,
      tid,
      ssl: conn.ssl,
      libId: conn.libId,
      comm,
      role: conn.role,
      sni,
      groups: groups ? [...groups] : null,
      groupsSource,
      success,
      error,
      startNs: hs?.startNs ?? null,
      endNs,
      kex,
      implicit,
      cgroupId: cgroupId > 0 ? cgroupId : null,
    });
  }
}

/** Correlates a whole event sequence (tests, replays of recorded events); gives up what is left as `atEnd`. */
export function correlateHandshakes(
  events: Iterable<SslEvent>,
  options: Partial<CorrelationOptions> = {},
  atEnd = "incomplete",
): { handshakes: CorrelatedHandshake[]; counters: CorrelationCounters } {
  const handshakes: CorrelatedHandshake[] = [];
  const correlator = new HandshakeCorrelator(
    {
      windowNs: options.windowNs ?? DEFAULT_WINDOW_NS,
      maxPending: options.maxPending ?? DEFAULT_MAX_PENDING,
      ...options,
    },
    (hs) => handshakes.push(hs),
  );
  for (const ev of events) {
    correlator.expire(ev.tsNs);
    correlator.push(ev);
  }
  correlator.flush(atEnd);
  return { handshakes, counters: { ...correlator.counters } };
}
