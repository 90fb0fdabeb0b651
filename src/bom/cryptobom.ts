/**
 * CryptoBOM v2.1: the runtime observations with their asset context, one entry per handshake, plus the
 * distinct components (endpoints with their counts). A fleet document omits the observations: its
 * components are the unit (README "Fleet-wide BOM"). Pure: records in, document out.
 */
import { createHash } from "node:crypto";
import * as v from "valibot";
import { canonicalJson } from "../chain/canonical.ts";
import { type GroupIndex, groupFacts, indexGroups } from "./algorithms.ts";
import type { AssetContext } from "./context.ts";
import { FLEET_KEYS, type HandshakeObservation } from "./observation.ts";

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
  // present when the trace record carried them (null when the agent could not tell)
  host: v.optional(nullableString),
  machine_id: v.optional(nullableString),
  cgroup: v.optional(nullableString),
  container_id: v.optional(nullableString),
  pod_uid: v.optional(nullableString),
});
export type CryptoBomObservation = v.InferOutput<typeof CryptoBomObservationSchema>;

const count = v.pipe(v.number(), v.integer(), v.minValue(0));

/** The first observation of a component, in input order: where to read one of its records. */
export const FirstRecordSchema = v.strictObject({
  bom_ref: v.string(),
  file: nullableString,
  line: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1))),
});
export type FirstRecord = v.InferOutput<typeof FirstRecordSchema>;

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
  // the rest of a component's identity and where its first record is (absent in documents written before)
  failed_count: v.optional(count),
  groups_offered: v.optional(v.array(v.string())),
  asset_id: v.optional(nullableString),
  owner: v.optional(nullableString),
  data_class: v.optional(nullableString),
  secrecy_lifetime_years: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0)))),
  exposure: v.optional(nullableString),
  host: v.optional(nullableString),
  machine_id: v.optional(nullableString),
  cgroup: v.optional(nullableString),
  container_id: v.optional(nullableString),
  pod_uid: v.optional(nullableString),
  first_record: v.optional(FirstRecordSchema),
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

/** What a document made from many inputs, or from more observations than it lists, says about itself. */
export const FleetInfoSchema = v.strictObject({
  /** false: `observations` is empty and the components are the unit (their counts stand for the handshakes) */
  observations_listed: v.boolean(),
  /** the most observations the document would list (`bom --max-observations`); null: no limit */
  max_observations: v.nullable(count),
  hosts: count,
  containers: count,
  /** every runtime file read, in the order read */
  inputs: v.array(v.strictObject({ file: v.string(), records: count, seal_lines: count })),
});
export type FleetInfo = v.InferOutput<typeof FleetInfoSchema>;

/**
 * The published top level; `assets` and `merge` appear only in merged documents, `inventory` in inventories,
 * `fleet` in documents made from several inputs or that omit their observations.
 */
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
  fleet: v.optional(FleetInfoSchema),
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
  const observation: CryptoBomObservation = {
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
  // the fleet keys follow the record: one written before they existed gets none
  if (hasFleetKeys(record)) for (const key of FLEET_KEYS) observation[key] = record[key] ?? null;
  return observation;
}

function hasFleetKeys(record: HandshakeObservation): boolean {
  for (const key of FLEET_KEYS) if (record[key] !== undefined) return true;
  return false;
}

const compareNullable = (a: string | null, b: string | null): number =>
  a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1;

/** What makes two handshakes one component: every field a later stage reads (policy, HNDL, risk, merge). */
export interface ComponentFields {
  process: string | null;
  sni: string | null;
  group_selected: string | null;
  kex_class: "classical" | "hybrid-pq" | "pq" | null;
  tls_version: string | null;
  cipher: string | null;
  groups_offered?: readonly string[];
  asset_id?: string | null;
  owner?: string | null;
  data_class?: string | null;
  secrecy_lifetime_years?: number | null;
  exposure?: string | null;
  host?: string | null;
  machine_id?: string | null;
  cgroup?: string | null;
  container_id?: string | null;
  pod_uid?: string | null;
}

/**
 * A component's identity as text. It includes the year (UTC) of its handshakes: whether traffic is exposed
 * to "harvest now, decrypt later" depends on that year, so a component never spans two.
 */
function componentKey(f: ComponentFields, time: string | null): string {
  return JSON.stringify([
    f.process,
    f.sni,
    f.group_selected,
    f.kex_class,
    f.tls_version,
    f.cipher,
    f.groups_offered ?? [],
    f.asset_id ?? null,
    f.owner ?? null,
    f.data_class ?? null,
    f.secrecy_lifetime_years ?? null,
    f.exposure ?? null,
    f.host ?? null,
    f.machine_id ?? null,
    f.cgroup ?? null,
    f.container_id ?? null,
    f.pod_uid ?? null,
    time === null ? null : time.slice(0, 4),
  ]);
}

/**
 * The components of a document that omits its observations (a fleet document), with counts and first/last
 * seen: memory follows the number of components, not of the observations added. Each carries every field a
 * later stage reads, so its count stands for its observations; components of other such documents add up the
 * same way (associative).
 */
export class ComponentTable {
  /** by a key that is cheap to build but not unique: a bucket's components differ in other fields */
  private readonly buckets = new Map<string, CryptoBomComponent[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** `file` and `line` say where the observation is read from (null: a document in memory). */
  addObservation(o: CryptoBomObservation, file: string | null, line: number | null): void {
    const t = o.observation_time;
    const seen = this.find(o, t);
    if (!seen) {
      this.insert({
        bom_ref: "",
        process: o.process,
        sni: o.sni,
        group_selected: o.group_selected,
        kex_class: o.kex_class,
        tls_version: o.tls_version,
        cipher: o.cipher,
        count: 1,
        success_count: o.success === true ? 1 : 0,
        first_seen: t,
        last_seen: t,
        failed_count: o.success === false ? 1 : 0,
        groups_offered: [...o.groups_offered],
        asset_id: o.asset_id,
        owner: o.owner,
        data_class: o.data_class,
        secrecy_lifetime_years: o.secrecy_lifetime_years,
        exposure: o.exposure,
        host: o.host ?? null,
        machine_id: o.machine_id ?? null,
        cgroup: o.cgroup ?? null,
        container_id: o.container_id ?? null,
        pod_uid: o.pod_uid ?? null,
        first_record: { bom_ref: o.bom_ref, file, line },
      });
      return;
    }
    seen.count += 1;
    if (o.success === true) seen.success_count += 1;
    else if (o.success === false) seen.failed_count = (seen.failed_count ?? 0) + 1;
    widenSeen(seen, t, t);
  }

  /** A component of another document (or another part of this one); added after this table's own. */
  addComponent(c: CryptoBomComponent): void {
    const seen = this.find(c, c.first_seen);
    if (!seen) {
      this.insert({ ...c, bom_ref: "", groups_offered: [...(c.groups_offered ?? [])] });
      return;
    }
    seen.count += c.count;
    seen.success_count += c.success_count;
    seen.failed_count = (seen.failed_count ?? 0) + (c.failed_count ?? 0);
    widenSeen(seen, c.first_seen, c.last_seen);
  }

  /** The components with their refs, in a stable order (endpoint first, then the rest of the identity). */
  components(): CryptoBomComponent[] {
    const entries: [string, CryptoBomComponent][] = [];
    for (const bucket of this.buckets.values())
      for (const c of bucket) entries.push([componentKey(c, c.first_seen), c]);
    entries.sort(
      ([ka, a], [kb, b]) =>
        compareNullable(a.process, b.process) ||
        compareNullable(a.sni, b.sni) ||
        compareNullable(a.group_selected, b.group_selected) ||
        compareNullable(a.tls_version, b.tls_version) ||
        compareNullable(a.cipher, b.cipher) ||
        (ka < kb ? -1 : ka > kb ? 1 : 0),
    );
    return entries.map(([key, c]) => ({ ...c, bom_ref: `cmp-${sha256(key).slice(0, 16)}` }));
  }

  private find(f: ComponentFields, time: string | null): CryptoBomComponent | undefined {
    const bucket = this.buckets.get(bucketKey(f));
    if (bucket) for (const c of bucket) if (sameComponent(c, f, time)) return c;
    return undefined;
  }

  private insert(c: CryptoBomComponent): void {
    const key = bucketKey(c);
    const bucket = this.buckets.get(key);
    if (bucket) bucket.push(c);
    else this.buckets.set(key, [c]);
    this.count++;
  }
}

/** A few fields of the identity in one string (ambiguous when a value holds NUL: sameComponent decides). */
const bucketKey = (f: ComponentFields): string => `${f.process}\0${f.sni}\0${f.host}`;

/** componentKey(c) === componentKey(f), compared field by field (what building the key would cost per record). */
function sameComponent(c: CryptoBomComponent, f: ComponentFields, time: string | null): boolean {
  return (
    c.process === f.process &&
    c.sni === f.sni &&
    c.group_selected === f.group_selected &&
    c.kex_class === f.kex_class &&
    c.tls_version === f.tls_version &&
    c.cipher === f.cipher &&
    (c.asset_id ?? null) === (f.asset_id ?? null) &&
    (c.owner ?? null) === (f.owner ?? null) &&
    (c.data_class ?? null) === (f.data_class ?? null) &&
    (c.secrecy_lifetime_years ?? null) === (f.secrecy_lifetime_years ?? null) &&
    (c.exposure ?? null) === (f.exposure ?? null) &&
    (c.host ?? null) === (f.host ?? null) &&
    (c.machine_id ?? null) === (f.machine_id ?? null) &&
    (c.cgroup ?? null) === (f.cgroup ?? null) &&
    (c.container_id ?? null) === (f.container_id ?? null) &&
    (c.pod_uid ?? null) === (f.pod_uid ?? null) &&
    sameYear(c.first_seen, time) &&
    sameList(c.groups_offered ?? [], f.groups_offered ?? [])
  );
}

/** The same first four characters (the year of an RFC 3339 time), or both null; no string is made. */
function sameYear(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  for (let i = 0; i < 4; i++) if (a.charCodeAt(i) !== b.charCodeAt(i)) return false;
  return true;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function widenSeen(c: CryptoBomComponent, first: string | null, last: string | null): void {
  if (first !== null && (c.first_seen === null || first < c.first_seen)) c.first_seen = first;
  if (last !== null && (c.last_seen === null || last > c.last_seen)) c.last_seen = last;
}

/**
 * The components of a document that lists its observations: distinct endpoints (process, SNI, group, version,
 * cipher, and where the records name them, host and container) with counts and first/last seen, sorted. The
 * observations stay the unit there; a document that omits them counts with a ComponentTable instead.
 */
export function summariseComponents(observations: readonly CryptoBomObservation[]): CryptoBomComponent[] {
  const byKey = new Map<string, CryptoBomComponent>();
  for (const o of observations) {
    const identity: (string | null)[] = [o.process, o.sni, o.group_selected, o.tls_version, o.cipher];
    const fleet = FLEET_KEYS.filter((k) => o[k] !== undefined);
    // only records that carried them: a document of older records keeps its components and their refs
    for (const k of fleet) identity.push(k, o[k] ?? null);
    const key = JSON.stringify(identity);
    const seen = byKey.get(key);
    const t = o.observation_time;
    if (!seen) {
      const component: CryptoBomComponent = {
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
      };
      for (const k of fleet) component[k] = o[k] ?? null;
      byKey.set(key, component);
      continue;
    }
    seen.count += 1;
    if (o.success) seen.success_count += 1;
    if (seen.kex_class === null) seen.kex_class = o.kex_class;
    widenSeen(seen, t, t);
  }
  return [...byKey.values()].sort(
    (a, b) =>
      compareNullable(a.process, b.process) ||
      compareNullable(a.sni, b.sni) ||
      compareNullable(a.group_selected, b.group_selected) ||
      compareNullable(a.tls_version, b.tls_version) ||
      compareNullable(a.cipher, b.cipher) ||
      FLEET_KEYS.reduce((r, k) => r || compareNullable(a[k] ?? null, b[k] ?? null), 0),
  );
}

/** Count per SNI (connections without one are not counted here: `unique_snis` counts names). */
export function countSnis(components: readonly CryptoBomComponent[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const c of components) if (c.sni !== null) counts.set(c.sni, (counts.get(c.sni) ?? 0) + c.count);
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

/** Hosts and containers named by components (a component without one names none). */
export function fleetCounts(components: readonly CryptoBomComponent[]): {
  hosts: number;
  containers: number;
} {
  const hosts = new Set<string>();
  const containers = new Set<string>();
  for (const c of components) {
    if (c.host) hosts.add(c.machine_id ? `${c.host}\n${c.machine_id}` : c.host);
    if (c.container_id) containers.add(c.container_id);
  }
  return { hosts: hosts.size, containers: containers.size };
}

export interface AssembleExtra {
  assets?: Asset[];
  merge?: MergeInfo;
  inventory?: InventoryInfo;
  fleet?: FleetInfo;
  /** the components when they were counted elsewhere (a fleet document: `observations` is then empty) */
  components?: CryptoBomComponent[];
}

/** Assembles the document around observations (already unique by bom_ref), or around counted components. */
export function assembleCryptoBom(
  runId: string,
  observations: CryptoBomObservation[],
  extra: AssembleExtra = {},
): CryptoBom {
  const sorted = sortObservations(observations);
  const components = extra.components ?? summariseComponents(sorted);
  const sniCounts = countSnis(components);
  const bom: CryptoBom = {
    schema: CRYPTOBOM_SCHEMA,
    run_id: runId,
    summary: {
      components: components.length,
      observations: components.reduce((n, c) => n + c.count, 0),
      unique_snis: Object.keys(sniCounts).length,
    },
    observations: sorted,
    metrics: { sni_counts: sniCounts, components },
  };
  if (extra.assets) bom.assets = extra.assets;
  if (extra.merge) bom.merge = extra.merge;
  if (extra.inventory) bom.inventory = extra.inventory;
  if (extra.fleet) bom.fleet = extra.fleet;
  return bom;
}

/** True unless the document omits its observations (a fleet document: its components are the unit). */
export const listsObservations = (bom: CryptoBom): boolean => bom.fleet?.observations_listed !== false;

/** The same record in two places keeps one ref; a second identical record gets `-2`, a third `-3`, … */
export class RefAllocator {
  private readonly used = new Map<string, number>();
  next(base: string): string {
    const n = this.used.get(base) ?? 0;
    this.used.set(base, n + 1);
    return n === 0 ? base : `${base}-${n + 1}`;
  }
}

/** `run-` and the digest of the records' refs in input order: the same input always gives the same run id. */
export const runIdOf = (digestHex: string): string => `run-${digestHex.slice(0, 16)}`;

/**
 * Runtime records → CryptoBOM listing every observation. `run_id` is derived from the records themselves,
 * so the same input always gives the same document. Two identical records get distinct refs by position.
 */
export function buildCryptoBom(
  records: readonly HandshakeObservation[],
  context: AssetContext,
  index: GroupIndex = indexGroups(),
): CryptoBom {
  const refs = new RefAllocator();
  const bases = records.map(observationRef);
  const observations = records.map((record, i) =>
    toBomObservation(record, context, refs.next(bases[i]!), index),
  );
  return assembleCryptoBom(runIdOf(sha256(bases.join("\n"))), observations);
}
