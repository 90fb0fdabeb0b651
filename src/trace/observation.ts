/**
 * The handshake observation: one line of runtime.jsonl (shared/specs/handshake-observation.md).
 * The valibot schema is the one definition of the record; the type is inferred from it.
 */
import * as v from "valibot";
import type { CorrelatedHandshake } from "./correlate.ts";
import type { GroupIndex } from "./groups.ts";

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
  /** null when the process was gone before its executable could be read (never guessed) */
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

/** Key-exchange facts of a handshake; a later stage reads them from the library (null until then). */
export interface KeyExchangeFacts {
  negotiatedGroupId: number | null;
  tlsVersion: string | null;
  cipher: string | null;
}

/** What the record builder needs from the world, looked up by the caller (I/O stays at the edge). */
export interface ObservationContext {
  /** `path (OpenSSL x.y.z)` of a probed library, by lib_id */
  library(libId: number): string;
  /** /proc/PID/exe, read once per process; null when unreadable */
  exe(pid: number): string | null;
  /** wall clock minus CLOCK_MONOTONIC, in µs, sampled once at start */
  clockOffsetUs: number;
  groupIndex: GroupIndex;
}

/** RFC 3339 UTC with microseconds of a CLOCK_MONOTONIC time (bpf_ktime_get_ns). */
export function formatKtime(ktimeNs: number, clockOffsetUs: number): string {
  // in µs, wall-clock times stay below 2^53: exact
  const wallUs = Math.floor(ktimeNs / 1000) + clockOffsetUs;
  const iso = new Date(Math.floor(wallUs / 1000)).toISOString(); // ….mmmZ
  const micros = (wallUs % 1000).toString().padStart(3, "0");
  return `${iso.slice(0, 23)}${micros}Z`;
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
  kex: KeyExchangeFacts | null = null,
): Observation {
  const group =
    kex?.negotiatedGroupId == null ? undefined : ctx.groupIndex.byCodePoint.get(kex.negotiatedGroupId);
  return {
    source: "runtime.ebpf",
    asset_id: null,
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    sni: hs.sni,
    groups_offered: hs.groups ?? [],
    handshake_success: hs.success,
    pid: hs.pid,
    tid: hs.tid,
    ssl_ptr: `0x${hs.ssl.toString(16)}`,
    time: formatKtime(hs.endNs, ctx.clockOffsetUs),
    confidence: observationConfidence(hs),
    role: hs.role,
    negotiated_group: group?.name ?? null,
    negotiated_group_id: kex?.negotiatedGroupId ?? null,
    kex_class: group?.kexClass ?? null,
    tls_version: kex?.tlsVersion ?? null,
    cipher: kex?.cipher ?? null,
    groups_source: hs.groupsSource,
    comm: hs.comm,
    exe: ctx.exe(hs.pid),
    library: ctx.library(hs.libId),
    duration_us: hs.startNs === null ? null : Math.floor((hs.endNs - hs.startNs) / 1000),
    error: hs.error,
  };
}
