/** The runtime record `carnot trace` writes (shared/specs/handshake-observation.md), as `bom` reads it. */
import * as v from "valibot";

const nullableString = v.optional(v.nullable(v.string()), null);
const nullableInt = v.optional(v.nullable(v.pipe(v.number(), v.integer())), null);

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
  raw_hash: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{16,128}$/))),
  chain: v.optional(v.string()),
});

export type HandshakeObservation = v.InferOutput<typeof HandshakeObservationSchema>;

/** A valibot failure as "field 'x': message", the shape every input error of this stage uses. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const first = issues[0];
  if (!first) return "invalid";
  const path = v.getDotPath(first);
  return path ? `field '${path}': ${first.message}` : first.message;
}
