/**
 * Static, runtime and cloud CryptoBOMs into one. Identical observations (same bom_ref) are kept once,
 * observations are tied to assets by explicit asset id or by SNI ↔ domain, and every disagreement is
 * reported as a conflict with how it was resolved. Fleet documents (components as the unit) add their
 * components up; past `maxObservations` the listed observations are counted into components too, so memory
 * follows the components. Pure: documents in, document out.
 */
import { createHash } from "node:crypto";
import {
  type Asset,
  assembleCryptoBom,
  ComponentTable,
  type CryptoBom,
  type CryptoBomComponent,
  type CryptoBomObservation,
  canonicalJson,
  type Conflict,
  type FleetInfo,
  fleetCounts,
  listsObservations,
  type MergeInfo,
} from "../bom/cryptobom.ts";

export interface MergeInput {
  /** How the input is named in conflicts and in `merge.inputs` (its path). */
  readonly file: string;
  readonly bom: CryptoBom;
}

export type DomainMatch = "exact" | "wildcard" | "suffix";

const normaliseHost = (name: string): string => name.trim().toLowerCase().replace(/\.$/, "");

/**
 * Whether an SNI belongs to a domain: `api.example.org` is `exact` for `api.example.org`, `wildcard` for
 * `*.example.org` (one label, as in RFC 6125), `suffix` for `example.org` (at a dot boundary, so
 * `badexample.org` never matches `example.org`).
 */
export function matchDomain(sni: string, pattern: string): DomainMatch | null {
  const host = normaliseHost(sni);
  const p = normaliseHost(pattern);
  if (host === "" || p === "") return null;
  if (p.startsWith("*.")) {
    const base = p.slice(2);
    if (!host.endsWith(`.${base}`)) return null;
    const label = host.slice(0, host.length - base.length - 1);
    return label !== "" && !label.includes(".") ? "wildcard" : null;
  }
  if (host === p) return "exact";
  return host.endsWith(`.${p}`) ? "suffix" : null;
}

const RANK: Record<DomainMatch, number> = { exact: 3, wildcard: 2, suffix: 1 };

interface Candidate {
  asset: Asset;
  rank: number;
  length: number;
}

/** The most specific identity asset (service/domain) for an SNI; ambiguous when two differ at the top. */
export function assetForSni(
  sni: string,
  assets: readonly Asset[],
): { asset: Asset | null; ambiguous: Asset[] } {
  const candidates: Candidate[] = [];
  for (const asset of assets) {
    if (asset.kind !== "service" && asset.kind !== "domain") continue;
    let best: Candidate | null = null;
    for (const d of asset.domains ?? []) {
      const m = matchDomain(sni, d);
      if (!m) continue;
      const c = { asset, rank: RANK[m], length: d.length };
      if (!best || c.rank > best.rank || (c.rank === best.rank && c.length > best.length)) best = c;
    }
    if (best) candidates.push(best);
  }
  candidates.sort((a, b) => b.rank - a.rank || b.length - a.length);
  const top = candidates[0];
  if (!top) return { asset: null, ambiguous: [] };
  const tied = candidates.filter((c) => c.rank === top.rank && c.length === top.length);
  return tied.length > 1
    ? { asset: null, ambiguous: tied.map((c) => c.asset) }
    : { asset: top.asset, ambiguous: [] };
}

const CONTEXT_FIELDS = ["owner", "data_class", "secrecy_lifetime_years", "exposure"] as const;
const ASSET_FIELDS = [
  "kind",
  "name",
  "owner",
  "data_class",
  "secrecy_lifetime_years",
  "exposure",
  "algorithm",
  "key_size",
  "hash",
  "region",
  "spec",
  "origin",
  "managed_by",
  "state",
  "rotation_enabled",
  "rotation_period_days",
  "not_before",
  "not_after",
  "signature_algorithm",
] as const;
/** List fields: what every source saw, together. */
const ASSET_LISTS = ["domains", "usage", "aliases", "in_use_by", "assumptions"] as const;

interface AssetEntry {
  asset: Asset;
  file: string;
}

/** Adds one input's assets to `byId`: the first value of a field wins, disagreements are conflicts. */
function mergeAssets(byId: Map<string, AssetEntry>, { file, bom }: MergeInput, conflicts: Conflict[]): void {
  for (const incoming of bom.assets ?? []) {
    const seen = byId.get(incoming.asset_id);
    if (!seen) {
      byId.set(incoming.asset_id, { asset: structuredClone(incoming), file });
      continue;
    }
    const kept = seen.asset;
    // Seen by several sources is not a disagreement: the sources are listed together.
    kept.source = [...new Set([...kept.source.split(","), incoming.source])].join(",");
    for (const field of ASSET_FIELDS) {
      const a = kept[field];
      const b = incoming[field];
      if (b === undefined || b === null) continue;
      if (a === undefined || a === null) {
        (kept as Record<string, unknown>)[field] = b;
      } else if (a !== b) {
        conflicts.push({
          kind: "asset",
          ref: kept.asset_id,
          field,
          values: [
            { file: seen.file, value: a },
            { file, value: b },
          ],
          resolution: `kept the value from ${seen.file}`,
        });
      }
    }
    for (const list of ASSET_LISTS) {
      const more = incoming[list];
      if (more) kept[list] = [...new Set([...(kept[list] ?? []), ...more])].sort();
    }
    if (incoming.tags) {
      const tags = { ...(kept.tags ?? {}) };
      for (const [k, val] of Object.entries(incoming.tags)) {
        const current = tags[k];
        if (current !== undefined && current !== val) {
          conflicts.push({
            kind: "asset",
            ref: kept.asset_id,
            field: `tags.${k}`,
            values: [
              { file: seen.file, value: current },
              { file, value: val },
            ],
            resolution: `kept the value from ${seen.file}`,
          });
        } else tags[k] = val;
      }
      kept.tags = tags;
    }
  }
}

/** What identity matching reads and fills: an observation, or a fleet document's component. */
type Identified = Pick<CryptoBomObservation, "bom_ref" | "asset_id" | "sni"> &
  Partial<Pick<CryptoBomObservation, (typeof CONTEXT_FIELDS)[number]>>;

export interface MergeOptions {
  /** list observations while there are at most this many; past it, components only (default: no limit) */
  maxObservations?: number;
}

/** Merges BOMs added one at a time, in priority order (the first occurrence of a record or an asset value wins). */
export class BomMerger {
  /** by kind, in the order they are reported: assets, observations, identity, then those carried over */
  private readonly conflicts = {
    asset: [] as Conflict[],
    observation: [] as Conflict[],
    identity: [] as Conflict[],
    carried: [] as Conflict[],
  };
  private readonly assets = new Map<string, AssetEntry>();
  /** listed observations by ref; null once they were counted into `table` */
  private observations: Map<string, { obs: CryptoBomObservation; file: string; text: string }> | null =
    new Map();
  private readonly table = new ComponentTable();
  private readonly fleetRuns = new Set<string>();
  private readonly inputs: MergeInfo["inputs"] = [];
  private fleetInputs: FleetInfo["inputs"] | null = null;
  private duplicates = 0;
  private readonly maxObservations: number;

  constructor(options: MergeOptions = {}) {
    this.maxObservations = options.maxObservations ?? Number.POSITIVE_INFINITY;
  }

  add(input: MergeInput): void {
    const { file, bom } = input;
    const listed = listsObservations(bom);
    this.inputs.push({
      file,
      run_id: bom.run_id,
      observations: listed ? bom.observations.length : bom.summary.observations,
      assets: bom.assets?.length ?? 0,
    });
    mergeAssets(this.assets, input, this.conflicts.asset);
    // Conflicts carried over from inputs that were themselves merged are kept, after this merge's own.
    for (const c of bom.merge?.conflicts ?? []) this.conflicts.carried.push(c);
    if (bom.fleet) {
      this.fleetInputs ??= [];
      for (const i of bom.fleet.inputs) this.fleetInputs.push(i);
    }
    if (!listed) {
      // a fleet document has no refs to tell a repeated observation: a repeated document is told by its run
      if (this.fleetRuns.has(bom.run_id)) {
        this.duplicates += bom.summary.observations;
        return;
      }
      this.fleetRuns.add(bom.run_id);
      for (const c of bom.metrics.components) this.table.addComponent(c);
      this.countListed();
      return;
    }
    for (const o of bom.observations) this.addObservation(o, file);
    if (this.observations !== null && this.observations.size > this.maxObservations) this.countListed();
  }

  private addObservation(o: CryptoBomObservation, file: string): void {
    if (this.observations === null) {
      this.table.addObservation(o, file, null);
      return;
    }
    const text = canonicalJson(o);
    const seen = this.observations.get(o.bom_ref);
    if (!seen) {
      this.observations.set(o.bom_ref, { obs: structuredClone(o), file, text });
      return;
    }
    this.duplicates++;
    if (seen.text === text) return;
    for (const key of Object.keys(o) as (keyof CryptoBomObservation)[]) {
      if (canonicalJson(seen.obs[key]) === canonicalJson(o[key])) continue;
      this.conflicts.observation.push({
        kind: "observation",
        ref: o.bom_ref,
        field: key,
        values: [
          { file: seen.file, value: seen.obs[key] },
          { file, value: o[key] },
        ],
        resolution: `kept the value from ${seen.file}`,
      });
    }
  }

  /** From now on the document omits its observations: those listed so far are counted into components. */
  private countListed(): void {
    if (this.observations === null) return;
    for (const { obs, file } of this.observations.values()) this.table.addObservation(obs, file, null);
    this.observations = null;
  }

  finish(): CryptoBom {
    const assetList = [...this.assets.values()].map((e) => e.asset);
    const matched = { byId: 0, byDomain: 0 };
    const identify = (x: Identified, file: string, weight: number): void => {
      const how = this.identify(x, file, assetList);
      if (how === "id") matched.byId += weight;
      else if (how === "domain") matched.byDomain += weight;
    };
    let observations: CryptoBomObservation[] = [];
    let components: CryptoBomComponent[] | undefined;
    if (this.observations !== null) {
      for (const { obs, file } of this.observations.values()) identify(obs, file, 1);
      observations = [...this.observations.values()].map((e) => e.obs);
    } else {
      // context filled from assets is part of a component's identity: equal ones are counted together again
      const identified = new ComponentTable();
      for (const c of this.table.components()) {
        identify(c as Identified & CryptoBomComponent, c.first_record?.file ?? "", c.count);
        identified.addComponent(c);
      }
      components = identified.components();
    }
    const merge: MergeInfo = {
      inputs: this.inputs,
      duplicates_removed: this.duplicates,
      matched_by_asset_id: matched.byId,
      matched_by_domain: matched.byDomain,
      conflicts: [
        ...this.conflicts.asset,
        ...this.conflicts.observation,
        ...this.conflicts.identity,
        ...this.conflicts.carried,
      ],
    };
    const runIds = this.inputs.map((i) => i.run_id).sort();
    const runId = `merge-${createHash("sha256").update(runIds.join("\n")).digest("hex").slice(0, 16)}`;
    const sortedAssets = assetList.sort((a, b) =>
      a.asset_id < b.asset_id ? -1 : a.asset_id > b.asset_id ? 1 : 0,
    );
    const bom = assembleCryptoBom(runId, observations, { assets: sortedAssets, merge, components });
    if (this.fleetInputs === null && components === undefined) return bom;
    const max = Number.isFinite(this.maxObservations) ? this.maxObservations : null;
    bom.fleet = {
      observations_listed: components === undefined,
      max_observations: max,
      ...fleetCounts(bom.metrics.components),
      inputs: this.fleetInputs ?? [],
    };
    return bom;
  }

  /** Ties a record to its asset (explicit id, else SNI ↔ domain) and fills its context from the asset. */
  private identify(x: Identified, file: string, assetList: readonly Asset[]): "id" | "domain" | null {
    let entry: AssetEntry | undefined;
    let how: "id" | "domain" | null = null;
    if (x.asset_id !== null) {
      entry = this.assets.get(x.asset_id);
      if (entry) how = "id";
    } else if (x.sni !== null) {
      const { asset, ambiguous } = assetForSni(x.sni, assetList);
      if (ambiguous.length) {
        this.conflicts.identity.push({
          kind: "identity",
          ref: x.bom_ref,
          field: "asset_id",
          values: ambiguous.map((a) => ({
            file: this.assets.get(a.asset_id)?.file ?? "",
            value: a.asset_id,
          })),
          resolution: `not matched: SNI ${x.sni} matches these assets equally well`,
        });
      } else if (asset) {
        entry = this.assets.get(asset.asset_id);
        x.asset_id = asset.asset_id;
        how = "domain";
      }
    }
    if (!entry) return how;
    for (const field of CONTEXT_FIELDS) {
      const fromAsset = entry.asset[field];
      if (fromAsset === undefined || fromAsset === null) continue;
      const current = x[field] ?? null;
      if (current === null) {
        (x as Record<string, unknown>)[field] = fromAsset;
      } else if (current !== fromAsset) {
        this.conflicts.identity.push({
          kind: "identity",
          ref: x.bom_ref,
          field,
          values: [
            { file, value: current },
            { file: entry.file, value: fromAsset },
          ],
          resolution: `kept the observation's value (asset ${entry.asset.asset_id} says otherwise)`,
        });
      }
    }
    return how;
  }
}

/** Merges BOMs; inputs keep their order (the first occurrence of a record or an asset value wins). */
export function mergeBoms(inputs: readonly MergeInput[], options: MergeOptions = {}): CryptoBom {
  const merger = new BomMerger(options);
  for (const input of inputs) merger.add(input);
  return merger.finish();
}
