/**
 * The JA4 TLS client fingerprint of a ClientHello (FoxIO's JA4 specification, technical_details/JA4.md):
 * `t13d1516h2_8daaf6152771_e5627efa2ab1` = protocol, version, SNI or not, cipher and extension counts, first
 * and last character of the first ALPN value; the truncated SHA-256 of the sorted cipher list; that of the
 * sorted extension list (without SNI and ALPN) joined with the signature algorithms in their order.
 */
import type { ClientHello } from "./hello.ts";
import { ExtensionType, isGrease } from "./names.ts";

const JA4_VERSIONS: ReadonlyMap<number, string> = new Map([
  [0x0304, "13"],
  [0x0303, "12"],
  [0x0302, "11"],
  [0x0301, "10"],
  [0x0300, "s3"],
  [0x0002, "s2"],
  [0xfeff, "d1"],
  [0xfefd, "d2"],
  [0xfefc, "d3"],
]);

const HEX = "0123456789abcdef";
const COMMA = 0x2c;
const UNDERSCORE = 0x5f;
/** ASCII codes of the 16 hex digits */
const HEX_CODES = Uint8Array.from(HEX, (c) => c.charCodeAt(0));

const ZERO = 0x30;

/** Writes a count as two decimal digits at out[at..] (99 for more). */
function twoDigits(out: Uint8Array, at: number, n: number): void {
  const m = Math.min(n, 99);
  out[at] = ZERO + Math.floor(m / 10);
  out[at + 1] = ZERO + (m % 10);
}

/** The first part's characters after `t` (out[1..10)) as one number: nine codes, 49 bits, exact. */
function firstPartKey(out: Uint8Array): number {
  // version (two characters), d/i (one bit), the four count digits (4 bits each), the two ALPN characters
  const version = out[1]! * 256 + out[2]!;
  const digits =
    ((out[4]! - ZERO) << 12) | ((out[5]! - ZERO) << 8) | ((out[6]! - ZERO) << 4) | (out[7]! - ZERO);
  const alpn = out[8]! * 256 + out[9]!;
  return ((version * 2 + (out[3] === 0x64 ? 1 : 0)) * 65536 + digits) * 65536 + alpn;
}

function countWithoutGrease(values: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (!isGrease(values[i]!)) n++;
  return n;
}

const isAlnum = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * Writes at out[at..] the first and last character of the first ALPN value; their hex digits when either is
 * not alphanumeric.
 */
function alpnChars(out: Uint8Array, at: number, first: Uint8Array | undefined): void {
  if (first === undefined || first.length === 0) {
    out[at] = ZERO;
    out[at + 1] = ZERO;
    return;
  }
  const a = first[0]!;
  const z = first[first.length - 1]!;
  const plain = isAlnum(a) && isAlnum(z);
  out[at] = plain ? a : HEX_CODES[a >> 4]!;
  out[at + 1] = plain ? z : HEX_CODES[z & 15]!;
}

/** A hashed list: its sorted values (`listed` of them, then `signatures` more), and the 12 hex digits. */
interface HashedList {
  values: Uint16Array;
  listed: number;
  signatures: number;
  digits: Uint8Array;
  /** a cipher list's fingerprints made with it, by extension list and then by the first part (packed) */
  fingerprints: Map<HashedList, Map<number, string>> | null;
}

/** Lists remembered per instance: a host's clients send few distinct ones (and the cache is emptied when full). */
const HASHED_MAX = 1024;
/** Fingerprints remembered per pair of lists, and extension lists per cipher list (each emptied when full). */
const FINGERPRINTS_MAX = 64;
/** Fingerprints remembered in all (past it, everything remembered is forgotten: hostile hellos cannot grow it). */
const FINGERPRINTS_TOTAL = 4096;
/** Longer lists are hashed each time, not remembered (bounds what hostile hellos can make it keep). */
const REMEMBERED_VALUES = 512;

/**
 * Computes JA4 fingerprints. The lists are sorted into a buffer of its own; a list seen before (the same
 * values, compared one by one) gives its remembered digits, otherwise it is written as ASCII and hashed in
 * place: a fingerprint costs at most two native SHA-256 calls and one short string; one instance per caller,
 * reused.
 */
export class Ja4 {
  /** five characters per value; both grow for a hello with more values than any seen before */
  #text = new Uint8Array(1024);
  #values = new Uint16Array(128);
  readonly #digest = new Uint8Array(32);
  /** remembered lists by a hash of their values (cipher suites and extensions apart) */
  readonly #ciphers = new Map<number, HashedList>();
  readonly #extensions = new Map<number, HashedList>();
  #fingerprints = 0;
  /** the fingerprint's 36 characters (a Buffer: its latin1 decoding is the fastest way to a flat string) */
  readonly #out = Buffer.alloc(36);

  /** The JA4 fingerprint of a ClientHello seen over TCP. */
  of(hello: ClientHello): string {
    let version = hello.legacyVersion;
    if (hello.supportedVersions !== null) {
      version = -1;
      const versions = hello.supportedVersions;
      for (let i = 0; i < versions.length; i++) {
        const v = versions[i]!;
        if (!isGrease(v) && v > version) version = v;
      }
    }
    const extensionCount = countWithoutGrease(hello.extensions);
    const cipherCount = countWithoutGrease(hello.cipherSuites);
    const most = Math.max(
      hello.cipherSuites.length,
      hello.extensions.length + (hello.signatureAlgorithms?.length ?? 0),
    );
    if (most > this.#values.length) this.#values = new Uint16Array(most);
    if (5 * most > this.#text.length) this.#text = new Uint8Array(5 * most);
    // the 36 characters are written as codes and made one flat string at the end
    const out = this.#out;
    const versionText = JA4_VERSIONS.get(version) ?? "00";
    out[0] = 0x74; // t
    out[1] = versionText.charCodeAt(0);
    out[2] = versionText.charCodeAt(1);
    out[3] = hello.serverNamePresent ? 0x64 : 0x69; // d, i
    twoDigits(out, 4, cipherCount);
    twoDigits(out, 6, extensionCount);
    alpnChars(out, 8, hello.alpn?.[0]);
    const ciphers = this.#hashedList(this.#ciphers, this.#sorted(hello.cipherSuites, false), 0);
    const listed = this.#sorted(hello.extensions, true);
    const signatures =
      listed > 0 && hello.signatureAlgorithms !== null
        ? this.#signatures(hello.signatureAlgorithms, listed)
        : 0;
    const extensions = this.#hashedList(this.#extensions, listed, signatures);
    // the same three parts make the same string: made once (a Buffer's text costs more than finding it)
    const first = firstPartKey(out);
    ciphers.fingerprints ??= new Map();
    let made = ciphers.fingerprints.get(extensions);
    if (made === undefined) {
      if (ciphers.fingerprints.size >= FINGERPRINTS_MAX) ciphers.fingerprints.clear();
      made = new Map();
      ciphers.fingerprints.set(extensions, made);
    }
    let fingerprint = made.get(first);
    if (fingerprint === undefined) {
      out[10] = UNDERSCORE;
      out.set(ciphers.digits, 11);
      out[23] = UNDERSCORE;
      out.set(extensions.digits, 24);
      fingerprint = out.toString("latin1", 0, 36);
      if (++this.#fingerprints > FINGERPRINTS_TOTAL) {
        this.#ciphers.clear();
        this.#fingerprints = 0;
      }
      if (made.size >= FINGERPRINTS_MAX) made.clear();
      made.set(first, fingerprint);
    }
    return fingerprint;
  }

  /** Puts the values without GREASE (and without SNI and ALPN for extensions) in #values, sorted; how many. */
  #sorted(values: readonly number[], extensions: boolean): number {
    const buf = this.#values;
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (isGrease(v) || (extensions && (v === ExtensionType.serverName || v === ExtensionType.alpn)))
        continue;
      // insertion sort: a few dozen values, already partly in order
      let j = n++;
      while (j > 0 && buf[j - 1]! > v) {
        buf[j] = buf[j - 1]!;
        j--;
      }
      buf[j] = v;
    }
    return n;
  }

  /** Puts the signature algorithms without GREASE in their order in #values from `at`; how many. */
  #signatures(sigs: readonly number[], at: number): number {
    const buf = this.#values;
    let n = 0;
    for (let i = 0; i < sigs.length; i++) {
      const s = sigs[i]!;
      if (!isGrease(s)) buf[at + n++] = s;
    }
    return n;
  }

  /** The list in #values (`listed` sorted values, then `signatures`) with its 12 digits: remembered, or hashed. */
  #hashedList(seen: Map<number, HashedList>, listed: number, signatures: number): HashedList {
    const values = this.#values;
    const count = listed + signatures;
    let hash = Math.imul(0x811c9dc5 ^ listed, 0x01000193) ^ signatures;
    for (let i = 0; i < count; i++) hash = Math.imul(hash ^ values[i]!, 0x01000193);
    const known = seen.get(hash);
    if (known !== undefined && known.listed === listed && known.signatures === signatures) {
      let same = true;
      for (let i = 0; i < count && same; i++) same = known.values[i] === values[i];
      if (same) return known;
    }
    const digits = new Uint8Array(12);
    this.#truncatedHash(this.#writeText(listed, signatures), digits);
    const list: HashedList = {
      values: values.slice(0, count),
      listed,
      signatures,
      digits,
      fingerprints: null,
    };
    if (count > REMEMBERED_VALUES) return list;
    if (seen.size >= HASHED_MAX) seen.clear();
    seen.set(hash, list);
    return list;
  }

  /** Writes the list in #values as JA4 text (`hhhh,hhhh` then `_hhhh,hhhh` for the signatures); its length. */
  #writeText(listed: number, signatures: number): number {
    const values = this.#values;
    let at = 0;
    for (let i = 0; i < listed; i++) at = this.#hex4(values[i]!, i === 0 ? at : this.#put(COMMA, at));
    for (let i = listed; i < listed + signatures; i++)
      at = this.#hex4(values[i]!, this.#put(i === listed ? UNDERSCORE : COMMA, at));
    return at;
  }

  #put(code: number, at: number): number {
    this.#text[at] = code;
    return at + 1;
  }

  #hex4(v: number, at: number): number {
    const t = this.#text;
    t[at] = HEX_CODES[(v >> 12) & 15]!;
    t[at + 1] = HEX_CODES[(v >> 8) & 15]!;
    t[at + 2] = HEX_CODES[(v >> 4) & 15]!;
    t[at + 3] = HEX_CODES[v & 15]!;
    return at + 4;
  }

  /** Writes the first 12 hex digits of SHA-256 of the text so far into `out`, or twelve zeros when it is empty. */
  #truncatedHash(end: number, out: Uint8Array): void {
    if (end === 0) {
      out.fill(ZERO);
      return;
    }
    const d = Bun.SHA256.hash(this.#text.subarray(0, end), this.#digest) as Uint8Array;
    for (let i = 0; i < 6; i++) {
      out[2 * i] = HEX_CODES[d[i]! >> 4]!;
      out[2 * i + 1] = HEX_CODES[d[i]! & 15]!;
    }
  }
}
