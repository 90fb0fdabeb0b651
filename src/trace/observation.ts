/**
 * The handshake observation: one line of runtime.jsonl (shared/specs/handshake-observation.md).
 * The valibot schema is the one definition of the record; the type is inferred from it.
 */
import * as v from "valibot";
import type { CorrelatedHandshake } from "./libssl/correlate.ts";
import type { KexFacts } from "./libssl/events.ts";
import type { GroupIndex, KexClass } from "./groups.ts";

const nullableString = v.nullable(v.string());
const hex64 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

/** Every key in publication order; `raw_hash` and `chain` are added by the chained writer. */
export const ObservationSchema = v.strictObject({
  source: v.literal("runtime.ebpf"),
  asset_id: nullableString,
  owner: nullableString,
  data_class: nullableString,
  secrecy_lifetime_years: v.nullable(v.number()),
  exposure: nullableString,
  sni: nullableString,
  groups_offered: v.array(v.string()),
  handshake_success: v.boolean(),
  pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  tid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  ssl_ptr: v.pipe(v.string(), v.regex(/^0x[0-9a-f]+$/)),
  time: v.pipe(v.string(), v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)),
  confidence: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
  role: v.nullable(v.picklist(["client", "server"])),
  negotiated_group: nullableString,
  negotiated_group_id: v.nullable(v.pipe(v.number(), v.integer())),
  kex_class: v.nullable(v.picklist(["classical", "hybrid-pq", "pq"])),
  tls_version: nullableString,
  cipher: nullableString,
  groups_source: v.nullable(v.picklist(["connection", "context", "library-default"])),
  comm: v.string(),
  /** as the kernel saw it at the process's first event; null when it cannot be known (deleted, …), never guessed */
  exe: nullableString,
  library: v.string(),
  duration_us: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
  error: nullableString,
});

export const ChainedObservationSchema = v.strictObject({
  ...ObservationSchema.entries,
  raw_hash: hex64,
  chain: hex64,
});

export type Observation = v.InferOutput<typeof ObservationSchema>;
export type ChainedObservation = v.InferOutput<typeof ChainedObservationSchema>;

/** What is known about one probed library, from its calibration (all null when it has none). */
export interface LibraryFacts {
  /** `path (OpenSSL x.y.z)` */
  label: string;
  /** IANA cipher code → IANA name, as the library itself names its suites */
  ciphers: Readonly<Record<string, string>> | null;
  /** the library's default groups list (canonical names), what a client offers when the app sets none */
  defaultGroups: readonly string[] | null;
}

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

const TLS_VERSIONS: ReadonlyMap<number, string> = new Map([
  [0x0304, "TLSv1.3"],
  [0x0303, "TLSv1.2"],
  [0x0302, "TLSv1.1"],
  [0x0301, "TLSv1"],
  [0x0300, "SSLv3"],
]);

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

/** What the record builder needs from the world, looked up by the caller (I/O stays at the edge). */
export interface ObservationContext {
  /** what is known of a probed library, by lib_id */
  library(libId: number): LibraryFacts;
  /** the process's executable (announced by the kernel); null when unknown */
  exe(pid: number): string | null;
  /** wall clock minus CLOCK_MONOTONIC, in µs, sampled once at start */
  clockOffsetUs: number;
  groupIndex: GroupIndex;
}

/** The last second formatted: handshakes come many per second, a Date per record is not needed. */
let formattedSecond = Number.NaN;
let secondPrefix = "";

/** RFC 3339 UTC with microseconds of a CLOCK_MONOTONIC time (bpf_ktime_get_ns). */
export function formatKtime(ktimeNs: number, clockOffsetUs: number): string {
  // in µs, wall-clock times stay below 2^53: exact
  const wallUs = Math.floor(ktimeNs / 1000) + clockOffsetUs;
  const second = Math.floor(wallUs / 1_000_000);
  if (second !== formattedSecond) {
    secondPrefix = new Date(second * 1000).toISOString().slice(0, 20); // YYYY-MM-DDTHH:MM:SS.
    formattedSecond = second;
  }
  return `${secondPrefix}${(wallUs - second * 1_000_000).toString().padStart(6, "0")}Z`;
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

export function buildObservation(
  hs: CorrelatedHandshake,
  ctx: ObservationContext,
  kex: ResolvedKex = resolveKex(hs.kex, ctx.library(hs.libId), ctx.groupIndex),
): Observation {
  const lib = ctx.library(hs.libId);
  let groups = hs.groups;
  let groupsSource: Observation["groups_source"] = hs.groupsSource;
  if (groups === null && lib.defaultGroups !== null) {
    groups = [...lib.defaultGroups];
    groupsSource = "library-default";
  }
  let confidence = observationConfidence(hs);
  if (groupsSource === "library-default") confidence = Math.round((confidence - 0.05) * 100) / 100;
  return {
    source: "runtime.ebpf",
    asset_id: null,
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    sni: hs.sni,
    groups_offered: groups ?? [],
    handshake_success: hs.success,
    pid: hs.pid,
    tid: hs.tid,
    ssl_ptr: `0x${hs.ssl.toString(16)}`,
    time: formatKtime(hs.endNs, ctx.clockOffsetUs),
    confidence,
    role: hs.role,
    negotiated_group: kex.negotiatedGroup,
    negotiated_group_id: kex.negotiatedGroupId,
    kex_class: kex.kexClass,
    tls_version: kex.tlsVersion,
    cipher: kex.cipher,
    groups_source: groupsSource,
    comm: hs.comm,
    exe: ctx.exe(hs.pid),
    library: lib.label,
    duration_us: hs.startNs === null ? null : Math.floor((hs.endNs - hs.startNs) / 1000),
    error: hs.error,
  };
}

/**
 * The record's canonical JSON (keys sorted, no raw_hash/chain: what raw_hash covers), as `canonicalJson` gives
 * it, without sorting anything: an object literal in sorted key order serializes to exactly that text. Costs
 * a quarter of the generic path per record (the tracer's busiest step); test/trace/observation.test.ts holds
 * it to `canonicalJson` for every key of the schema.
 */
export function canonicalObservation(o: Observation): string {
  return JSON.stringify({
    asset_id: o.asset_id,
    cipher: o.cipher,
    comm: o.comm,
    confidence: o.confidence,
    data_class: o.data_class,
    duration_us: o.duration_us,
    error: o.error,
    exe: o.exe,
    exposure: o.exposure,
    groups_offered: o.groups_offered,
    groups_source: o.groups_source,
    handshake_success: o.handshake_success,
    kex_class: o.kex_class,
    library: o.library,
    negotiated_group: o.negotiated_group,
    negotiated_group_id: o.negotiated_group_id,
    owner: o.owner,
    pid: o.pid,
    role: o.role,
    secrecy_lifetime_years: o.secrecy_lifetime_years,
    sni: o.sni,
    source: o.source,
    ssl_ptr: o.ssl_ptr,
    tid: o.tid,
    time: o.time,
    tls_version: o.tls_version,
  });
}

/** Where observations go: the chained writer (its `append` with the precomputed canonical text). */
export interface ObservationSink {
  append(record: Record<string, unknown>, canonical: string): void;
}

/**
 * One handshake → one record appended to `sink`: the tracer's hot path, shared by the trace and its warm-up.
 * `onProblem` hears why a key-exchange value stayed null (the caller decides how often to say it).
 */
export function appendObservation(
  hs: CorrelatedHandshake,
  ctx: ObservationContext,
  sink: ObservationSink,
  onProblem?: (lib: LibraryFacts, problem: string) => void,
): void {
  const lib = ctx.library(hs.libId);
  const kex = resolveKex(hs.kex, lib, ctx.groupIndex);
  if (onProblem) for (const problem of kex.problems) onProblem(lib, problem);
  const record = buildObservation(hs, ctx, kex);
  sink.append(record, canonicalObservation(record));
}
