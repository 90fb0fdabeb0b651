/**
 * What the CBOM and the policy need to know about the algorithms a TLS handshake names: the key-exchange
 * group's family and parts (code points and kex class come from the trace's group table), and the bulk
 * cipher and hash a cipher suite implies, with OIDs and NIST post-quantum security categories.
 */
import { type GroupIndex, type GroupInfo, indexGroups, type KexClass } from "../trace/groups.ts";

export type Primitive = "key-agree" | "kem" | "combiner" | "ae" | "block-cipher" | "stream-cipher" | "hash";

/** One algorithm as a CycloneDX `algorithm` asset describes it. */
export interface AlgorithmFacts {
  /** Stable display name, also the key of the asset's bom-ref (`crypto/algorithm/<name>`). */
  readonly name: string;
  readonly primitive: Primitive;
  readonly oid: string | null;
  readonly curve: string | null;
  readonly parameterSetIdentifier: string | null;
  readonly mode: "gcm" | "ccm" | "cbc" | null;
  readonly classicalSecurityLevel: number | null;
  /** NIST PQC category 0..6; 0 = broken by a quantum computer (Shor) or by classical attacks. */
  readonly nistQuantumSecurityLevel: number;
  readonly cryptoFunctions: readonly string[];
  /** The two algorithms a hybrid combines, by name. */
  readonly parts: readonly string[];
}

/** A key-exchange group as the policy and the risk score see it. */
export interface GroupFacts {
  readonly name: string;
  readonly codePoint: number | null;
  readonly kexClass: KexClass | null;
  readonly family: "ecdh" | "ffdh" | "mlkem" | "hybrid" | "unknown";
  /** Field size of a finite-field group, curve size of an elliptic curve. */
  readonly bits: number | null;
  /** The algorithm assets this group is made of (one, or two for a hybrid). */
  readonly algorithms: readonly AlgorithmFacts[];
  /** Combiner asset for a hybrid group, else null. */
  readonly combiner: AlgorithmFacts | null;
}

const KEY_AGREE = ["keygen", "keyderive"] as const;
const KEM = ["keygen", "encapsulate", "decapsulate"] as const;

function ecdh(name: string, curve: string, oid: string | null, bits: number): AlgorithmFacts {
  return {
    name,
    primitive: "key-agree",
    oid,
    curve,
    parameterSetIdentifier: null,
    mode: null,
    // CycloneDX wants an integer; P-521 is rated 256 bits (NIST SP 800-57 Part 1 Table 2)
    classicalSecurityLevel: Math.min(Math.floor(bits / 2), 256),
    nistQuantumSecurityLevel: 0,
    cryptoFunctions: KEY_AGREE,
    parts: [],
  };
}

// Classical strength of RFC 7919 groups, from NIST SP 800-57 Part 1 Table 2 (interpolated above 3072).
const FFDHE_STRENGTH: Record<number, number> = { 2048: 112, 3072: 128, 4096: 152, 6144: 176, 8192: 200 };

function ffdh(bits: number): AlgorithmFacts {
  return {
    name: `ffdhe${bits}`,
    primitive: "key-agree",
    oid: "1.2.840.10046.2.1",
    curve: null,
    parameterSetIdentifier: String(bits),
    mode: null,
    classicalSecurityLevel: FFDHE_STRENGTH[bits] ?? null,
    nistQuantumSecurityLevel: 0,
    cryptoFunctions: KEY_AGREE,
    parts: [],
  };
}

function mlkem(level: 512 | 768 | 1024): AlgorithmFacts {
  const facts = {
    512: { oid: "2.16.840.1.101.3.4.4.1", category: 1, classical: 128 },
    768: { oid: "2.16.840.1.101.3.4.4.2", category: 3, classical: 192 },
    1024: { oid: "2.16.840.1.101.3.4.4.3", category: 5, classical: 256 },
  }[level];
  return {
    name: `ML-KEM-${level}`,
    primitive: "kem",
    oid: facts.oid,
    curve: null,
    parameterSetIdentifier: String(level),
    mode: null,
    classicalSecurityLevel: facts.classical,
    nistQuantumSecurityLevel: facts.category,
    cryptoFunctions: KEM,
    parts: [],
  };
}

/** Elliptic curves by canonical group name: display curve name, curve OID, field bits. */
const CURVES: Record<string, [string, string | null, number]> = {
  secp192r1: ["secp192r1", "1.2.840.10045.3.1.1", 192],
  secp224r1: ["secp224r1", "1.3.132.0.33", 224],
  secp256k1: ["secp256k1", "1.3.132.0.10", 256],
  secp256r1: ["secp256r1", "1.2.840.10045.3.1.7", 256],
  secp384r1: ["secp384r1", "1.3.132.0.34", 384],
  secp521r1: ["secp521r1", "1.3.132.0.35", 521],
  X25519: ["Curve25519", "1.3.101.110", 256],
  X448: ["Curve448", "1.3.101.111", 448],
  brainpoolP256r1: ["brainpoolP256r1", "1.3.36.3.3.2.8.1.1.7", 256],
  brainpoolP384r1: ["brainpoolP384r1", "1.3.36.3.3.2.8.1.1.11", 384],
  brainpoolP512r1: ["brainpoolP512r1", "1.3.36.3.3.2.8.1.1.13", 512],
  brainpoolP256r1tls13: ["brainpoolP256r1", "1.3.36.3.3.2.8.1.1.7", 256],
  brainpoolP384r1tls13: ["brainpoolP384r1", "1.3.36.3.3.2.8.1.1.11", 384],
  brainpoolP512r1tls13: ["brainpoolP512r1", "1.3.36.3.3.2.8.1.1.13", 512],
};

/** Hybrids: the classical group and the ML-KEM level they combine. */
const HYBRIDS: Record<string, [string, 512 | 768 | 1024]> = {
  X25519MLKEM768: ["X25519", 768],
  SecP256r1MLKEM768: ["secp256r1", 768],
  SecP384r1MLKEM1024: ["secp384r1", 1024],
  // Draft Kyber768 predates ML-KEM; its PQ part is described as ML-KEM-768's ancestor at the same level.
  X25519Kyber768Draft00: ["X25519", 768],
};

function ecdhFacts(name: string): AlgorithmFacts | null {
  const curve = CURVES[name];
  if (curve) return ecdh(name.replace(/tls13$/, ""), curve[0], curve[1], curve[2]);
  const binary = /^sect(\d+)[kr]\d$/.exec(name);
  return binary ? ecdh(name, name, null, Number(binary[1])) : null;
}

/** The facts for a key-exchange group given by name (any spelling OpenSSL accepts); never null. */
export function groupFacts(name: string, index: GroupIndex): GroupFacts {
  const info: GroupInfo | undefined = index.byLowerName.get(name.toLowerCase());
  const canonical = info?.name ?? name;
  const base = { name: canonical, codePoint: info?.codePoint ?? null, kexClass: info?.kexClass ?? null };
  const ff = /^ffdhe(\d+)$/.exec(canonical);
  if (ff) {
    const bits = Number(ff[1]);
    return { ...base, family: "ffdh", bits, algorithms: [ffdh(bits)], combiner: null };
  }
  const ml = /^MLKEM(512|768|1024)$/.exec(canonical);
  if (ml) {
    const level = Number(ml[1]) as 512 | 768 | 1024;
    return { ...base, family: "mlkem", bits: null, algorithms: [mlkem(level)], combiner: null };
  }
  const hybrid = HYBRIDS[canonical];
  if (hybrid) {
    const classical = ecdhFacts(hybrid[0]);
    const pq = mlkem(hybrid[1]);
    const parts = classical ? [classical, pq] : [pq];
    const combiner: AlgorithmFacts = {
      name: canonical,
      primitive: "combiner",
      oid: null,
      curve: null,
      parameterSetIdentifier: null,
      mode: null,
      classicalSecurityLevel: classical?.classicalSecurityLevel ?? null,
      nistQuantumSecurityLevel: pq.nistQuantumSecurityLevel,
      cryptoFunctions: KEM,
      parts: parts.map((p) => p.name),
    };
    return { ...base, family: "hybrid", bits: null, algorithms: parts, combiner };
  }
  const ec = ecdhFacts(canonical);
  if (ec) {
    return {
      ...base,
      family: "ecdh",
      bits: CURVES[canonical]?.[2] ?? null,
      algorithms: [ec],
      combiner: null,
    };
  }
  return { ...base, family: "unknown", bits: null, algorithms: [], combiner: null };
}

/** The parts of a cipher suite the CBOM and the policy look at. */
export interface CipherSuiteFacts {
  readonly name: string;
  /** Key exchange named by a TLS ≤ 1.2 suite (`ECDHE`, `DHE`, `RSA`, …); null for TLS 1.3 suites. */
  readonly keyExchange: string | null;
  readonly bulk: AlgorithmFacts | null;
  readonly hash: AlgorithmFacts | null;
}

function bulkCipher(name: string, bits: number, mode: "gcm" | "ccm" | "cbc" | null, oid: string | null) {
  const aead = mode === "gcm" || mode === "ccm" || name.startsWith("ChaCha20");
  const primitive: Primitive = aead ? "ae" : mode === null ? "stream-cipher" : "block-cipher";
  // Grover halves a symmetric key: AES-128 → category 1, AES-192 → 3, AES-256 → 5; 3DES/RC4 → 0.
  const category =
    name.startsWith("3DES") || name.startsWith("RC4") ? 0 : bits >= 256 ? 5 : bits >= 192 ? 3 : 1;
  const facts: AlgorithmFacts = {
    name,
    primitive,
    oid,
    curve: null,
    parameterSetIdentifier: String(bits),
    mode,
    classicalSecurityLevel: name.startsWith("3DES") ? 112 : bits,
    nistQuantumSecurityLevel: category,
    cryptoFunctions: ["encrypt", "decrypt"],
    parts: [],
  };
  return facts;
}

const AES_OIDS: Record<string, string> = {
  "AES-128-GCM": "2.16.840.1.101.3.4.1.6",
  "AES-256-GCM": "2.16.840.1.101.3.4.1.46",
  "AES-128-CCM": "2.16.840.1.101.3.4.1.7",
  "AES-256-CCM": "2.16.840.1.101.3.4.1.47",
  "AES-128-CBC": "2.16.840.1.101.3.4.1.2",
  "AES-256-CBC": "2.16.840.1.101.3.4.1.42",
};

const HASHES: Record<string, [string, string, number, number]> = {
  // name → [display, OID, classical collision strength, NIST category]
  SHA512: ["SHA-512", "2.16.840.1.101.3.4.2.3", 256, 5],
  SHA384: ["SHA-384", "2.16.840.1.101.3.4.2.2", 192, 4],
  SHA256: ["SHA-256", "2.16.840.1.101.3.4.2.1", 128, 2],
  SHA: ["SHA-1", "1.3.14.3.2.26", 63, 0],
  SHA1: ["SHA-1", "1.3.14.3.2.26", 63, 0],
  MD5: ["MD5", "1.2.840.113549.2.5", 18, 0],
};

function hashFacts(token: string): AlgorithmFacts | null {
  const h = HASHES[token];
  if (!h) return null;
  return {
    name: h[0],
    primitive: "hash",
    oid: h[1],
    curve: null,
    parameterSetIdentifier: null,
    mode: null,
    classicalSecurityLevel: h[2],
    nistQuantumSecurityLevel: h[3],
    cryptoFunctions: ["digest"],
    parts: [],
  };
}

/** Bulk cipher from the words of a suite name, IANA (`AES_128_GCM`) or OpenSSL (`AES128-GCM`) spelling. */
function bulkFromWords(words: string[]): AlgorithmFacts | null {
  const text = words.join("_");
  if (text.includes("CHACHA20"))
    return bulkCipher("ChaCha20-Poly1305", 256, null, "1.2.840.113549.1.9.16.3.18");
  if (text.includes("3DES") || text.includes("DES_CBC3") || text.includes("DES-CBC3")) {
    return bulkCipher("3DES-EDE-CBC", 168, "cbc", "1.2.840.113549.3.7");
  }
  if (text.includes("RC4")) return bulkCipher("RC4-128", 128, null, null);
  const aes = /AES_?(128|256)(?:_(GCM|CCM|CBC))?/.exec(text);
  if (!aes) return null;
  const bits = Number(aes[1]);
  const mode = (aes[2]?.toLowerCase() ?? "cbc") as "gcm" | "ccm" | "cbc";
  const name = `AES-${bits}-${mode.toUpperCase()}`;
  return bulkCipher(name, bits, mode, AES_OIDS[name] ?? null);
}

/**
 * Reads an IANA cipher suite name (`TLS_AES_256_GCM_SHA384`, `TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA`) or an
 * OpenSSL one (`ECDHE-RSA-AES128-GCM-SHA256`). Parts it cannot read are null, never guessed.
 */
export function cipherSuiteFacts(name: string): CipherSuiteFacts {
  const iana = name.startsWith("TLS_");
  const words = (iana ? name.slice(4) : name).split(iana ? "_" : "-").map((w) => w.toUpperCase());
  const last = words[words.length - 1] ?? "";
  // CCM_8 suites end in "8"; their hash is the word before. GCM/CCM OpenSSL names end in the PRF hash.
  const hashWord = HASHES[last]
    ? last
    : HASHES[words[words.length - 2] ?? ""]
      ? words[words.length - 2]!
      : "";
  let keyExchange: string | null = null;
  if (iana) {
    const withAt = words.indexOf("WITH");
    keyExchange = withAt > 0 ? words.slice(0, withAt).join("_") : null;
  } else {
    // OpenSSL spelling: the words before the bulk cipher; none means static RSA (`AES128-SHA`).
    const bulkAt = words.findIndex((w) => /^(AES|CHACHA|DES|RC4|CAMELLIA|ARIA|3DES)/.test(w));
    keyExchange = bulkAt > 0 ? words.slice(0, bulkAt).join("_") : "RSA";
  }
  const bulkWords = iana ? words : words.map((w) => w.replace(/^AES(\d+)$/, "AES_$1"));
  return { name, keyExchange, bulk: bulkFromWords(bulkWords), hash: hashWord ? hashFacts(hashWord) : null };
}

/** TLS versions as numbers for comparison (`TLSv1.2` → 1.2); null when unreadable. */
export function tlsVersionNumber(version: string): number | null {
  const m = /^(?:TLSv?|SSLv)(\d)(?:\.(\d))?$/i.exec(version.trim());
  if (!m) return null;
  const n = Number(`${m[1]}.${m[2] ?? "0"}`);
  return version.toUpperCase().startsWith("SSL") ? n - 3 : n;
}

export { indexGroups };
export type { GroupIndex, KexClass };
