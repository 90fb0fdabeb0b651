/**
 * Ed25519 signature over the attestation and its two rendered reports. The signed bytes are the
 * canonical JSON of `{attestation: <attestation.json without signature>, files: {name: sha256}}`, so
 * editing any of the three files, or the signature's own file list, breaks verification.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { canonicalJson } from "../bom/cryptobom.ts";
import type { Attestation } from "./attestation.ts";

export const sha256Hex = (data: string | Uint8Array): string =>
  createHash("sha256").update(data).digest("hex");

function payload(body: Omit<Attestation, "signature">, files: Record<string, string>): Buffer {
  return Buffer.from(canonicalJson({ attestation: body, files }));
}

/** Reads a PEM private key and insists on Ed25519; the error says what was found instead. */
export function loadEd25519PrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error(`an Ed25519 key is needed, this is ${key.asymmetricKeyType}`);
  return key;
}

export function keyId(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  return `ed25519:${sha256Hex(der).slice(0, 16)}`;
}

export function signAttestation(
  body: Omit<Attestation, "signature">,
  files: Record<string, string>,
  privateKey: KeyObject,
): Attestation {
  const publicKey = createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString();
  const value = sign(null, payload(body, files), privateKey).toString("base64");
  return {
    ...body,
    signature: {
      algorithm: "Ed25519",
      key_id: keyId(publicKey),
      public_key: publicKey,
      signed_files: files,
      value,
    },
  };
}

export type VerifyOutcome = { ok: true; keyId: string } | { ok: false; reason: string };

/** Checks the signature with the embedded key, the current file digests, and optionally a pinned key. */
export function verifyAttestation(
  attestation: Attestation,
  currentFiles: Record<string, string | null>,
  pinnedPublicKeyPem?: string,
): VerifyOutcome {
  const sig = attestation.signature;
  if (!sig) return { ok: false, reason: "not signed (attest was run without --key)" };
  for (const [name, digest] of Object.entries(sig.signed_files)) {
    const now = currentFiles[name];
    if (now === undefined || now === null) return { ok: false, reason: `${name} is missing` };
    if (now !== digest) return { ok: false, reason: `${name} was modified after signing` };
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(sig.public_key);
  } catch {
    return { ok: false, reason: "the embedded public key is not a valid PEM key" };
  }
  if (pinnedPublicKeyPem !== undefined && keyId(pinnedPublicKeyPem) !== keyId(sig.public_key)) {
    return {
      ok: false,
      reason: `signed by ${sig.key_id}, not by the expected key ${keyId(pinnedPublicKeyPem)}`,
    };
  }
  const { signature: _s, ...body } = attestation;
  const ok = verify(null, payload(body, sig.signed_files), publicKey, Buffer.from(sig.value, "base64"));
  return ok
    ? { ok: true, keyId: sig.key_id }
    : { ok: false, reason: "signature does not match attestation.json" };
}
