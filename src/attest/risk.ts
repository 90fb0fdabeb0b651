/**
 * Per-asset risk score, with the weights of the tool these records come from:
 *   score = (algorithm_risk + standards_gap) × exposure_weight × lifetime_weight
 *   severity: > 500 CRITICAL, ≥ 250 HIGH, ≥ 50 MEDIUM, else LOW.
 * An asset's score is its worst observation's (or its own, for keys and certificates).
 */
import {
  cipherSuiteFacts,
  type GroupIndex,
  groupFacts,
  indexGroups,
  tlsVersionNumber,
} from "../bom/algorithms.ts";
import type { Asset, CryptoBom } from "../bom/cryptobom.ts";
import { type BomUnit, bomUnits } from "../bom/units.ts";
import { legacyGroupReason, legacyHashName } from "../policy/rules.ts";

export const ALGORITHM_RISK = {
  "RSA-2048": 8,
  "ECC-P256": 6,
  HYBRID_PQC: 3,
  PQC_NIST: 0,
  UNKNOWN: 5,
} as const;
export type AlgorithmClass = keyof typeof ALGORITHM_RISK;
export const STANDARDS_GAP = { PROHIBITED: 5, NON_COMPLIANT: 3, COMPLIANT: 0 } as const;
export type StandardsStatus = keyof typeof STANDARDS_GAP;
export const EXPOSURE_WEIGHT = { PUBLIC_INTERNET: 5, EXTERNAL_B2B: 3, INTERNAL: 1 } as const;
export type ExposureClass = keyof typeof EXPOSURE_WEIGHT;
export type RiskSeverity = "CRITICAL" | "HIGH" | "MEDIUM" | "LOW";

export function lifetimeWeight(years: number): number {
  if (years > 30) return 10;
  if (years > 10) return 5;
  if (years >= 1) return 2;
  return 1;
}

export function riskSeverity(score: number): RiskSeverity {
  if (score > 500) return "CRITICAL";
  if (score >= 250) return "HIGH";
  if (score >= 50) return "MEDIUM";
  return "LOW";
}

export interface RiskInput {
  algorithmClass: AlgorithmClass;
  standardsStatus: StandardsStatus;
  exposure: ExposureClass;
  lifetimeYears: number;
}

export function riskScore(input: RiskInput): { score: number; severity: RiskSeverity } {
  const score =
    (ALGORITHM_RISK[input.algorithmClass] + STANDARDS_GAP[input.standardsStatus]) *
    EXPOSURE_WEIGHT[input.exposure] *
    lifetimeWeight(input.lifetimeYears);
  return { score, severity: riskSeverity(score) };
}

/**
 * Unknown context is not guessed silently: an asset nobody classified is scored as public-facing
 * (the worst exposure) with a 1-year secrecy, and the assumption is listed next to its score.
 */
export const ASSUMED_EXPOSURE: ExposureClass = "PUBLIC_INTERNET";
export const ASSUMED_LIFETIME_YEARS = 1;

function observationClass(o: BomUnit, index: GroupIndex): AlgorithmClass {
  if (o.kex_class === "pq") return "PQC_NIST";
  if (o.kex_class === "hybrid-pq") return "HYBRID_PQC";
  if (o.kex_class === "classical") {
    const family = o.group_selected ? groupFacts(o.group_selected, index).family : "unknown";
    const kx = o.cipher ? cipherSuiteFacts(o.cipher).keyExchange : null;
    // Finite-field DH and RSA key transport fall to the same attack cost class as RSA.
    if (family === "ffdh" || kx === "RSA" || kx?.startsWith("DHE")) return "RSA-2048";
    return "ECC-P256";
  }
  return "UNKNOWN";
}

function observationStatus(o: BomUnit, cls: AlgorithmClass, index: GroupIndex): StandardsStatus {
  const v = o.tls_version ? tlsVersionNumber(o.tls_version) : null;
  const hash = o.cipher ? cipherSuiteFacts(o.cipher).hash : null;
  const legacy =
    (v !== null && v < 1.2) ||
    (o.group_selected !== null && legacyGroupReason(o.group_selected, index) !== null) ||
    (hash !== null && legacyHashName(hash.name) !== null);
  if (legacy) return "PROHIBITED";
  return cls === "PQC_NIST" || cls === "HYBRID_PQC" ? "COMPLIANT" : "NON_COMPLIANT";
}

function assetClass(a: Asset): AlgorithmClass {
  const alg = (a.algorithm ?? "").toUpperCase();
  if (/ML-?KEM|ML-?DSA|SLH-?DSA/.test(alg))
    return /X25519|P256|P384|ECDH|HYBRID/.test(alg) ? "HYBRID_PQC" : "PQC_NIST";
  if (alg.startsWith("RSA") || alg.startsWith("DH")) return "RSA-2048";
  if (/EC|P-?256|P-?384|ED25519|X25519|SECP/.test(alg)) return "ECC-P256";
  return "UNKNOWN";
}

function assetStatus(a: Asset, cls: AlgorithmClass): StandardsStatus {
  const weakRsa = cls === "RSA-2048" && typeof a.key_size === "number" && a.key_size < 2048;
  if (weakRsa || (a.hash && legacyHashName(a.hash))) return "PROHIBITED";
  return cls === "PQC_NIST" || cls === "HYBRID_PQC" ? "COMPLIANT" : "NON_COMPLIANT";
}

const isExposure = (x: string | null | undefined): x is ExposureClass =>
  x === "PUBLIC_INTERNET" || x === "EXTERNAL_B2B" || x === "INTERNAL";

export interface AssetRisk {
  asset: string;
  kind: "asset" | "endpoint";
  algorithm_class: AlgorithmClass;
  algorithm_risk: number;
  standards_status: StandardsStatus;
  standards_gap: number;
  exposure: ExposureClass;
  exposure_weight: number;
  secrecy_lifetime_years: number;
  lifetime_weight: number;
  score: number;
  severity: RiskSeverity;
  observations: number;
  worst_record: string;
  assumptions: string[];
}

function scored(
  asset: string,
  kind: AssetRisk["kind"],
  cls: AlgorithmClass,
  status: StandardsStatus,
  exposure: string | null | undefined,
  years: number | null | undefined,
  record: string,
): AssetRisk {
  const assumptions: string[] = [];
  const exp = isExposure(exposure) ? exposure : ASSUMED_EXPOSURE;
  if (!isExposure(exposure)) assumptions.push(`exposure unknown: scored as ${ASSUMED_EXPOSURE}`);
  const life = typeof years === "number" ? years : ASSUMED_LIFETIME_YEARS;
  if (typeof years !== "number")
    assumptions.push(`secrecy lifetime unknown: scored as ${ASSUMED_LIFETIME_YEARS} year`);
  const { score, severity } = riskScore({
    algorithmClass: cls,
    standardsStatus: status,
    exposure: exp,
    lifetimeYears: life,
  });
  return {
    asset,
    kind,
    algorithm_class: cls,
    algorithm_risk: ALGORITHM_RISK[cls],
    standards_status: status,
    standards_gap: STANDARDS_GAP[status],
    exposure: exp,
    exposure_weight: EXPOSURE_WEIGHT[exp],
    secrecy_lifetime_years: life,
    lifetime_weight: lifetimeWeight(life),
    score,
    severity,
    observations: 1,
    worst_record: record,
    assumptions,
  };
}

/**
 * Scores every asset: observations grouped by asset_id (else by endpoint), plus inventoried keys/certs. A
 * fleet document's component counts as many observations as it stands for.
 */
export function scoreAssets(bom: CryptoBom, index: GroupIndex = indexGroups()): AssetRisk[] {
  const byAsset = new Map<string, AssetRisk>();
  for (const o of bomUnits(bom)) {
    // what did not fail: successful, or an outcome the trace could not prove
    const weight = o.count - o.failed_count;
    if (weight === 0) continue;
    const name = o.asset_id ?? `${o.process ?? "(unknown process)"} → ${o.sni ?? "(no SNI)"}`;
    const cls = observationClass(o, index);
    const r = scored(
      name,
      o.asset_id ? "asset" : "endpoint",
      cls,
      observationStatus(o, cls, index),
      o.exposure,
      o.secrecy_lifetime_years,
      o.bom_ref,
    );
    const seen = byAsset.get(name);
    if (!seen) byAsset.set(name, { ...r, observations: weight });
    else if (r.score > seen.score) byAsset.set(name, { ...r, observations: seen.observations + weight });
    else seen.observations += weight;
  }
  for (const a of bom.assets ?? []) {
    if (a.kind !== "key" && a.kind !== "certificate") continue;
    const cls = assetClass(a);
    byAsset.set(a.asset_id, {
      ...scored(
        a.asset_id,
        "asset",
        cls,
        assetStatus(a, cls),
        a.exposure,
        a.secrecy_lifetime_years,
        a.asset_id,
      ),
      observations: 0,
    });
  }
  return [...byAsset.values()].sort(
    (a, b) => b.score - a.score || (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0),
  );
}
