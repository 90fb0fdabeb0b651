/**
 * A CycloneDX 1.6 CBOM read as CryptoBOM assets: its certificates and keys (`cryptographic-asset`
 * components of assetType `certificate` and `related-crypto-material`) with the algorithm, key size,
 * signature hash and expiry the policy rules and the risk score read. A CycloneDX document records no
 * handshakes, so the result has no observations; nothing is guessed for what the document does not say.
 */
import { createHash } from "node:crypto";
import * as v from "valibot";
import { CarnotError } from "../errors.ts";
import { type Asset, assembleCryptoBom, type CryptoBom, canonicalJson } from "./cryptobom.ts";
import { describeIssues } from "./observation.ts";

const Ref = v.optional(v.string());

const ComponentSchema = v.looseObject({
  type: v.string(),
  "bom-ref": v.optional(v.string()),
  name: v.string(),
  cryptoProperties: v.optional(
    v.looseObject({
      assetType: v.string(),
      algorithmProperties: v.optional(
        v.looseObject({ parameterSetIdentifier: v.optional(v.string()), curve: v.optional(v.string()) }),
      ),
      certificateProperties: v.optional(
        v.looseObject({
          subjectName: v.optional(v.string()),
          notValidAfter: v.optional(v.string()),
          notValidBefore: v.optional(v.string()),
          signatureAlgorithmRef: Ref,
          subjectPublicKeyRef: Ref,
        }),
      ),
      relatedCryptoMaterialProperties: v.optional(
        v.looseObject({ type: v.optional(v.string()), algorithmRef: Ref, size: v.optional(v.number()) }),
      ),
    }),
  ),
});
type Component = v.InferOutput<typeof ComponentSchema>;

const CycloneDxSchema = v.looseObject({
  bomFormat: v.literal("CycloneDX"),
  specVersion: v.string(),
  serialNumber: v.optional(v.string()),
  components: v.optional(v.array(ComponentSchema)),
});

const KEY_TYPES = new Set(["public-key", "private-key", "secret-key", "key"]);

/** `RSA-2048`, `RSA2048`, `rsaEncryption-3072` → RSA and its size; otherwise the name and no size. */
function algorithmAndSize(name: string): { algorithm: string; key_size: number | null } {
  const rsa = /^RSA(?:[-_ ]?|Encryption-)(\d{3,5})$/i.exec(name.trim());
  return rsa ? { algorithm: "RSA", key_size: Number(rsa[1]) } : { algorithm: name, key_size: null };
}

/** The hash inside a signature algorithm's name (`sha1WithRSAEncryption`, `SHA256withECDSA`), or null. */
function signatureHash(name: string): string | null {
  const m = /(sha-?(1|224|256|384|512)(?![0-9])|md5)/i.exec(name);
  if (!m) return null;
  return m[2] ? `SHA-${m[2]}` : "MD5";
}

const isoOrNull = (t: string | undefined): string | null =>
  t !== undefined && !Number.isNaN(Date.parse(t)) ? new Date(t).toISOString() : null;

export function cycloneDxToCryptoBom(label: string, value: unknown): CryptoBom {
  const parsed = v.safeParse(CycloneDxSchema, value);
  if (!parsed.success)
    throw new CarnotError(`${label}: invalid CycloneDX document: ${describeIssues(parsed.issues)}`);
  const doc = parsed.output;
  if (!doc.specVersion.startsWith("1.6"))
    throw new CarnotError(`${label}: CycloneDX ${doc.specVersion}: cryptographic assets need CycloneDX 1.6`);
  const components = doc.components ?? [];
  const byRef = new Map<string, Component>();
  for (const c of components) if (c["bom-ref"]) byRef.set(c["bom-ref"], c);
  const nameOf = (ref: string | undefined) => (ref ? (byRef.get(ref)?.name ?? null) : null);

  const keyAsset = (c: Component, id: string): Asset | null => {
    const m = c.cryptoProperties?.relatedCryptoMaterialProperties;
    if (!m || !KEY_TYPES.has(m.type ?? "")) return null;
    const alg = algorithmAndSize(nameOf(m.algorithmRef) ?? c.name);
    return {
      asset_id: id,
      kind: "key",
      source: "cyclonedx",
      name: c.name,
      algorithm: alg.algorithm,
      key_size: m.size ?? alg.key_size,
    };
  };

  const assets: Asset[] = [];
  for (const c of components) {
    const id = c["bom-ref"] ?? `cdx-${c.name}`;
    const crypto = c.cryptoProperties;
    if (c.type !== "cryptographic-asset" || !crypto) continue;
    if (crypto.assetType === "related-crypto-material") {
      const key = keyAsset(c, id);
      if (key) assets.push(key);
    } else if (crypto.assetType === "certificate") {
      const cert = crypto.certificateProperties ?? {};
      const keyComponent = cert.subjectPublicKeyRef ? byRef.get(cert.subjectPublicKeyRef) : undefined;
      const key = keyComponent ? keyAsset(keyComponent, id) : null;
      const signature = nameOf(cert.signatureAlgorithmRef);
      assets.push({
        asset_id: id,
        kind: "certificate",
        source: "cyclonedx",
        name: cert.subjectName ?? c.name,
        algorithm: key?.algorithm ?? null,
        key_size: key?.key_size ?? null,
        hash: signature ? signatureHash(signature) : null,
        signature_algorithm: signature,
        not_before: isoOrNull(cert.notValidBefore),
        not_after: isoOrNull(cert.notValidAfter),
      });
    }
  }
  const unique = new Map(assets.map((a) => [a.asset_id, a]));
  const sorted = [...unique.values()].sort((a, b) => (a.asset_id < b.asset_id ? -1 : 1));
  const digest = createHash("sha256")
    .update(doc.serialNumber ?? canonicalJson(sorted))
    .digest("hex");
  return assembleCryptoBom(`cyclonedx-${digest.slice(0, 16)}`, [], { assets: sorted });
}
