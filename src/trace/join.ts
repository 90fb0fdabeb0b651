/**
 * One connection, one line, whatever saw it: joins what the libssl probes finished (a CorrelatedHandshake,
 * keyed by process and SSL*) with what the wire source decided (keyed by socket cookie).
 *
 * The link between the two is made in the kernel: when a socket's owner sends the connection's first TLS flight,
 * the wire program records the SSL* of the libssl handshake call running on that thread (strong), or the SSL*
 * the thread last prepared for an implicit handshake (weak). A weak link is taken only when both sides agree on
 * the role and the server name. Both sources share one ring buffer, so the link (made while the handshake runs)
 * is always drained before the libssl completion: a completion without a link has no wire connection to wait
 * for. A completion whose connection is still undecided on the wire asks the wire source to decide it now; a
 * wire connection decided first waits for its completion, at most `holdNs`.
 */
import type { CorrelatedHandshake } from "./libssl/correlate.ts";

export interface WireLink {
  pid: number;
  ssl: number;
  /** false: the SSL* the thread prepared last, not one whose handshake call was running */
  strong: boolean;
}

/** What the joiner needs of a decided wire connection. */
export interface WireSide {
  cookie: number;
  link: WireLink | null;
  role: "client" | "server";
  serverName: string | null;
  /** what the ServerHello chose (code points), null when not seen */
  version: number | null;
  cipher: number | null;
  group: number | null;
  /** when the wire decided (ktime ns) */
  endNs: number;
}

export interface Joined<W extends WireSide> {
  libssl: CorrelatedHandshake | null;
  wire: W | null;
}

export interface JoinCounters {
  /** lines with both sources */
  joined: number;
  libsslOnly: number;
  wireOnly: number;
  /** weak links whose two sides disagreed: both written on their own */
  linksRejected: number;
  /** one side waited longer than the hold window for the other */
  holdTimeouts: number;
}

const key = (pid: number, ssl: number): string => `${pid}:${ssl}`;

interface Waiting<T> {
  value: T;
  sinceNs: number;
}

export class HandshakeJoiner<W extends WireSide> {
  readonly counters: JoinCounters = {
    joined: 0,
    libsslOnly: 0,
    wireOnly: 0,
    linksRejected: 0,
    holdTimeouts: 0,
  };
  /** (pid, SSL*) → the undecided wire connection linked to it */
  readonly #links = new Map<string, { cookie: number; link: WireLink }>();
  /** (pid, SSL*) → a decided wire connection waiting for its libssl completion */
  readonly #wireWaiting = new Map<string, Waiting<W>>();

  constructor(
    private readonly opts: {
      holdNs: number;
      /** decide the wire connection now (a libssl completion arrived for it); null if it has nothing to say */
      decideWire: (cookie: number) => W | null;
    },
    private readonly emit: (joined: Joined<W>) => void,
  ) {}

  /** Connections linked and not yet written, waiting either way. */
  get pending(): number {
    return this.#links.size + this.#wireWaiting.size;
  }

  /** The kernel linked a wire connection (still undecided) to a libssl handshake. */
  linked(cookie: number, link: WireLink): void {
    this.#links.set(key(link.pid, link.ssl), { cookie, link });
  }

  /** A wire connection was decided (or given up). */
  wire(obs: W): void {
    const link = obs.link;
    if (link === null) {
      this.#emitAlone(null, obs);
      return;
    }
    const k = key(link.pid, link.ssl);
    if (this.#links.get(k)?.cookie === obs.cookie) this.#links.delete(k);
    // an SSL* freed and reused: the earlier connection's completion is not coming any more
    const earlier = this.#wireWaiting.get(k);
    if (earlier) this.#emitAlone(null, earlier.value);
    this.#wireWaiting.set(k, { value: obs, sinceNs: obs.endNs });
  }

  /** A libssl handshake finished or was given up. */
  libssl(hs: CorrelatedHandshake): void {
    const k = key(hs.pid, hs.ssl);
    const waiting = this.#wireWaiting.get(k);
    if (waiting) {
      this.#wireWaiting.delete(k);
      this.#pair(hs, waiting.value);
      return;
    }
    const linked = this.#links.get(k);
    if (linked) {
      this.#links.delete(k);
      this.#pair(hs, this.opts.decideWire(linked.cookie));
      return;
    }
    this.#emitAlone(hs, null);
  }

  /** Whatever waited longer than the hold window goes out alone. */
  expire(nowNs: number): void {
    const limit = nowNs - this.opts.holdNs;
    for (const [k, w] of this.#wireWaiting) {
      if (w.sinceNs > limit) continue;
      this.#wireWaiting.delete(k);
      this.counters.holdTimeouts++;
      this.#emitAlone(null, w.value);
    }
  }

  /** At the end: everything still waiting goes out as it is. */
  flush(): void {
    for (const w of this.#wireWaiting.values()) this.#emitAlone(null, w.value);
    this.#wireWaiting.clear();
    this.#links.clear();
  }

  #pair(hs: CorrelatedHandshake, wire: W | null): void {
    if (wire === null) {
      this.#emitAlone(hs, null);
      return;
    }
    if (wire.link !== null && !wire.link.strong && !agree(hs, wire)) {
      this.counters.linksRejected++;
      this.#emitAlone(hs, null);
      this.#emitAlone(null, { ...wire, link: null });
      return;
    }
    this.counters.joined++;
    this.emit({ libssl: hs, wire });
  }

  #emitAlone(hs: CorrelatedHandshake | null, wire: W | null): void {
    if (hs !== null) this.counters.libsslOnly++;
    else this.counters.wireOnly++;
    this.emit({ libssl: hs, wire });
  }
}

/**
 * A weak link holds only when both sides tell the same story: role, the server name, and the version, cipher
 * and group the library read, wherever both know them.
 */
function agree(hs: CorrelatedHandshake, wire: WireSide): boolean {
  const same = (a: number | null | undefined, b: number | null) => a == null || b === null || a === b;
  if (hs.role !== null && hs.role !== wire.role) return false;
  if (hs.role === "client" && hs.sni !== null && wire.serverName !== null && hs.sni !== wire.serverName)
    return false;
  const kex = hs.kex;
  if (kex === null) return true;
  const cipher = kex.cipherId === null ? null : kex.cipherId & 0xffff;
  const group = kex.group === 0 ? null : kex.group;
  return same(kex.version, wire.version) && same(cipher, wire.cipher) && same(group, wire.group);
}
