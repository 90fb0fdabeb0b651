/**
 * The handshake observation: one line of runtime.jsonl (shared/specs/handshake-observation.md).
 * The valibot schema is the one definition of the record; the type is inferred from it.
 */
import * as v from "valibot";
import type { GroupIndex } from "./groups.ts";

const nullableString = v.nullable(v.string());
const hex64 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const nullablePort = v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)));

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
  /** null only from the wire alone when the bytes cannot prove the outcome (error "unconfirmed") */
  handshake_success: v.nullable(v.boolean()),
  /** null only from the wire alone when the socket's owner was never seen sending */
  pid: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1))),
  tid: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1))),
  /** null when libssl did not see the handshake */
  ssl_ptr: v.nullable(v.pipe(v.string(), v.regex(/^0x[0-9a-f]+$/))),
  time: v.pipe(v.string(), v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)),
  confidence: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
  role: v.nullable(v.picklist(["client", "server"])),
  negotiated_group: nullableString,
  negotiated_group_id: v.nullable(v.pipe(v.number(), v.integer())),
  kex_class: v.nullable(v.picklist(["classical", "hybrid-pq", "pq"])),
  tls_version: nullableString,
  cipher: nullableString,
  groups_source: v.nullable(v.picklist(["connection", "context", "library-default", "client-hello"])),
  comm: nullableString,
  /** as the kernel saw it at the process's first event; null when it cannot be known (deleted, …), never guessed */
  exe: nullableString,
  /** null when libssl did not see the handshake */
  library: nullableString,
  duration_us: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
  error: nullableString,
  // added with the wire source (null when unknown, never guessed)
  observed_by: v.array(v.picklist(["libssl", "wire"])),
  local_addr: nullableString,
  local_port: nullablePort,
  remote_addr: nullableString,
  remote_port: nullablePort,
  server_name: nullableString,
  server_groups: v.nullable(v.array(v.string())),
  key_shares_offered: v.nullable(v.array(v.string())),
  hello_retry: v.nullable(v.boolean()),
  alpn: nullableString,
  ja4: nullableString,
  resumed: v.nullable(v.boolean()),
  // added for fleets (null when unknown, never guessed): where the handshake happened
  /** the host's name (uname nodename), read at start */
  host: nullableString,
  /** /etc/machine-id (32 lowercase hex digits), read at start */
  machine_id: nullableString,
  /** the process's cgroup v2 path, from the cgroup the kernel saw it in */
  cgroup: nullableString,
  /** the container the cgroup path names (Docker, containerd, CRI-O, Podman): 64 hex digits */
  container_id: nullableString,
  /** the Kubernetes pod the cgroup path names (its UID) */
  pod_uid: nullableString,
});

export const ChainedObservationSchema = v.strictObject({
  ...ObservationSchema.entries,
  raw_hash: hex64,
  // the first line of a keyed log names its chain format and key (src/chain/keys.ts)
  chain_format: v.optional(v.string()),
  chain_key_id: v.optional(v.string()),
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

/** A cgroup v2 by its path, and the container and pod the path names; null when unknown. */
export interface CgroupFacts {
  path: string | null;
  containerId: string | null;
  podUid: string | null;
}

/** What the record builder needs from the world, looked up by the caller (I/O stays at the edge). */
export interface ObservationContext {
  /** what is known of a probed library, by lib_id */
  library(libId: number): LibraryFacts;
  /** the process's executable (announced by the kernel); null when unknown */
  exe(pid: number): string | null;
  /** a cgroup v2 id resolved (cached): its path and what the path names, all null when it cannot be known */
  cgroup(id: number): CgroupFacts;
  /** the host's name and /etc/machine-id, read once at start (null when unknown or malformed) */
  host: string | null;
  machineId: string | null;
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
  // six digits: the leading 1 of 1,000,000 + µs dropped (cheaper than padStart)
  return `${secondPrefix}${String(1_000_000 + wallUs - second * 1_000_000).slice(1)}Z`;
}

/**
 * The record's canonical JSON (keys sorted, no raw_hash/chain: what raw_hash covers), as `canonicalJson` gives
 * it, without sorting anything: an object literal in sorted key order serializes to exactly that text. Costs
 * a quarter of the generic path per record (the tracer's busiest step); test/trace/observation.test.ts holds
 * it to `canonicalJson` for every key of the schema.
 */
export function canonicalObservation(o: Observation): string {
  return JSON.stringify({
    alpn: o.alpn,
    asset_id: o.asset_id,
    cgroup: o.cgroup,
    cipher: o.cipher,
    comm: o.comm,
    confidence: o.confidence,
    container_id: o.container_id,
    data_class: o.data_class,
    duration_us: o.duration_us,
    error: o.error,
    exe: o.exe,
    exposure: o.exposure,
    groups_offered: o.groups_offered,
    groups_source: o.groups_source,
    handshake_success: o.handshake_success,
    hello_retry: o.hello_retry,
    host: o.host,
    ja4: o.ja4,
    kex_class: o.kex_class,
    key_shares_offered: o.key_shares_offered,
    library: o.library,
    local_addr: o.local_addr,
    local_port: o.local_port,
    machine_id: o.machine_id,
    negotiated_group: o.negotiated_group,
    negotiated_group_id: o.negotiated_group_id,
    observed_by: o.observed_by,
    owner: o.owner,
    pid: o.pid,
    pod_uid: o.pod_uid,
    remote_addr: o.remote_addr,
    remote_port: o.remote_port,
    resumed: o.resumed,
    role: o.role,
    secrecy_lifetime_years: o.secrecy_lifetime_years,
    server_groups: o.server_groups,
    server_name: o.server_name,
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
