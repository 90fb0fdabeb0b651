/**
 * Static, runtime and cloud CryptoBOMs into one. Identical observations (same bom_ref) are kept once,
 * observations are tied to assets by explicit asset id or by SNI ↔ domain, and every disagreement is
 * reported as a conflict with how it was resolved. Pure: documents in, document out.
 */
import { createHash } from "node:crypto";
import {
  type Asset,
  assembleCryptoBom,
  type CryptoBom,
  type CryptoBomObservation,
  canonicalJson,
  type Conflict,
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

function mergeAssets(inputs: readonly MergeInput[], conflicts: Conflict[]): Map<string, AssetEntry> {
  const byId = new Map<string, AssetEntry>();
  for (const { file, bom } of inputs) {
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
  return byId;
}

/** Merges BOMs; inputs keep their order (the first occurrence of a record or an asset value wins). */
export function mergeBoms(inputs: readonly MergeInput[]): CryptoBom {
  const conflicts: Conflict[] = [];
  const assets = mergeAssets(inputs, conflicts);
  const assetList = [...assets.values()].map((e) => e.asset);

  const observations = new Map<string, { obs: CryptoBomObservation; file: string; text: string }>();
  let duplicates = 0;
  for (const { file, bom } of inputs) {
    for (const o of bom.observations) {
      const text = canonicalJson(o);
      const seen = observations.get(o.bom_ref);
      if (!seen) {
        observations.set(o.bom_ref, { obs: structuredClone(o), file, text });
        continue;
      }
      duplicates++;
      if (seen.text === text) continue;
      for (const key of Object.keys(o) as (keyof CryptoBomObservation)[]) {
        if (canonicalJson(seen.obs[key]) === canonicalJson(o[key])) continue;
        conflicts.push({
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
  }

  let byId = 0;
  let byDomain = 0;
  for (const { obs, file } of observations.values()) {
    let entry: AssetEntry | undefined;
    if (obs.asset_id !== null) {
      entry = assets.get(obs.asset_id);
      if (entry) byId++;
    } else if (obs.sni !== null) {
      const { asset, ambiguous } = assetForSni(obs.sni, assetList);
      if (ambiguous.length) {
        conflicts.push({
          kind: "identity",
          ref: obs.bom_ref,
          field: "asset_id",
          values: ambiguous.map((a) => ({ file: assets.get(a.asset_id)?.file ?? "", value: a.asset_id })),
          resolution: `not matched: SNI ${obs.sni} matches these assets equally well`,
        });
      } else if (asset) {
        entry = assets.get(asset.asset_id);
        obs.asset_id = asset.asset_id;
        byDomain++;
      }
    }
    if (!entry) continue;
    for (const field of CONTEXT_FIELDS) {
      const fromAsset = entry.asset[field];
      if (fromAsset === undefined || fromAsset === null) continue;
      const current = obs[field];
      if (current === null) {
        (obs as Record<string, unknown>)[field] = fromAsset;
      } else if (current !== fromAsset) {
        conflicts.push({
          kind: "identity",
          ref: obs.bom_ref,
          field,
          values: [
            { file, value: current },
            { file: entry.file, value: fromAsset },
          ],
          resolution: `kept the observation's value (asset ${entry.asset.asset_id} says otherwise)`,
        });
      }
    }
  }

  // Conflicts carried over from inputs that were themselves merged are kept, after this merge's own.
  const carried = inputs.flatMap((i) => i.bom.merge?.conflicts ?? []);
  const merge: MergeInfo = {
    inputs: inputs.map(({ file, bom }) => ({
      file,
      run_id: bom.run_id,
      observations: bom.observations.length,
      assets: bom.assets?.length ?? 0,
    })),
    duplicates_removed: duplicates,
    matched_by_asset_id: byId,
    matched_by_domain: byDomain,
    conflicts: [...conflicts, ...carried],
  };
  const runIds = inputs.map((i) => i.bom.run_id).sort();
  const runId = `merge-${createHash("sha256").update(runIds.join("\n")).digest("hex").slice(0, 16)}`;
  const sortedAssets = assetList.sort((a, b) =>
    a.asset_id < b.asset_id ? -1 : a.asset_id > b.asset_id ? 1 : 0,
  );
  return assembleCryptoBom(
    runId,
    [...observations.values()].map((e) => e.obs),
    { assets: sortedAssets, merge },
  );
}
