/**
 * One record from what the sources saw of one handshake (shared/specs/handshake-observation.md): the libssl
 * probes' facts (resolved through the library's verified offsets and names), the wire's (what the handshake's
 * bytes prove), or both joined. Where both know a value they must agree; a disagreement leaves it null, with
 * the problem said, never a pick.
 */
import type { Joined } from "./join.ts";
import type { CorrelatedHandshake } from "./libssl/correlate.ts";
import type { KexFacts } from "./libssl/events.ts";
import type { GroupIndex, KexClass } from "./groups.ts";
import {
  canonicalObservation,
  formatKtime,
  type LibraryFacts,
  type Observation,
  type ObservationContext,
  type ObservationSink,
} from "./observation.ts";
import type { WireObservation } from "./wire/source.ts";
import { TLS_VERSIONS } from "./wire/tls/names.ts";

/** A handshake as the joiner hands it over: libssl, wire, or both. */
export type HandshakeSeen = Joined<WireObservation>;

/** Key-exchange fields of a record, resolved from the kernel's raw facts. */
export interface ResolvedKex {
  negotiatedGroup: string | null;
  negotiatedGroupId: number | null;
  kexClass: KexClass | null;
  tlsVersion: string | null;
  cipher: string | null;
  /** why a value stayed null although the kernel read something (for a one-time warning) */
  problems: readonly string[];
}

const NO_PROBLEMS: readonly string[] = Object.freeze([]);

/** `list` with `text` added; the list is allocated with its first problem (most handshakes have none). */
function withProblem(list: string[] | null, text: string): string[] {
  if (list === null) return [text];
  list.push(text);
  return list;
}

const NO_KEX: ResolvedKex = {
  negotiatedGroup: null,
  negotiatedGroupId: null,
  kexClass: null,
  tlsVersion: null,
  cipher: null,
  problems: NO_PROBLEMS,
};

/**
 * Names for the raw facts. Never guesses: a value that does not check out is null with a problem said. The
 * group is the session's key-exchange group; for TLS 1.3 the SSL object's own group must agree with it (a
 * resumed session without a new key exchange keeps an old group in the session: that must not be reported).
 */
export function resolveKex(kex: KexFacts | null, lib: LibraryFacts, groups: GroupIndex): ResolvedKex {
  if (kex === null) return NO_KEX;
  // allocated only when there is something to say (rarely): this runs once per handshake
  let problems: string[] | null = null;
  let tlsVersion: string | null = null;
  if (kex.version !== null) {
    tlsVersion = TLS_VERSIONS.get(kex.version) ?? null;
    if (tlsVersion === null)
      problems = withProblem(problems, `unknown protocol version 0x${kex.version.toString(16)}`);
  }
  let cipher: string | null = null;
  if (kex.cipherId !== null) {
    const code = kex.cipherId & 0xffff;
    cipher = (kex.cipherId >>> 24 === 0x03 ? lib.ciphers?.[String(code)] : undefined) ?? null;
    if (cipher === null)
      problems = withProblem(problems, `cipher id 0x${kex.cipherId.toString(16)} not named by the library`);
  }
  let groupId: number | null = null;
  if (kex.group !== null && kex.group !== 0) {
    groupId = kex.group;
    if (tlsVersion === "TLSv1.3" && kex.group13 !== null && kex.group13 !== kex.group) {
      problems = withProblem(
        problems,
        `TLS 1.3 group ${kex.group13} disagrees with the session's ${kex.group}`,
      );
      groupId = null;
    }
  }
  const info = groupId === null ? undefined : groups.byCodePoint.get(groupId);
  if (groupId !== null && !info)
    problems = withProblem(problems, `group code point ${groupId} not in carnot's table`);
  return {
    negotiatedGroup: info?.name ?? null,
    negotiatedGroupId: groupId,
    kexClass: info?.kexClass ?? null,
    tlsVersion,
    cipher,
    problems: problems ?? NO_PROBLEMS,
  };
}

/** Key-exchange fields of a record, resolved and merged (libssl and wire). */
interface MergedKex {
  groupId: number | null;
  version: number | null;
  cipher: string | null;
  cipherCode: number | null;
}

/** The libssl facts as codes (the key-exchange group, version and cipher it read through verified offsets). */
function libsslCodes(kex: ResolvedKex, hs: CorrelatedHandshake): MergedKex {
  const cipherCode =
    hs.kex?.cipherId !== null && hs.kex?.cipherId !== undefined && kex.cipher !== null
      ? hs.kex.cipherId & 0xffff
      : null;
  return {
    groupId: kex.negotiatedGroupId,
    version: kex.tlsVersion === null ? null : (TLS_VERSION_CODES.get(kex.tlsVersion) ?? null),
    cipher: kex.cipher,
    cipherCode,
  };
}

const TLS_VERSION_CODES: ReadonlyMap<string, number> = new Map(
  [...TLS_VERSIONS].map(([code, name]) => [name, code]),
);

/** Both known and different: null, and the problem said. */
function agreed(a: number | null, b: number | null, what: string, problems: string[]): number | null {
  if (a === null) return b;
  if (b === null || a === b) return a;
  problems.push(`${what}: libssl read 0x${a.toString(16)}, the wire shows 0x${b.toString(16)}`);
  return null;
}

/**
 * How sure a record is: 1 when every field was seen; lowered when a field was inferred or defaulted, or the
 * outcome was not seen (the handshake was given up). Unknown fields are null and do not lower it.
 */
export function observationConfidence(hs: CorrelatedHandshake): number {
  let c = 1;
  if (hs.startNs === null) c -= 0.1; // the first handshake call was missed: start and role may be off
  if (hs.groupsSource === "context") c -= 0.05; // inferred through SSL_new's SSL* → SSL_CTX* link
  if (hs.error === "timeout" || hs.error === "evicted" || hs.error === "incomplete") c -= 0.4;
  return Math.round(c * 100) / 100;
}

/** Confidence of what the wire alone says: lowered when the outcome is unproven or the owner unseen. */
function wireConfidence(w: WireObservation): number {
  let c = 1;
  if (w.handshake.success === null) c -= 0.2;
  if (w.owner === null) c -= 0.2;
  if (w.handshake.server === null) c -= 0.1; // the server's answer was not seen
  return Math.round(c * 100) / 100;
}

/** The keys after `observed_by`: what only the wire knows (and libssl's `server_groups`), and where. */
type TailKey =
  | "local_addr"
  | "local_port"
  | "remote_addr"
  | "remote_port"
  | "server_name"
  | "server_groups"
  | "key_shares_offered"
  | "hello_retry"
  | "alpn"
  | "ja4"
  | "resumed"
  | "host"
  | "machine_id"
  | "cgroup"
  | "container_id"
  | "pod_uid";

/** What one source (or both, joined) says of the handshake: the keys up to `observed_by`. */
type HeadKeys = Omit<Observation, TailKey>;

/**
 * The record: `head`, then the keys only the wire knows (`server_groups`, libssl's, sits among them), then the
 * host and the process's cgroup and what it names, in publication order. One literal: spreading parts into it
 * cost more than building them.
 */
function observation(
  head: HeadKeys,
  w: WireObservation | null,
  serverGroups: string[] | null,
  ctx: ObservationContext,
  cgroupId: number | null,
): Observation {
  const client = w?.handshake.client;
  const server = w?.handshake.server;
  const cgroup = cgroupId === null ? null : ctx.cgroup(cgroupId);
  return {
    source: head.source,
    asset_id: head.asset_id,
    owner: head.owner,
    data_class: head.data_class,
    secrecy_lifetime_years: head.secrecy_lifetime_years,
    exposure: head.exposure,
    sni: head.sni,
    groups_offered: head.groups_offered,
    handshake_success: head.handshake_success,
    pid: head.pid,
    tid: head.tid,
    ssl_ptr: head.ssl_ptr,
    time: head.time,
    confidence: head.confidence,
    role: head.role,
    negotiated_group: head.negotiated_group,
    negotiated_group_id: head.negotiated_group_id,
    kex_class: head.kex_class,
    tls_version: head.tls_version,
    cipher: head.cipher,
    groups_source: head.groups_source,
    comm: head.comm,
    exe: head.exe,
    library: head.library,
    duration_us: head.duration_us,
    error: head.error,
    observed_by: head.observed_by,
    local_addr: w?.localAddr ?? null,
    local_port: w?.localPort ?? null,
    remote_addr: w?.remoteAddr ?? null,
    remote_port: w?.remotePort ?? null,
    server_name: client?.serverName ?? null,
    server_groups: serverGroups,
    key_shares_offered: client ? client.keySharesOffered.slice() : null,
    hello_retry: server?.helloRetry ?? null,
    alpn: server?.alpn ?? null,
    ja4: client?.ja4 ?? null,
    resumed: server?.resumed ?? null,
    host: ctx.host,
    machine_id: ctx.machineId,
    cgroup: cgroup?.path ?? null,
    container_id: cgroup?.containerId ?? null,
    pod_uid: cgroup?.podUid ?? null,
  };
}

/** The cgroup of a handshake both sources saw: one that only one knows, or null when they differ (it moved). */
function joinedCgroup(libssl: number | null, wire: number | undefined): number | null {
  if (wire === undefined || wire === 0) return libssl;
  return libssl === null || libssl === wire ? wire : null;
}

const LIBSSL_ONLY: Observation["observed_by"] = ["libssl"];
const WIRE_ONLY: Observation["observed_by"] = ["wire"];
const BOTH: Observation["observed_by"] = ["libssl", "wire"];

/** The fields only libssl knows, for a handshake it saw. */
function libsslPart(hs: CorrelatedHandshake, ctx: ObservationContext, kex: ResolvedKex) {
  const lib = ctx.library(hs.libId);
  let groups = hs.groups;
  let groupsSource: Observation["groups_source"] = hs.groupsSource;
  if (groups === null && lib.defaultGroups !== null) {
    groups = [...lib.defaultGroups];
    groupsSource = "library-default";
  }
  let confidence = observationConfidence(hs);
  if (groupsSource === "library-default") confidence = Math.round((confidence - 0.05) * 100) / 100;
  return { lib, groups, groupsSource, confidence, kex };
}

/** The record of a handshake libssl saw (alone, or joined with the wire's view of it). */
function fromLibssl(
  hs: CorrelatedHandshake,
  w: WireObservation | null,
  ctx: ObservationContext,
  kex: ResolvedKex,
  problems: string[],
): Observation {
  const part = libsslPart(hs, ctx, kex);
  let merged = libsslCodes(kex, hs);
  let groupsOffered = part.groups ?? [];
  let groupsSource: Observation["groups_source"] = part.groupsSource;
  let serverGroups: string[] | null = null;
  if (hs.role === "server") serverGroups = part.groups;
  if (w !== null) {
    const client = w.handshake.client;
    const server = w.handshake.server;
    // the ClientHello's own list is what was offered, on both sides
    groupsOffered = client.groupsOffered.slice();
    groupsSource = "client-hello";
    const cipherCode = agreed(merged.cipherCode, server?.cipherId ?? null, "cipher", problems);
    merged = {
      groupId: agreed(merged.groupId, server?.negotiatedGroupId ?? null, "negotiated group", problems),
      version: agreed(merged.version, server?.tlsVersionId ?? null, "protocol version", problems),
      cipherCode,
      cipher: cipherCode === null ? null : (merged.cipher ?? server?.cipher ?? null),
    };
  }
  const group = merged.groupId === null ? undefined : ctx.groupIndex.byCodePoint.get(merged.groupId);
  const head: HeadKeys = {
    source: "runtime.ebpf",
    asset_id: null,
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    sni: hs.sni,
    groups_offered: groupsOffered,
    handshake_success: hs.success,
    pid: hs.pid,
    tid: hs.tid,
    ssl_ptr: `0x${hs.ssl.toString(16)}`,
    time: formatKtime(hs.endNs, ctx.clockOffsetUs),
    confidence: part.confidence,
    role: hs.role,
    negotiated_group: merged.groupId === null ? null : (group?.name ?? null),
    negotiated_group_id: group ? merged.groupId : null,
    kex_class: group?.kexClass ?? null,
    tls_version: merged.version === null ? null : (TLS_VERSIONS.get(merged.version) ?? null),
    cipher: merged.cipher,
    groups_source: groupsSource,
    comm: hs.comm,
    exe: ctx.exe(hs.pid),
    library: part.lib.label,
    duration_us: hs.startNs === null ? null : Math.floor((hs.endNs - hs.startNs) / 1000),
    error: hs.error,
    observed_by: w === null ? LIBSSL_ONLY : BOTH,
  };
  return observation(head, w, serverGroups, ctx, joinedCgroup(hs.cgroupId, w?.owner?.cgroupId));
}

/** The record of a handshake only the wire saw. */
function fromWire(w: WireObservation, ctx: ObservationContext): Observation {
  const { client, server } = w.handshake;
  const head: HeadKeys = {
    source: "runtime.ebpf",
    asset_id: null,
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    // the client set it on its connection: the same fact libssl reports as sni
    sni: w.role === "client" ? client.serverName : null,
    groups_offered: client.groupsOffered.slice(),
    handshake_success: w.handshake.success,
    pid: w.owner?.pid ?? null,
    tid: w.owner?.tid ?? null,
    ssl_ptr: null,
    time: formatKtime(w.endNs, ctx.clockOffsetUs),
    confidence: wireConfidence(w),
    role: w.role,
    negotiated_group: server?.negotiatedGroup ?? null,
    negotiated_group_id: server?.negotiatedGroup ? server.negotiatedGroupId : null,
    kex_class: server?.kexClass ?? null,
    tls_version: server?.tlsVersion ?? null,
    cipher: server?.cipher ?? null,
    groups_source: "client-hello",
    comm: w.owner?.comm ?? null,
    exe: w.owner === null ? null : ctx.exe(w.owner.pid),
    library: null,
    // from the first byte of the ClientHello to when the bytes proved the outcome (an upper bound): not the
    // handshake's own duration, so not written
    duration_us: null,
    error: w.handshake.error,
    observed_by: WIRE_ONLY,
  };
  return observation(head, w, null, ctx, w.owner !== null && w.owner.cgroupId > 0 ? w.owner.cgroupId : null);
}

/**
 * One handshake (as the joiner hands it over) → one record. `onProblem` hears why a value stayed null (the
 * caller decides how often to say it); problems of a handshake libssl did not see name no library.
 */
export function buildObservation(
  seen: HandshakeSeen,
  ctx: ObservationContext,
  onProblem?: (lib: LibraryFacts | null, problem: string) => void,
): Observation {
  const hs = seen.libssl;
  if (hs === null) {
    if (seen.wire === null) throw new Error("a handshake seen by no source");
    return fromWire(seen.wire, ctx);
  }
  const lib = ctx.library(hs.libId);
  const kex = resolveKex(hs.kex, lib, ctx.groupIndex);
  const problems: string[] = [];
  const record = fromLibssl(hs, seen.wire, ctx, kex, problems);
  if (onProblem) {
    for (const problem of kex.problems) onProblem(lib, problem);
    for (const problem of problems) onProblem(lib, problem);
  }
  return record;
}

/** One handshake → one record appended to `sink`: the tracer's hot path, shared by the trace and its warm-up. */
export function appendObservation(
  seen: HandshakeSeen,
  ctx: ObservationContext,
  sink: ObservationSink,
  onProblem?: (lib: LibraryFacts | null, problem: string) => void,
): void {
  const record = buildObservation(seen, ctx, onProblem);
  sink.append(record, canonicalObservation(record));
}
