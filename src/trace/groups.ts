/**
 * TLS key-exchange groups: IANA code point, canonical name, OpenSSL NID (for `SSL_set1_groups`, ctrl 91)
 * and the spellings OpenSSL accepts in a groups list (ctrl 92). Canonical names follow the published
 * record: `X25519`, `secp256r1`, `X25519MLKEM768`, …
 */
export type KexClass = "classical" | "hybrid-pq" | "pq";

export interface GroupInfo {
  readonly name: string;
  readonly codePoint: number;
  /** OpenSSL NID, null for groups that only exist as provider groups (ML-KEM and its hybrids). */
  readonly nid: number | null;
  readonly kexClass: KexClass;
  /** Other spellings OpenSSL accepts in a groups list; matched case-insensitively, as OpenSSL does. */
  readonly aliases: readonly string[];
}

/** Sorted by code point. NIDs are from OpenSSL's obj_mac.h (a test compares them with the installed headers). */
export const GROUPS: readonly GroupInfo[] = [
  { name: "sect163k1", codePoint: 1, nid: 721, kexClass: "classical", aliases: ["K-163"] },
  { name: "sect163r1", codePoint: 2, nid: 722, kexClass: "classical", aliases: [] },
  { name: "sect163r2", codePoint: 3, nid: 723, kexClass: "classical", aliases: ["B-163"] },
  { name: "sect193r1", codePoint: 4, nid: 724, kexClass: "classical", aliases: [] },
  { name: "sect193r2", codePoint: 5, nid: 725, kexClass: "classical", aliases: [] },
  { name: "sect233k1", codePoint: 6, nid: 726, kexClass: "classical", aliases: ["K-233"] },
  { name: "sect233r1", codePoint: 7, nid: 727, kexClass: "classical", aliases: ["B-233"] },
  { name: "sect239k1", codePoint: 8, nid: 728, kexClass: "classical", aliases: [] },
  { name: "sect283k1", codePoint: 9, nid: 729, kexClass: "classical", aliases: ["K-283"] },
  { name: "sect283r1", codePoint: 10, nid: 730, kexClass: "classical", aliases: ["B-283"] },
  { name: "sect409k1", codePoint: 11, nid: 731, kexClass: "classical", aliases: ["K-409"] },
  { name: "sect409r1", codePoint: 12, nid: 732, kexClass: "classical", aliases: ["B-409"] },
  { name: "sect571k1", codePoint: 13, nid: 733, kexClass: "classical", aliases: ["K-571"] },
  { name: "sect571r1", codePoint: 14, nid: 734, kexClass: "classical", aliases: ["B-571"] },
  { name: "secp160k1", codePoint: 15, nid: 708, kexClass: "classical", aliases: [] },
  { name: "secp160r1", codePoint: 16, nid: 709, kexClass: "classical", aliases: [] },
  { name: "secp160r2", codePoint: 17, nid: 710, kexClass: "classical", aliases: [] },
  { name: "secp192k1", codePoint: 18, nid: 711, kexClass: "classical", aliases: [] },
  { name: "secp192r1", codePoint: 19, nid: 409, kexClass: "classical", aliases: ["P-192", "prime192v1"] },
  { name: "secp224k1", codePoint: 20, nid: 712, kexClass: "classical", aliases: [] },
  { name: "secp224r1", codePoint: 21, nid: 713, kexClass: "classical", aliases: ["P-224"] },
  { name: "secp256k1", codePoint: 22, nid: 714, kexClass: "classical", aliases: [] },
  { name: "secp256r1", codePoint: 23, nid: 415, kexClass: "classical", aliases: ["P-256", "prime256v1"] },
  { name: "secp384r1", codePoint: 24, nid: 715, kexClass: "classical", aliases: ["P-384"] },
  { name: "secp521r1", codePoint: 25, nid: 716, kexClass: "classical", aliases: ["P-521"] },
  { name: "brainpoolP256r1", codePoint: 26, nid: 927, kexClass: "classical", aliases: [] },
  { name: "brainpoolP384r1", codePoint: 27, nid: 931, kexClass: "classical", aliases: [] },
  { name: "brainpoolP512r1", codePoint: 28, nid: 933, kexClass: "classical", aliases: [] },
  { name: "X25519", codePoint: 29, nid: 1034, kexClass: "classical", aliases: [] },
  { name: "X448", codePoint: 30, nid: 1035, kexClass: "classical", aliases: [] },
  { name: "brainpoolP256r1tls13", codePoint: 31, nid: null, kexClass: "classical", aliases: [] },
  { name: "brainpoolP384r1tls13", codePoint: 32, nid: null, kexClass: "classical", aliases: [] },
  { name: "brainpoolP512r1tls13", codePoint: 33, nid: null, kexClass: "classical", aliases: [] },
  { name: "ffdhe2048", codePoint: 256, nid: 1126, kexClass: "classical", aliases: [] },
  { name: "ffdhe3072", codePoint: 257, nid: 1127, kexClass: "classical", aliases: [] },
  { name: "ffdhe4096", codePoint: 258, nid: 1128, kexClass: "classical", aliases: [] },
  { name: "ffdhe6144", codePoint: 259, nid: 1129, kexClass: "classical", aliases: [] },
  { name: "ffdhe8192", codePoint: 260, nid: 1130, kexClass: "classical", aliases: [] },
  { name: "MLKEM512", codePoint: 512, nid: null, kexClass: "pq", aliases: ["ML-KEM-512"] },
  { name: "MLKEM768", codePoint: 513, nid: null, kexClass: "pq", aliases: ["ML-KEM-768"] },
  { name: "MLKEM1024", codePoint: 514, nid: null, kexClass: "pq", aliases: ["ML-KEM-1024"] },
  { name: "SecP256r1MLKEM768", codePoint: 4587, nid: null, kexClass: "hybrid-pq", aliases: [] },
  { name: "X25519MLKEM768", codePoint: 4588, nid: null, kexClass: "hybrid-pq", aliases: [] },
  { name: "SecP384r1MLKEM1024", codePoint: 4589, nid: null, kexClass: "hybrid-pq", aliases: [] },
  // obsolete pre-standard drafts (Chrome/Cloudflare 2023-24): still post-quantum hybrids on the wire
  { name: "X25519Kyber768Draft00", codePoint: 25497, nid: null, kexClass: "hybrid-pq", aliases: [] },
  { name: "SecP256r1Kyber768Draft00", codePoint: 25498, nid: null, kexClass: "hybrid-pq", aliases: [] },
];

export interface GroupIndex {
  byLowerName: ReadonlyMap<string, GroupInfo>;
  byNid: ReadonlyMap<number, GroupInfo>;
  byCodePoint: ReadonlyMap<number, GroupInfo>;
}

/** Lookup tables over GROUPS (built once by the caller; no module-level state). */
export function indexGroups(groups: readonly GroupInfo[] = GROUPS): GroupIndex {
  const byLowerName = new Map<string, GroupInfo>();
  const byNid = new Map<number, GroupInfo>();
  const byCodePoint = new Map<number, GroupInfo>();
  for (const g of groups) {
    for (const n of [g.name, ...g.aliases]) byLowerName.set(n.toLowerCase(), g);
    if (g.nid !== null) byNid.set(g.nid, g);
    byCodePoint.set(g.codePoint, g);
  }
  return { byLowerName, byNid, byCodePoint };
}

/**
 * The canonical names of a groups list as given to `SSL_set1_groups_list` ("X25519:P-256").
 * OpenSSL 3.5 syntax is accepted too: `?name` (ignore if unknown), `*name` (send a key share), `/`
 * between tuples, `-name` (remove from DEFAULT, so not offered). A name carnot does not know is kept as
 * written: never guessed.
 */
export function canonicalGroupList(list: string, index: GroupIndex): string[] {
  const out: string[] = [];
  for (const raw of list.split(/[:/]/)) {
    const name = raw.trim().replace(/^[?*]+/, "");
    if (name === "" || name === "DEFAULT" || name.startsWith("-")) continue;
    const canonical = index.byLowerName.get(name.toLowerCase())?.name ?? name;
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

/** The canonical names of a NID list as given to `SSL_set1_groups` (ctrl 91); unknown NIDs stay visible. */
export function canonicalGroupNids(nids: readonly number[], index: GroupIndex): string[] {
  const out: string[] = [];
  for (const nid of nids) {
    const canonical = index.byNid.get(nid)?.name ?? `NID_${nid}`;
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}
