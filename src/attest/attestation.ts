/** The attestation: metrics, HNDL exposure, policy status and risk, built from one CryptoBOM. Pure. */
import * as v from "valibot";
import type { CryptoBom } from "../bom/cryptobom.ts";
import { bomUnits } from "../bom/units.ts";
import { type PolicyResult, SEVERITIES } from "../policy/rules.ts";
import { HNDL_DEFINITION, type HndlParameters, summariseHndl } from "./hndl.ts";
import { scoreAssets } from "./risk.ts";

export const ATTESTATION_SCHEMA = "carnot.attestation.v1";

const count = v.pipe(v.number(), v.integer(), v.minValue(0));

export const SignatureSchema = v.strictObject({
  algorithm: v.literal("Ed25519"),
  key_id: v.string(),
  public_key: v.string(),
  signed_files: v.record(v.string(), v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
  value: v.string(),
});

export const AttestationSchema = v.strictObject({
  schema: v.literal(ATTESTATION_SCHEMA),
  subject: v.strictObject({
    file: v.string(),
    sha256: v.string(),
    run_id: v.string(),
    /** several BOMs merged into the subject: each with its own digest (`sha256` is that of this listing) */
    inputs: v.optional(v.array(v.strictObject({ file: v.string(), sha256: v.string() }))),
  }),
  parameters: v.strictObject({
    crqc_year: v.number(),
    crqc_year_source: v.string(),
    migration_years: v.number(),
    as_of_year: v.number(),
    hndl_definition: v.string(),
  }),
  metrics: v.strictObject({
    observations: count,
    handshakes_successful: count,
    handshakes_failed: count,
    classical: count,
    hybrid_pq: count,
    pq: count,
    unknown_kex: count,
    unique_snis: count,
    processes: count,
    assets: count,
    long_secrecy: count,
    hndl_exposed: count,
    hndl_exposed_percent: v.number(),
  }),
  hndl: v.strictObject({
    handshakes: count,
    long_secrecy: count,
    other_secrecy: count,
    unknown_secrecy: count,
    hndl_exposed: count,
    protected: count,
    classical_short: count,
    unknown_kex: count,
    exposed_records: v.array(v.string()),
  }),
  sankey: v.strictObject({
    nodes: v.array(v.strictObject({ id: v.string(), label: v.string(), column: v.number(), value: count })),
    links: v.array(v.strictObject({ source: v.string(), target: v.string(), value: count })),
  }),
  policy: v.strictObject({
    source: v.string(),
    status: v.picklist(["pass", "violations"]),
    findings: count,
    by_severity: v.strictObject({ critical: count, high: count, medium: count, low: count }),
    rules: v.array(
      v.strictObject({ id: v.string(), severity: v.string(), title: v.string(), findings: count }),
    ),
    top_findings: v.array(v.strictObject({ rule_id: v.string(), severity: v.string(), message: v.string() })),
  }),
  risk: v.strictObject({
    by_severity: v.strictObject({ CRITICAL: count, HIGH: count, MEDIUM: count, LOW: count }),
    assets: v.array(
      v.strictObject({
        asset: v.string(),
        kind: v.picklist(["asset", "endpoint"]),
        algorithm_class: v.picklist(["RSA-2048", "ECC-P256", "HYBRID_PQC", "PQC_NIST", "UNKNOWN"]),
        algorithm_risk: v.number(),
        standards_status: v.picklist(["PROHIBITED", "NON_COMPLIANT", "COMPLIANT"]),
        standards_gap: v.number(),
        exposure: v.picklist(["PUBLIC_INTERNET", "EXTERNAL_B2B", "INTERNAL"]),
        exposure_weight: v.number(),
        secrecy_lifetime_years: v.number(),
        lifetime_weight: v.number(),
        score: v.number(),
        severity: v.picklist(["CRITICAL", "HIGH", "MEDIUM", "LOW"]),
        observations: count,
        worst_record: v.string(),
        assumptions: v.array(v.string()),
      }),
    ),
  }),
  signature: v.optional(SignatureSchema),
});
export type Attestation = v.InferOutput<typeof AttestationSchema>;

export interface AttestationInput {
  bom: CryptoBom;
  file: string;
  sha256: string;
  inputs?: { file: string; sha256: string }[];
  policy: PolicyResult;
  policySource: string;
  parameters: HndlParameters;
}

/** The year the assessment speaks for: the newest observation's, else the caller's clock. */
export function defaultAsOfYear(bom: CryptoBom, nowYear: number): number {
  let newest: number | null = null;
  for (const { last_seen } of bomUnits(bom)) {
    const year = last_seen === null ? Number.NaN : Number.parseInt(last_seen.slice(0, 4), 10);
    if (Number.isFinite(year) && (newest === null || year > newest)) newest = year;
  }
  return newest ?? nowYear;
}

export function buildAttestation(input: AttestationInput): Attestation {
  const { bom, policy, parameters } = input;
  const units = bomUnits(bom);
  const { summary, sankey } = summariseHndl(units, parameters);
  const sum = (weight: (u: (typeof units)[number]) => number) => units.reduce((n, u) => n + weight(u), 0);
  const kex = (k: string | null) => sum((u) => (u.kex_class === k ? u.success_count : 0));
  const risks = scoreAssets(bom);
  const riskBySeverity = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 };
  for (const r of risks) riskBySeverity[r.severity]++;
  return {
    schema: ATTESTATION_SCHEMA,
    subject: {
      file: input.file,
      sha256: input.sha256,
      run_id: bom.run_id,
      ...(input.inputs ? { inputs: input.inputs } : {}),
    },
    parameters: {
      crqc_year: parameters.crqcYear,
      crqc_year_source: parameters.crqcSource,
      migration_years: parameters.migrationYears,
      as_of_year: parameters.asOfYear,
      hndl_definition: HNDL_DEFINITION,
    },
    metrics: {
      observations: sum((u) => u.count),
      handshakes_successful: sum((u) => u.success_count),
      handshakes_failed: sum((u) => u.failed_count),
      classical: kex("classical"),
      hybrid_pq: kex("hybrid-pq"),
      pq: kex("pq"),
      unknown_kex: kex(null),
      unique_snis: bom.summary.unique_snis,
      processes: new Set(units.map((o) => o.process).filter((p) => p !== null)).size,
      assets: bom.assets?.length ?? 0,
      long_secrecy: summary.long_secrecy,
      hndl_exposed: summary.hndl_exposed,
      // One decimal, computed once here so every report shows the same figure.
      hndl_exposed_percent: summary.handshakes
        ? Math.round((summary.hndl_exposed / summary.handshakes) * 1000) / 10
        : 0,
    },
    hndl: summary,
    sankey,
    policy: {
      source: input.policySource,
      status: policy.status,
      findings: policy.summary.findings,
      by_severity: policy.summary.by_severity,
      rules: policy.rules.map((r) => ({
        id: r.id,
        severity: r.severity,
        title: r.title,
        findings: r.findings,
      })),
      top_findings: [...policy.findings]
        .sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity))
        .slice(0, 20)
        .map((f) => ({ rule_id: f.rule_id, severity: f.severity, message: f.message })),
    },
    risk: { by_severity: riskBySeverity, assets: risks },
  };
}
