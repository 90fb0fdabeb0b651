/**
 * Built-in post-quantum policy: each rule reads fields `bom`/`merge` really write (observations from the
 * trace, assets from static and cloud inventories) and yields findings that name the offending records.
 * Pure: a CryptoBOM in, a result out.
 */
import { createHash } from "node:crypto";
import * as v from "valibot";
import {
  cipherSuiteFacts,
  type GroupIndex,
  groupFacts,
  indexGroups,
  tlsVersionNumber,
} from "../bom/algorithms.ts";
import type { Asset, CryptoBom } from "../bom/cryptobom.ts";
import { type BomUnit, bomUnits } from "../bom/units.ts";

export const POLICY_SCHEMA = "carnot.policy.v1";
export const SEVERITIES = ["critical", "high", "medium", "low"] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface RuleDefinition {
  readonly id: string;
  readonly severity: Severity;
  readonly title: string;
  readonly description: string;
  readonly remediation: string;
}

export const RULES: readonly RuleDefinition[] = [
  {
    id: "missing_hybrid_support",
    severity: "medium",
    title: "Classical key exchange",
    description:
      "A successful handshake negotiated a classical key exchange: recorded traffic can be decrypted once a " +
      "cryptographically relevant quantum computer exists (harvest now, decrypt later).",
    remediation:
      "Offer and prefer a hybrid group (X25519MLKEM768) on both sides: OpenSSL ≥ 3.5 sends it by default; " +
      "for nginx set `ssl_ecdh_curve X25519MLKEM768:X25519;`.",
  },
  {
    id: "legacy_group",
    severity: "high",
    title: "Legacy key-exchange group",
    description:
      "A finite-field group below 3072 bits or an elliptic curve below 256 bits was negotiated, or offered in " +
      "preference to the negotiated group (or with no negotiated group known).",
    remediation:
      "Remove the group from the groups list (e.g. `-groups X25519MLKEM768:X25519:secp256r1`); use ffdhe3072 or " +
      "larger only where elliptic curves are unavailable.",
  },
  {
    id: "legacy_tls_version",
    severity: "high",
    title: "TLS below 1.2",
    description: "The handshake used SSL 3, TLS 1.0 or TLS 1.1 (deprecated by RFC 8996).",
    remediation:
      "Set the minimum protocol version to TLS 1.2 (`MinProtocol = TLSv1.2`, nginx `ssl_protocols TLSv1.2 TLSv1.3;`).",
  },
  {
    id: "rsa_min_key_size",
    severity: "high",
    title: "RSA key below 3072 bits",
    description:
      "An RSA key shorter than 3072 bits (NIST SP 800-57 for protection beyond 2030); key sizes are known for " +
      "certificates and keys from static scans and cloud inventories, not from a runtime trace.",
    remediation:
      "Re-issue the key with RSA-3072 or larger, or move to ECDSA P-256/Ed25519 now and ML-DSA later.",
  },
  {
    id: "legacy_hash_function",
    severity: "high",
    title: "SHA-1 or MD5 in use",
    description: "A cipher suite's MAC/PRF hash or a certificate/key's hash is SHA-1 or MD5.",
    remediation:
      "Use AEAD suites with SHA-256 or SHA-384 (TLS 1.3 suites, or TLS 1.2 *_GCM_SHA256/384) and re-sign " +
      "certificates with SHA-256.",
  },
  {
    id: "untagged_cloud_key",
    severity: "low",
    title: "Cloud key without tags",
    description:
      "A key from a cloud inventory carries no tags, so nobody can tell its owner, data or migration plan.",
    remediation: "Tag the key with at least owner and data_class in the cloud provider's key service.",
  },
];

const SubjectSchema = v.strictObject({
  kind: v.picklist(["observations", "asset"]),
  ref: v.string(),
  process: v.nullable(v.string()),
  sni: v.nullable(v.string()),
  detail: v.string(),
});

export const FindingSchema = v.strictObject({
  id: v.string(),
  rule_id: v.string(),
  severity: v.picklist(SEVERITIES),
  message: v.string(),
  subject: SubjectSchema,
  records: v.array(v.string()),
  count: v.number(),
});
export type Finding = v.InferOutput<typeof FindingSchema>;

const severityCounts = v.strictObject({
  critical: v.number(),
  high: v.number(),
  medium: v.number(),
  low: v.number(),
});

export const PolicyResultSchema = v.strictObject({
  schema: v.literal(POLICY_SCHEMA),
  input: v.string(),
  run_id: v.string(),
  status: v.picklist(["pass", "violations"]),
  enforce: v.boolean(),
  summary: v.strictObject({
    findings: v.number(),
    records: v.number(),
    observations_checked: v.number(),
    assets_checked: v.number(),
    by_severity: severityCounts,
  }),
  rules: v.array(
    v.strictObject({
      id: v.string(),
      severity: v.picklist(SEVERITIES),
      title: v.string(),
      remediation: v.string(),
      findings: v.number(),
      records: v.number(),
    }),
  ),
  findings: v.array(FindingSchema),
});
export type PolicyResult = v.InferOutput<typeof PolicyResultSchema>;

const LEGACY_HASHES = new Set(["SHA1", "MD5"]);
/** `SHA-1`, `sha1`, `sha1WithRSAEncryption`, `MD5` → `SHA1` / `MD5`; others → null. */
export function legacyHashName(name: string): string | null {
  const m = /^(sha-?1|md5)(?![0-9])/i.exec(name.trim());
  const n = m?.[1]?.toUpperCase().replace("-", "");
  return n && LEGACY_HASHES.has(n) ? n : null;
}

/** Why a group is legacy, or null. Unknown groups are not judged. */
export function legacyGroupReason(name: string, index: GroupIndex): string | null {
  const g = groupFacts(name, index);
  if (g.family === "ffdh" && g.bits !== null && g.bits < 3072) return `${g.name}: ${g.bits}-bit finite field`;
  if (g.family === "ecdh" && g.bits !== null && g.bits < 256) return `${g.name}: ${g.bits}-bit curve`;
  return null;
}

interface Hit {
  rule: RuleDefinition;
  key: string;
  subject: Finding["subject"];
  record: string;
  /** how many handshakes the record stands for (an observation: 1; a fleet document's component: its count) */
  weight: number;
  host: string | null;
  message: string;
}

const ruleById = (id: string): RuleDefinition => RULES.find((r) => r.id === id)!;

function endpoint(o: BomUnit): string {
  return `${o.process ?? "(unknown process)"} → ${o.sni ?? "(no SNI)"}`;
}

function observationHits(o: BomUnit, index: GroupIndex): Hit[] {
  const hits: Hit[] = [];
  const hit = (ruleId: string, detail: string, message: string, weight = o.count): void => {
    const subject = { kind: "observations" as const, ref: "", process: o.process, sni: o.sni, detail };
    const key = JSON.stringify([ruleId, o.process, o.sni, detail]);
    hits.push({
      rule: ruleById(ruleId),
      key,
      subject,
      record: o.bom_ref,
      weight,
      host: o.host ?? null,
      message,
    });
  };
  if (o.success_count > 0 && o.kex_class === "classical") {
    const group = o.group_selected ?? "a classical group";
    const message = `${endpoint(o)} negotiated ${group} (classical key exchange)`;
    hit("missing_hybrid_support", group, message, o.success_count);
  }
  if (o.group_selected !== null) {
    const reason = legacyGroupReason(o.group_selected, index);
    if (reason) hit("legacy_group", `negotiated ${o.group_selected}`, `${endpoint(o)} negotiated ${reason}`);
  }
  // Offered groups count when they rank before the negotiated one (the endpoint prefers them) or when the
  // negotiated group is unknown; a weak group after it in a library's default list was never at stake.
  const selectedRank = o.group_selected === null ? -1 : o.groups_offered.indexOf(o.group_selected);
  const offeredLegacy = o.groups_offered
    .filter((g, i) => g !== o.group_selected && (o.group_selected === null || i < selectedRank))
    .map((g) => legacyGroupReason(g, index))
    .filter((r): r is string => r !== null);
  if (offeredLegacy.length) {
    const names = offeredLegacy.map((r) => r.split(":")[0]).join(", ");
    hit("legacy_group", `offered ${names}`, `${endpoint(o)} offers ${offeredLegacy.join("; ")}`);
  }
  if (o.tls_version !== null) {
    const n = tlsVersionNumber(o.tls_version);
    if (n !== null && n < 1.2)
      hit("legacy_tls_version", o.tls_version, `${endpoint(o)} used ${o.tls_version}`);
  }
  if (o.cipher !== null) {
    const hash = cipherSuiteFacts(o.cipher).hash;
    if (hash && legacyHashName(hash.name)) {
      hit("legacy_hash_function", o.cipher, `${endpoint(o)} used ${o.cipher} (${hash.name})`);
    }
  }
  return hits;
}

function assetHits(a: Asset): Hit[] {
  const hits: Hit[] = [];
  const hit = (ruleId: string, detail: string, message: string): void => {
    const subject = { kind: "asset" as const, ref: a.asset_id, process: null, sni: null, detail };
    hits.push({
      rule: ruleById(ruleId),
      key: JSON.stringify([ruleId, a.asset_id]),
      subject,
      record: a.asset_id,
      weight: 1,
      host: null,
      message,
    });
  };
  const label = `${a.kind} ${a.asset_id}`;
  if (a.algorithm && /^RSA/i.test(a.algorithm) && typeof a.key_size === "number" && a.key_size < 3072) {
    hit("rsa_min_key_size", `RSA-${a.key_size}`, `${label} is RSA-${a.key_size}`);
  }
  if (a.hash && legacyHashName(a.hash)) hit("legacy_hash_function", a.hash, `${label} uses ${a.hash}`);
  const fromCloud = a.source.split(",").some((s) => s.startsWith("cloud"));
  // a key the provider manages (AWS managed KMS keys) cannot be tagged by its account: nothing to fix there
  const taggable = a.managed_by !== "provider";
  if (a.kind === "key" && fromCloud && taggable && Object.keys(a.tags ?? {}).length === 0) {
    hit("untagged_cloud_key", "no tags", `${label} has no tags`);
  }
  return hits;
}

const emptyCounts = (): Record<Severity, number> => ({ critical: 0, high: 0, medium: 0, low: 0 });

/**
 * Applies every rule; findings group the records of one rule and one endpoint (or asset). In a document that
 * omits its observations the records are components, and a finding counts the handshakes they stand for.
 */
export function evaluatePolicy(
  bom: CryptoBom,
  options: { input: string; enforce: boolean },
  index: GroupIndex = indexGroups(),
): PolicyResult {
  const units = bomUnits(bom);
  const hits = [...units.flatMap((o) => observationHits(o, index)), ...(bom.assets ?? []).flatMap(assetHits)];
  const grouped = new Map<string, { first: Hit; records: string[]; count: number; hosts: Set<string> }>();
  for (const h of hits) {
    let g = grouped.get(h.key);
    if (!g) {
      g = { first: h, records: [], count: 0, hosts: new Set() };
      grouped.set(h.key, g);
    }
    g.records.push(h.record);
    g.count += h.weight;
    if (h.host !== null) g.hosts.add(h.host);
  }
  const ruleOrder = new Map(RULES.map((r, i) => [r.id, i]));
  const findings: Finding[] = [...grouped.entries()].map(([key, { first, records, count, hosts }]) => {
    const id = `f-${createHash("sha256").update(key).digest("hex").slice(0, 12)}`;
    const subject = { ...first.subject, ref: first.subject.kind === "asset" ? first.subject.ref : id };
    const onHosts = hosts.size > 1 ? ` on ${hosts.size} hosts` : "";
    const message = count > 1 ? `${first.message} (${count} handshakes${onHosts})` : first.message;
    return { id, rule_id: first.rule.id, severity: first.rule.severity, message, subject, records, count };
  });
  findings.sort(
    (a, b) =>
      SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) ||
      ruleOrder.get(a.rule_id)! - ruleOrder.get(b.rule_id)! ||
      (a.message < b.message ? -1 : a.message > b.message ? 1 : 0),
  );
  const bySeverity = emptyCounts();
  for (const f of findings) bySeverity[f.severity]++;
  // a record's handshakes with any finding: every rule counts all of a record's handshakes, or its
  // successful ones (a subset), so their union is the largest of the record's weights
  const flagged = new Map<string, number>();
  for (const h of hits) flagged.set(h.record, Math.max(flagged.get(h.record) ?? 0, h.weight));
  let records = 0;
  for (const weight of flagged.values()) records += weight;
  return {
    schema: POLICY_SCHEMA,
    input: options.input,
    run_id: bom.run_id,
    status: findings.length ? "violations" : "pass",
    enforce: options.enforce,
    summary: {
      findings: findings.length,
      records,
      observations_checked: units.reduce((n, u) => n + u.count, 0),
      assets_checked: bom.assets?.length ?? 0,
      by_severity: bySeverity,
    },
    rules: RULES.map((r) => {
      const own = findings.filter((f) => f.rule_id === r.id);
      return {
        id: r.id,
        severity: r.severity,
        title: r.title,
        remediation: r.remediation,
        findings: own.length,
        records: own.reduce((n, f) => n + f.count, 0),
      };
    }),
    findings,
  };
}
