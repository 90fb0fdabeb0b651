import * as v from "valibot";

/** Socket details of an fd: from `-yy` annotations, `socket()` arguments and sockaddr structs. */
export const NetSchema = v.strictObject({
  family: v.nullable(v.string()),
  protocol: v.nullable(v.string()),
  local_addr: v.nullable(v.string()),
  local_port: v.nullable(v.pipe(v.number(), v.integer())),
  remote_addr: v.nullable(v.string()),
  remote_port: v.nullable(v.pipe(v.number(), v.integer())),
});

const int = v.pipe(v.number(), v.integer());
const nullableInt = v.nullable(int);

/**
 * One EnhancedEvent (see shared/specs/enhanced-event.md). Key order is the spec's order, plus `errno`
 * after `retval` and the writer's `chain` at the end (optional here: the writer adds it), after
 * `chain_format` and `chain_key_id` on the first line of a keyed log (src/chain/writer.ts).
 */
export const EnhancedEventSchema = v.strictObject({
  ts: v.pipe(int, v.minValue(0)),
  pid: int,
  tid: nullableInt,
  ppid: nullableInt,
  call: v.pipe(v.string(), v.minLength(1)),
  args: v.pipe(v.array(v.nullable(v.number())), v.length(6)),
  retval: nullableInt,
  errno: v.nullable(v.string()),
  raw_line: v.string(),
  raw_hash: v.nullable(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
  exe_path: v.nullable(v.string()),
  cwd: v.nullable(v.string()),
  uid: nullableInt,
  gid: nullableInt,
  euid: nullableInt,
  egid: nullableInt,
  caps: nullableInt,
  fd: nullableInt,
  abs_path: v.nullable(v.string()),
  resource_type: v.nullable(v.string()),
  operation: v.nullable(v.string()),
  perm_bits: nullableInt,
  byte_count: nullableInt,
  net: v.nullable(NetSchema),
  latency_us: v.nullable(v.pipe(int, v.minValue(0))),
  risk_tags: v.array(v.string()),
  high_level_kind: v.nullable(v.string()),
  chain_format: v.optional(v.literal("carnot.chain.v2")),
  chain_key_id: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/))),
  chain: v.optional(v.string()),
});

export type EnhancedEvent = v.InferOutput<typeof EnhancedEventSchema>;
export type Net = v.InferOutput<typeof NetSchema>;

/** The key order every record is serialised in. */
export const ENHANCED_EVENT_KEYS = Object.keys(EnhancedEventSchema.entries) as (keyof EnhancedEvent)[];
