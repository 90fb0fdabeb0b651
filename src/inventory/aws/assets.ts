/**
 * What the AWS inventory read (KMS keys, ACM certificates) as CryptoBOM assets: the provider's key spec
 * turned into an algorithm and key size the policy rules read, tags turned into asset context, and the
 * defaults given for untagged resources applied with the assumption written next to them. Pure.
 */
import type { AssetContext } from "../../bom/context.ts";
import { EXPOSURES } from "../../bom/context.ts";
import type { Asset } from "../../bom/cryptobom.ts";

export interface KmsKeyFacts {
  region: string;
  arn: string;
  keyId: string;
  keySpec: string | null;
  keyUsage: string | null;
  origin: string | null;
  keyManager: string | null;
  keyState: string | null;
  /** null: rotation does not apply to this kind of key, or could not be read */
  rotationEnabled: boolean | null;
  rotationPeriodDays: number | null;
  aliases: string[];
  /** null: the tags could not be read */
  tags: Record<string, string> | null;
}

export interface AcmCertificateFacts {
  region: string;
  arn: string;
  domainName: string | null;
  subjectAlternativeNames: string[];
  /** as ACM spells it: `RSA-2048`, `EC-prime256v1` (DescribeCertificate) or `RSA_2048` (ListCertificates) */
  keyAlgorithm: string | null;
  signatureAlgorithm: string | null;
  notBefore: string | null;
  notAfter: string | null;
  type: string | null;
  status: string | null;
  inUseBy: string[];
  usages: string[];
  tags: Record<string, string> | null;
}

interface AlgorithmFacts {
  algorithm: string | null;
  key_size: number | null;
  hash: string | null;
}

const UNKNOWN_ALGORITHM: AlgorithmFacts = { algorithm: null, key_size: null, hash: null };

const CURVES: Record<string, [string, number]> = {
  ECC_NIST_P256: ["EC P-256", 256],
  ECC_NIST_P384: ["EC P-384", 384],
  ECC_NIST_P521: ["EC P-521", 521],
  ECC_SECG_P256K1: ["EC secp256k1", 256],
  ECC_NIST_EDWARDS25519: ["Ed25519", 256],
  SM2: ["EC SM2", 256],
  prime256v1: ["EC P-256", 256],
  secp384r1: ["EC P-384", 384],
  secp521r1: ["EC P-521", 521],
};

/** KMS KeySpec → algorithm, key size in bits (null where a size in bits is not how the scheme is named). */
export function kmsKeySpecFacts(spec: string | null): AlgorithmFacts {
  if (spec === null) return UNKNOWN_ALGORITHM;
  const rsa = /^RSA_(\d+)$/.exec(spec);
  if (rsa) return { algorithm: "RSA", key_size: Number(rsa[1]), hash: null };
  const curve = CURVES[spec];
  if (curve) return { algorithm: curve[0], key_size: curve[1], hash: null };
  // KMS's symmetric default is AES-256-GCM
  if (spec === "SYMMETRIC_DEFAULT") return { algorithm: "AES-256-GCM", key_size: 256, hash: null };
  const hmac = /^HMAC_(224|256|384|512)$/.exec(spec);
  if (hmac) return { algorithm: `HMAC-SHA-${hmac[1]}`, key_size: Number(hmac[1]), hash: `SHA-${hmac[1]}` };
  const pq = /^(ML_DSA|ML_KEM)_(\d+)$/.exec(spec);
  if (pq) return { algorithm: `${pq[1]!.replace("_", "-")}-${pq[2]}`, key_size: null, hash: null };
  return UNKNOWN_ALGORITHM;
}

/** ACM's KeyAlgorithm (either spelling) → algorithm and key size. */
export function acmKeyAlgorithmFacts(name: string | null): AlgorithmFacts {
  if (name === null) return UNKNOWN_ALGORITHM;
  const rsa = /^RSA[-_](\d+)$/.exec(name);
  if (rsa) return { algorithm: "RSA", key_size: Number(rsa[1]), hash: null };
  const ec = /^EC[-_](\w+)$/.exec(name);
  const curve = ec ? CURVES[ec[1]!] : undefined;
  if (curve) return { algorithm: curve[0], key_size: curve[1], hash: null };
  return UNKNOWN_ALGORITHM;
}

/** `SHA256WITHRSA` → `SHA-256`, `SHA1WITHRSA` → `SHA-1`, `MD5WITHRSA` → `MD5`; anything else null. */
export function signatureHash(signatureAlgorithm: string | null): string | null {
  const m = /^(?:SHA(\d+)|(MD5))WITH/i.exec(signatureAlgorithm ?? "");
  if (!m) return null;
  return m[2] ? "MD5" : `SHA-${m[1]}`;
}

type ContextField = "owner" | "data_class" | "secrecy_lifetime_years" | "exposure";
const CONTEXT_FIELDS: readonly ContextField[] = ["owner", "data_class", "secrecy_lifetime_years", "exposure"];

/** Tag keys that name a context field, compared without case, `-` or `_` (Owner, data-class, DataClass…). */
const TAG_NAMES: Record<string, ContextField> = {
  owner: "owner",
  dataclass: "data_class",
  dataclassification: "data_class",
  secrecylifetimeyears: "secrecy_lifetime_years",
  secrecyyears: "secrecy_lifetime_years",
  exposure: "exposure",
};

const tagName = (key: string) => TAG_NAMES[key.toLowerCase().replace(/[-_\s]/g, "")];

/** A tag's value for a field, or why it cannot be used. */
function tagValue(field: ContextField, raw: string): { value: string | number } | { invalid: string } {
  const text = raw.trim();
  if (text === "") return { invalid: "is empty" };
  if (field === "secrecy_lifetime_years") {
    const n = Number(text);
    return Number.isFinite(n) && n >= 0 && n <= 1000 ? { value: n } : { invalid: "is not a number of years" };
  }
  if (field === "exposure") {
    const e = text.toUpperCase().replaceAll("-", "_");
    return (EXPOSURES as readonly string[]).includes(e)
      ? { value: e }
      : { invalid: `is not one of ${EXPOSURES.join(", ")}` };
  }
  return { value: text };
}

export interface ResolvedContext {
  owner: string | null;
  data_class: string | null;
  secrecy_lifetime_years: number | null;
  exposure: string | null;
  assumptions: string[];
}

/**
 * The asset context of one resource: its tags first; a field no usable tag gives takes the default, and the
 * assumption says so; with no default it stays null (unknown, never guessed).
 */
export function contextFromTags(
  tags: Record<string, string> | null,
  defaults: AssetContext,
): ResolvedContext {
  const found: Partial<Record<ContextField, string | number>> = {};
  const invalid: Partial<Record<ContextField, string>> = {};
  for (const [key, raw] of Object.entries(tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const field = tagName(key);
    if (!field || found[field] !== undefined) continue;
    const v = tagValue(field, raw);
    if ("value" in v) found[field] = v.value;
    else invalid[field] ??= `tag ${key}=${JSON.stringify(raw)} ${v.invalid}`;
  }
  const out: ResolvedContext = {
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    assumptions: [],
  };
  for (const field of CONTEXT_FIELDS) {
    const own = found[field];
    if (own !== undefined) {
      (out as unknown as Record<string, unknown>)[field] = own;
      continue;
    }
    const fallback = defaults[field];
    if (fallback === undefined) continue;
    (out as unknown as Record<string, unknown>)[field] = fallback;
    const why = invalid[field] ?? (tags === null ? "tags not readable" : "no tag");
    out.assumptions.push(`${field}: ${why}; default ${JSON.stringify(fallback)} used`);
  }
  return out;
}

/** Tags in key order, so the same resource always gives the same bytes. */
const sortedTags = (tags: Record<string, string>) =>
  Object.fromEntries(Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

function withContext(asset: Asset, ctx: ResolvedContext): void {
  asset.owner = ctx.owner;
  asset.data_class = ctx.data_class;
  asset.secrecy_lifetime_years = ctx.secrecy_lifetime_years;
  asset.exposure = ctx.exposure;
}

export function kmsKeyAsset(key: KmsKeyFacts, defaults: AssetContext): Asset {
  const ctx = contextFromTags(key.tags, defaults);
  const alg = kmsKeySpecFacts(key.keySpec);
  const aliases = [...key.aliases].sort();
  const asset: Asset = {
    asset_id: key.arn,
    kind: "key",
    source: "cloud.aws.kms",
    name: aliases[0] ?? key.keyId,
  };
  withContext(asset, ctx);
  Object.assign(asset, alg);
  if (key.tags !== null) asset.tags = sortedTags(key.tags);
  Object.assign(asset, {
    region: key.region,
    spec: key.keySpec,
    usage: key.keyUsage === null ? [] : [key.keyUsage],
    origin: key.origin,
    // AWS managed keys cannot be tagged or rotated by their account: `provider`
    managed_by: key.keyManager === null ? null : key.keyManager === "AWS" ? "provider" : "customer",
    state: key.keyState,
    rotation_enabled: key.rotationEnabled,
    rotation_period_days: key.rotationPeriodDays,
    aliases,
    assumptions: ctx.assumptions,
  });
  return asset;
}

export function acmCertificateAsset(cert: AcmCertificateFacts, defaults: AssetContext): Asset {
  const ctx = contextFromTags(cert.tags, defaults);
  const alg = acmKeyAlgorithmFacts(cert.keyAlgorithm);
  const domains = [
    ...new Set([...(cert.domainName ? [cert.domainName] : []), ...cert.subjectAlternativeNames]),
  ];
  const asset: Asset = {
    asset_id: cert.arn,
    kind: "certificate",
    source: "cloud.aws.acm",
    name: cert.domainName ?? cert.arn.slice(cert.arn.lastIndexOf("/") + 1),
  };
  if (domains.length) asset.domains = domains.sort();
  withContext(asset, ctx);
  Object.assign(asset, { ...alg, hash: signatureHash(cert.signatureAlgorithm) });
  if (cert.tags !== null) asset.tags = sortedTags(cert.tags);
  Object.assign(asset, {
    region: cert.region,
    spec: cert.keyAlgorithm,
    usage: [...cert.usages].sort(),
    origin: cert.type,
    state: cert.status,
    not_before: cert.notBefore,
    not_after: cert.notAfter,
    signature_algorithm: cert.signatureAlgorithm,
    in_use_by: [...cert.inUseBy].sort(),
    assumptions: ctx.assumptions,
  });
  return asset;
}
