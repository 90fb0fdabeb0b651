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

function hex4(v: number): string {
  return HEX[(v >> 12) & 15]! + HEX[(v >> 8) & 15]! + HEX[(v >> 4) & 15]! + HEX[v & 15]!;
}

const twoDigits = (n: number) => (n > 99 ? "99" : n < 10 ? `0${n}` : String(n));

const isAlnum = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** First and last character of the first ALPN value; their hex digits when either is not alphanumeric. */
function alpnChars(first: Uint8Array | undefined): string {
  if (first === undefined || first.length === 0) return "00";
  const a = first[0]!;
  const z = first[first.length - 1]!;
  if (isAlnum(a) && isAlnum(z)) return String.fromCharCode(a, z);
  return HEX[a >> 4]! + HEX[z & 15]!;
}

/** The first 12 hex digits of SHA-256 of `text`, or twelve zeros for an empty list. */
function truncatedHash(text: string): string {
  return text === "" ? "000000000000" : (Bun.SHA256.hash(text, "hex") as string).slice(0, 12);
}

/** Comma-joined 4-digit hex of the sorted values. */
function sortedHexList(values: number[]): string {
  values.sort((a, b) => a - b);
  let out = "";
  for (let i = 0; i < values.length; i++) out += (i === 0 ? "" : ",") + hex4(values[i]!);
  return out;
}

/** The JA4 fingerprint of a ClientHello seen over TCP. */
export function ja4(hello: ClientHello): string {
  let version = hello.legacyVersion;
  if (hello.supportedVersions !== null) {
    version = -1;
    for (const v of hello.supportedVersions) if (!isGrease(v) && v > version) version = v;
  }
  const ciphers: number[] = [];
  for (const c of hello.cipherSuites) if (!isGrease(c)) ciphers.push(c);
  let extensionCount = 0;
  const hashed: number[] = [];
  for (const e of hello.extensions) {
    if (isGrease(e)) continue;
    extensionCount++;
    if (e !== ExtensionType.serverName && e !== ExtensionType.alpn) hashed.push(e);
  }
  const a =
    "t" +
    (JA4_VERSIONS.get(version) ?? "00") +
    (hello.serverNamePresent ? "d" : "i") +
    twoDigits(ciphers.length) +
    twoDigits(extensionCount) +
    alpnChars(hello.alpn?.[0]);
  let c = sortedHexList(hashed);
  if (c !== "" && hello.signatureAlgorithms !== null) {
    let sigs = "";
    for (const s of hello.signatureAlgorithms) if (!isGrease(s)) sigs += (sigs === "" ? "" : ",") + hex4(s);
    if (sigs !== "") c += `_${sigs}`;
  }
  return `${a}_${truncatedHash(sortedHexList(ciphers))}_${truncatedHash(c)}`;
}
