/**
 * CryptoBOM v2.1: the runtime observations with their asset context, one entry per handshake, plus the
 * distinct endpoints. Pure: records in, document out.
 */
import { createHash } from "node:crypto";
import * as v from "valibot";
import { canonicalJson } from "../chain/canonical.ts";
import { type GroupIndex, groupFacts, indexGroups } from "./algorithms.ts";
import type { AssetContext } from "./context.ts";
import type { HandshakeObservation } from "./observation.ts";

export const CRYPTOBOM_SCHEMA = "carnot.v2.1.cryptobom";

const nullableString = v.nullable(v.string());

export const CryptoBomObservationSchema = v.strictObject({
  bom_ref: v.pipe(v.string(), v.minLength(1)),
  source: v.string(),
  observation_time: v.nullable(v.pipe(v.string(), v.isoTimestamp())),
  asset_id: nullableString,
  owner: nullableString,
  data_class: nullableString,
  secrecy_lifetime_years: v.nullable(v.pipe(v.number(), v.minValue(0))),
  exposure: nullableString,
  process: nullableString,
  pid: v.nullable(v.pipe(v.number(), v.integer())),
  tid: v.nullable(v.pipe(v.number(), v.integer())),
  sni: nullableString,
  groups_offered: v.array(v.string()),
  group_selected: nullableString,
  kex_class: v.nullable(v.picklist(["classical", "hybrid-pq", "pq"])),
  tls_version: nullableString,
  cipher: nullableString,
  success: v.nullable(v.boolean()),
  confidence: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
});
export type CryptoBomObservation = v.InferOutput<typeof CryptoBomObservationSchema>;

export const CryptoBomComponentSchema = v.strictObject({
  bom_ref: v.string(),
  process: nullableString,
  sni: nullableString,
  group_selected: nullableString,
  kex_class: v.nullable(v.picklist(["classical", "hybrid-pq", "pq"])),
  tls_version: nullableString,
  cipher: nullableString,
  count: v.pipe(v.number(), v.integer(), v.minValue(1)),
  success_count: v.pipe(v.number(), v.integer(), v.minValue(0)),
  first_seen: v.nullable(v.string()),
  last_seen: v.nullable(v.string()),
});
export type CryptoBomComponent = v.InferOutput<typeof CryptoBomComponentSchema>;

/** Keys, tags and services known from static scans or cloud inventories (absent in a runtime-only BOM). */
export const AssetSchema = v.strictObject({
  asset_id: v.pipe(v.string(), v.minLength(1)),
  kind: v.picklist(["service", "domain", "key", "certificate"]),
  source: v.string(),
  name: v.optional(v.string()),
  domains: v.optional(v.array(v.pipe(v.string(), v.minLength(1)))),
  owner: v.optional(v.nullable(v.string())),
  data_class: v.optional(v.nullable(v.string())),
  secrecy_lifetime_years: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0)))),
  exposure: v.optional(v.nullable(v.string())),
  algorithm: v.optional(v.nullable(v.string())),
  key_size: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1)))),
  hash: v.optional(v.nullable(v.string())),
  tags: v.optional(v.record(v.string(), v.string())),
  // what a cloud inventory knows besides: the provider's own words, kept as it spells them
  region: v.optional(v.nullable(v.string())),
  spec: v.optional(v.nullable(v.string())),
  usage: v.optional(v.array(v.string())),
  origin: v.optional(v.nullable(v.string())),
  managed_by: v.optional(v.nullable(v.picklist(["customer", "provider"]))),
  state: v.optional(v.nullable(v.string())),
  rotation_enabled: v.optional(v.nullable(v.boolean())),
  rotation_period_days: v.optional(v.nullable(v.number())),
  aliases: v.optional(v.array(v.string())),
  not_before: v.optional(v.nullable(v.pipe(v.string(), v.isoTimestamp()))),
  not_after: v.optional(v.nullable(v.pipe(v.string(), v.isoTimestamp()))),
  signature_algorithm: v.optional(v.nullable(v.string())),
  in_use_by: v.optional(v.array(v.string())),
  /** defaults used for context no tag gave, one line each */
  assumptions: v.optional(v.array(v.string())),
});
export type Asset = v.InferOutput<typeof AssetSchema>;

export const ConflictSchema = v.strictObject({
  kind: v.picklist(["observation", "asset", "identity"]),
  ref: v.string(),
  field: v.string(),
  values: v.array(v.strictObject({ file: v.string(), value: v.unknown() })),
  resolution: v.string(),
});
export type Conflict = v.InferOutput<typeof ConflictSchema>;

export const MergeInfoSchema = v.strictObject({
  inputs: v.array(
    v.strictObject({
      file: v.string(),
      run_id: v.string(),
      observations: v.number(),
      assets: v.number(),
    }),
  ),
  duplicates_removed: v.number(),
  matched_by_asset_id: v.number(),
  matched_by_domain: v.number(),
  conflicts: v.array(ConflictSchema),
});
export type MergeInfo = v.InferOutput<typeof MergeInfoSchema>;

/** A region or service an inventory could not read (AccessDenied, throttled past its retries…). */
export const InventoryErrorSchema = v.strictObject({
  region: v.string(),
  service: v.string(),
  operation: v.string(),
  resource: v.nullable(v.string()),
  error: v.string(),
  message: v.string(),
});
export type InventoryError = v.InferOutput<typeof InventoryErrorSchema>;

/** How a cloud inventory was taken: where it looked, the defaults it applied and what it could not read. */
export const InventoryInfoSchema = v.strictObject({
  provider: v.string(),
  regions: v.array(v.string()),
  services: v.array(v.string()),
  defaults: v.record(v.string(), v.union([v.string(), v.number()])),
  keys: v.number(),
  certificates: v.number(),
  errors: v.array(InventoryErrorSchema),
});
export type InventoryInfo = v.InferOutput<typeof InventoryInfoSchema>;

/** The published top level; `assets` and `merge` appear only in merged documents, `inventory` in inventories. */
export const CryptoBomSchema = v.strictObject({
  schema: v.literal(CRYPTOBOM_SCHEMA),
  run_id: v.pipe(v.string(), v.minLength(1)),
  summary: v.strictObject({
    components: v.pipe(v.number(), v.integer(), v.minValue(0)),
    observations: v.pipe(v.number(), v.integer(), v.minValue(0)),
    unique_snis: v.pipe(v.number(), v.integer(), v.minValue(0)),
  }),
  observations: v.array(CryptoBomObservationSchema),
  metrics: v.strictObject({
    sni_counts: v.record(v.string(), v.number()),
    components: v.array(CryptoBomComponentSchema),
  }),
  assets: v.optional(v.array(AssetSchema)),
  merge: v.optional(MergeInfoSchema),
  inventory: v.optional(InventoryInfoSchema),
});
export type CryptoBom = v.InferOutput<typeof CryptoBomSchema>;

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** JSON with object keys sorted at every level (the hash chain's own): the same value gives the same bytes. */
export { canonicalJson };

/**
 * The record's identity: its chain `raw_hash` when the trace wrote one, else a hash of its canonical JSON
 * (hand-written or older files). Same record → same ref, in any file it is copied into.
 */
export function observationRef(record: HandshakeObservation): string {
  if (record.raw_hash) return `obs-${record.raw_hash.slice(0, 24)}`;
  const { raw_hash: _r, chain: _c, ...rest } = record;
  return `obs-${sha256(canonicalJson(rest)).slice(0, 24)}`;
}

function processName(record: HandshakeObservation): string | null {
  if (record.comm) return record.comm;
  if (record.exe) return record.exe.slice(record.exe.lastIndexOf("/") + 1) || null;
  return null;
}

/** One runtime record as a CryptoBOM observation, with the context filling what capture left null. */
export function toBomObservation(
  record: HandshakeObservation,
  context: AssetContext,
  bomRef: string,
  index: GroupIndex,
): CryptoBomObservation {
  // An older record may name the group without its class; the class of a known group is a fact, not a guess.
  const kexClass =
    record.kex_class ??
    (record.negotiated_group ? groupFacts(record.negotiated_group, index).kexClass : null);
  return {
    bom_ref: bomRef,
    source: record.source,
    observation_time: record.time,
    asset_id: record.asset_id ?? context.asset_id ?? null,
    owner: record.owner ?? context.owner ?? null,
    data_class: record.data_class ?? context.data_class ?? null,
    secrecy_lifetime_years: record.secrecy_lifetime_years ?? context.secrecy_lifetime_years ?? null,
    exposure: record.exposure ?? context.exposure ?? null,
    process: processName(record),
    pid: record.pid,
    tid: record.tid,
    // the name the client asked for: on a server's line only the wire knows it
    sni: record.sni ?? record.server_name,
    groups_offered: [...record.groups_offered],
    group_selected: record.negotiated_group,
    kex_class: kexClass,
    tls_version: record.tls_version,
    cipher: record.cipher,
    success: record.handshake_success,
    confidence: record.confidence,
  };
}

const compareNullable = (a: string | null, b: string | null): number =>
  a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1;

/** Distinct endpoints (process, SNI, group, version, cipher) with counts and first/last seen, sorted. */
export function summariseComponents(observations: readonly CryptoBomObservation[]): CryptoBomComponent[] {
  const byKey = new Map<string, CryptoBomComponent>();
  for (const o of observations) {
    const identity = [o.process, o.sni, o.group_selected, o.tls_version, o.cipher];
    const key = JSON.stringify(identity);
    const seen = byKey.get(key);
    const t = o.observation_time;
    if (!seen) {
      byKey.set(key, {
        bom_ref: `cmp-${sha256(key).slice(0, 16)}`,
        process: o.process,
        sni: o.sni,
        group_selected: o.group_selected,
        kex_class: o.kex_class,
        tls_version: o.tls_version,
        cipher: o.cipher,
        count: 1,
        success_count: o.success ? 1 : 0,
        first_seen: t,
        last_seen: t,
      });
      continue;
    }
    seen.count += 1;
    if (o.success) seen.success_count += 1;
    if (seen.kex_class === null) seen.kex_class = o.kex_class;
    if (t !== null && (seen.first_seen === null || t < seen.first_seen)) seen.first_seen = t;
    if (t !== null && (seen.last_seen === null || t > seen.last_seen)) seen.last_seen = t;
  }
  return [...byKey.values()].sort(
    (a, b) =>
      compareNullable(a.process, b.process) ||
      compareNullable(a.sni, b.sni) ||
      compareNullable(a.group_selected, b.group_selected) ||
      compareNullable(a.tls_version, b.tls_version) ||
      compareNullable(a.cipher, b.cipher),
  );
}

/** Count per SNI (connections without one are not counted here: `unique_snis` counts names). */
export function countSnis(observations: readonly CryptoBomObservation[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const o of observations) if (o.sni !== null) counts.set(o.sni, (counts.get(o.sni) ?? 0) + 1);
  return Object.fromEntries([...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Observations in a stable order: time, then ref (refs are unique). */
export function sortObservations(observations: CryptoBomObservation[]): CryptoBomObservation[] {
  return observations.sort(
    (a, b) =>
      compareNullable(a.observation_time, b.observation_time) ||
      (a.bom_ref < b.bom_ref ? -1 : a.bom_ref > b.bom_ref ? 1 : 0),
  );
}

/** Assembles the document around observations (already unique by bom_ref). */
export function assembleCryptoBom(
  runId: string,
  observations: CryptoBomObservation[],
  extra: { assets?: Asset[]; merge?: MergeInfo; inventory?: InventoryInfo } = {},
): CryptoBom {
  const sorted = sortObservations(observations);
  const components = summariseComponents(sorted);
  const sniCounts = countSnis(sorted);
  const bom: CryptoBom = {
    schema: CRYPTOBOM_SCHEMA,
    run_id: runId,
    summary: {
      components: components.length,
      observations: sorted.length,
      unique_snis: Object.keys(sniCounts).length,
    },
    observations: sorted,
    metrics: { sni_counts: sniCounts, components },
  };
  if (extra.assets) bom.assets = extra.assets;
  if (extra.merge) bom.merge = extra.merge;
  if (extra.inventory) bom.inventory = extra.inventory;
  return bom;
}

/**
 * Runtime records → CryptoBOM. `run_id` is derived from the records themselves, so the same input always
 * gives the same document. Two identical records (same identity) get distinct refs by their position.
 */
export function buildCryptoBom(
  records: readonly HandshakeObservation[],
  context: AssetContext,
  index: GroupIndex = indexGroups(),
): CryptoBom {
  const used = new Map<string, number>();
  const observations = records.map((record) => {
    const base = observationRef(record);
    const n = used.get(base) ?? 0;
    used.set(base, n + 1);
    return toBomObservation(record, context, n === 0 ? base : `${base}-${n + 1}`, index);
  });
  const runId = `run-${sha256(observations.map((o) => o.bom_ref).join("\n")).slice(0, 16)}`;
  return assembleCryptoBom(runId, observations);
}
