/** The runtime record `carnot trace` writes (shared/specs/handshake-observation.md), as `bom` reads it. */
import * as v from "valibot";

const nullableString = v.optional(v.nullable(v.string()), null);
const nullableInt = v.optional(v.nullable(v.pipe(v.number(), v.integer())), null);
const RAW_HASH = /^[0-9a-f]{16,128}$/;
// absent stays absent (undefined): a record written before these keys existed says nothing about them
const fleetString = v.optional(v.nullable(v.string()));

/** Where a handshake happened, beyond the process: keys a fleet agent adds to every record (null when unknown). */
export const FLEET_KEYS = ["host", "machine_id", "cgroup", "container_id", "pod_uid"] as const;
export type FleetKey = (typeof FLEET_KEYS)[number];

/** One line of runtime.jsonl. Keys added after the published schema may be absent in older files. */
export const HandshakeObservationSchema = v.looseObject({
  source: v.string(),
  asset_id: v.nullable(v.string()),
  owner: v.nullable(v.string()),
  data_class: v.nullable(v.string()),
  secrecy_lifetime_years: v.nullable(v.pipe(v.number(), v.minValue(0))),
  exposure: v.nullable(v.string()),
  sni: v.nullable(v.string()),
  groups_offered: v.array(v.string()),
  // null from the wire alone: an outcome the bytes cannot prove, an owner never seen, no SSL*
  handshake_success: v.nullable(v.boolean()),
  pid: v.nullable(v.pipe(v.number(), v.integer())),
  tid: v.nullable(v.pipe(v.number(), v.integer())),
  ssl_ptr: v.nullable(v.string()),
  time: v.pipe(v.string(), v.isoTimestamp()),
  confidence: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
  role: v.optional(v.nullable(v.picklist(["client", "server"])), null),
  negotiated_group: nullableString,
  negotiated_group_id: nullableInt,
  kex_class: v.optional(v.nullable(v.picklist(["classical", "hybrid-pq", "pq"])), null),
  tls_version: nullableString,
  cipher: nullableString,
  groups_source: v.optional(
    v.nullable(v.picklist(["connection", "context", "library-default", "client-hello"])),
    null,
  ),
  comm: nullableString,
  exe: nullableString,
  library: nullableString,
  duration_us: nullableInt,
  error: nullableString,
  // added with the wire source
  server_name: nullableString,
  // added for fleets: the host and the container or pod of the process
  host: fleetString,
  machine_id: fleetString,
  cgroup: fleetString,
  container_id: fleetString,
  pod_uid: fleetString,
  raw_hash: v.optional(v.pipe(v.string(), v.regex(RAW_HASH))),
  chain: v.optional(v.string()),
});

export type HandshakeObservation = v.InferOutput<typeof HandshakeObservationSchema>;

const isText = (x: unknown): boolean => x === null || typeof x === "string";
const isOptionalText = (x: unknown): boolean => x === undefined || x === null || typeof x === "string";
const isInt = (x: unknown): boolean => x === null || Number.isInteger(x);

const isGroupsSource = (x: unknown): boolean =>
  x === null || x === "connection" || x === "context" || x === "library-default" || x === "client-hello";

function isStringArray(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (const s of x) if (typeof s !== "string") return false;
  return true;
}

/**
 * True only for a value HandshakeObservationSchema accepts and returns unchanged (every key with a default
 * present: each check below refuses undefined): what `carnot trace` writes, checked in a fraction of the
 * schema's time (the schema costs about as much as JSON.parse per line, measured in WORKLOG.md). Anything
 * else goes through the schema, which fills defaults and words the error. test/bom/observation.test.ts holds
 * the two to the same verdicts.
 */
export function isCompleteObservation(x: unknown): x is HandshakeObservation {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const o = x as Record<string, unknown>;
  const years = o.secrecy_lifetime_years;
  const confidence = o.confidence;
  return (
    typeof o.source === "string" &&
    isText(o.asset_id) &&
    isText(o.owner) &&
    isText(o.data_class) &&
    (years === null || (typeof years === "number" && years >= 0)) &&
    isText(o.exposure) &&
    isText(o.sni) &&
    isStringArray(o.groups_offered) &&
    (o.handshake_success === null || typeof o.handshake_success === "boolean") &&
    isInt(o.pid) &&
    isInt(o.tid) &&
    isText(o.ssl_ptr) &&
    typeof o.time === "string" &&
    v.ISO_TIMESTAMP_REGEX.test(o.time) &&
    typeof confidence === "number" &&
    confidence >= 0 &&
    confidence <= 1 &&
    (o.role === null || o.role === "client" || o.role === "server") &&
    isText(o.negotiated_group) &&
    isInt(o.negotiated_group_id) &&
    (o.kex_class === null ||
      o.kex_class === "classical" ||
      o.kex_class === "hybrid-pq" ||
      o.kex_class === "pq") &&
    isText(o.tls_version) &&
    isText(o.cipher) &&
    isGroupsSource(o.groups_source) &&
    isText(o.comm) &&
    isText(o.exe) &&
    isText(o.library) &&
    isInt(o.duration_us) &&
    isText(o.error) &&
    isText(o.server_name) &&
    isOptionalText(o.host) &&
    isOptionalText(o.machine_id) &&
    isOptionalText(o.cgroup) &&
    isOptionalText(o.container_id) &&
    isOptionalText(o.pod_uid) &&
    (o.raw_hash === undefined || (typeof o.raw_hash === "string" && RAW_HASH.test(o.raw_hash))) &&
    (o.chain === undefined || typeof o.chain === "string")
  );
}

/** A valibot failure as "field 'x': message", the shape every input error of this stage uses. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const first = issues[0];
  if (!first) return "invalid";
  const path = v.getDotPath(first);
  return path ? `field '${path}': ${first.message}` : first.message;
}
