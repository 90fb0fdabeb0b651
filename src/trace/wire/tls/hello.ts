/**
 * The plaintext handshake messages carnot reads: ClientHello, ServerHello / HelloRetryRequest (RFC 8446 §4.1,
 * RFC 5246 §7.4.1) and the TLS 1.2 ServerKeyExchange's group (RFC 8422 §5.4, RFC 5246 §7.4.3, RFC 7919).
 * Each parser takes a message body (without its 4-byte header) and returns what it holds, or null when the
 * bytes are not a well-formed message: every length is checked against its container, nothing is assumed.
 */
import { ContentType, ExtensionType, HandshakeType, isGrease } from "./names.ts";
import { RecordBody, RecordReader } from "./records.ts";

/** What a ClientHello holds, as code points in the order the client sent them (GREASE included). */
export interface ClientHello {
  legacyVersion: number;
  sessionId: Uint8Array;
  cipherSuites: number[];
  /** extension types in order */
  extensions: number[];
  /** the first host_name; null when absent or not printable ASCII (never re-encoded) */
  serverName: string | null;
  serverNamePresent: boolean;
  supportedGroups: number[] | null;
  /** the groups the client sent key shares for */
  keyShares: number[] | null;
  supportedVersions: number[] | null;
  /** ALPN protocol names as raw bytes, in order */
  alpn: Uint8Array[] | null;
  signatureAlgorithms: number[] | null;
  pskModes: number[] | null;
  /** number of PSK identities offered (pre_shared_key), null without the extension */
  pskIdentities: number | null;
  earlyData: boolean;
  /** session_ticket: null without the extension, else the ticket's length (0 = asks for one) */
  sessionTicketLength: number | null;
}

/** What a ServerHello or HelloRetryRequest holds. */
export interface ServerHello {
  retry: boolean;
  legacyVersion: number;
  /** supported_versions' selected version, null without the extension */
  selectedVersion: number | null;
  sessionId: Uint8Array;
  cipherSuite: number;
  /** ServerHello: the server's key share group; HelloRetryRequest: the group it asks for */
  keyShareGroup: number | null;
  /** pre_shared_key's selected identity, null without the extension */
  pskIdentity: number | null;
  /** ALPN protocol selected (raw bytes), null without the extension */
  alpn: Uint8Array | null;
  extensions: number[];
}

/** SHA-256("HelloRetryRequest"): the random of a HelloRetryRequest (RFC 8446 §4.1.3). */
const HRR_RANDOM = Uint8Array.from(
  Buffer.from("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c", "hex"),
);

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;

/** A copy of b[at, end): byte by byte into a new array, cheaper than `slice` for the few bytes of a hello. */
function copyOf(b: Uint8Array, at: number, end: number): Uint8Array {
  const out = new Uint8Array(end - at);
  for (let i = at; i < end; i++) out[i - at] = b[i]!;
  return out;
}

/** `count` u16 values at b[at..at+2*count) */
function u16List(b: Uint8Array, at: number, bytes: number): number[] {
  const out: number[] = new Array(bytes >> 1);
  for (let i = 0; i < out.length; i++) out[i] = u16(b, at + 2 * i);
  return out;
}

/** A u8-length-prefixed list of u16 (supported_versions): the values, or null when malformed. */
function u8PrefixedU16s(b: Uint8Array, at: number, end: number): number[] | null {
  if (end - at < 1) return null;
  const len = b[at]!;
  if (len % 2 !== 0 || at + 1 + len !== end) return null;
  return u16List(b, at + 1, len);
}

/** A u16-length-prefixed list of u16 (supported_groups, signature_algorithms). */
function u16PrefixedU16s(b: Uint8Array, at: number, end: number): number[] | null {
  if (end - at < 2) return null;
  const len = u16(b, at);
  if (len % 2 !== 0 || at + 2 + len !== end) return null;
  return u16List(b, at + 2, len);
}

/** Strings of at most this many bytes are remembered by asciiString (server names, ALPN protocols). */
const ASCII_REMEMBERED_LENGTH = 64;
const ASCII_REMEMBERED_MAX = 4096;
/** remembered strings by a hash of their bytes (emptied when full) */
const asciiRemembered = new Map<number, string>();

/**
 * Bytes as a string, one character per byte (for bytes already checked to be ASCII). Character by character:
 * a Buffer over the bytes would first make the engine give the view its own ArrayBuffer object, which cost
 * more than the rest of reading a ClientHello (WORKLOG.md). A short string seen before (compared character by
 * character) is given again rather than built anew: the same names come in every connection.
 */
export function asciiString(b: Uint8Array, at = 0, end = b.length): string {
  const length = end - at;
  let hash = 0;
  if (length <= ASCII_REMEMBERED_LENGTH) {
    hash = 0x811c9dc5 ^ length;
    for (let i = at; i < end; i++) hash = Math.imul(hash ^ b[i]!, 0x01000193);
    const known = asciiRemembered.get(hash);
    if (known !== undefined && sameAscii(known, b, at, length)) return known;
  }
  let s = "";
  for (let i = at; i < end; i++) s += String.fromCharCode(b[i]!);
  if (length <= ASCII_REMEMBERED_LENGTH) {
    if (asciiRemembered.size >= ASCII_REMEMBERED_MAX) asciiRemembered.clear();
    asciiRemembered.set(hash, s);
  }
  return s;
}

function sameAscii(s: string, b: Uint8Array, at: number, length: number): boolean {
  if (s.length !== length) return false;
  for (let i = 0; i < length; i++) if (s.charCodeAt(i) !== b[at + i]) return false;
  return true;
}

/** Bytes that are printable ASCII without spaces, as a string; else null (never re-encoded). */
function printableAscii(b: Uint8Array, at: number, end: number): string | null {
  if (end <= at) return null;
  for (let i = at; i < end; i++) {
    const c = b[i]!;
    if (c < 0x21 || c > 0x7e) return null;
  }
  return asciiString(b, at, end);
}

/** ServerNameList: the first host_name (type 0) entry, or undefined when malformed. */
function serverNameList(b: Uint8Array, at: number, end: number): string | null | undefined {
  if (end === at) return null; // an empty extension carries no name
  if (end - at < 2 || at + 2 + u16(b, at) !== end) return undefined;
  let name: string | null = null;
  let found = false;
  for (let i = at + 2; i < end; ) {
    if (end - i < 3) return undefined;
    const type = b[i]!;
    const len = u16(b, i + 1);
    if (i + 3 + len > end) return undefined;
    if (type === 0 && !found) {
      found = true;
      name = printableAscii(b, i + 3, i + 3 + len);
    }
    i += 3 + len;
  }
  return name;
}

/** ProtocolNameList (ALPN): the names as byte views, or null when malformed. */
function protocolNames(b: Uint8Array, at: number, end: number): Uint8Array[] | null {
  if (end - at < 2 || at + 2 + u16(b, at) !== end) return null;
  const out: Uint8Array[] = [];
  for (let i = at + 2; i < end; ) {
    const len = b[i]!;
    if (len === 0 || i + 1 + len > end) return null;
    out.push(copyOf(b, i + 1, i + 1 + len));
    i += 1 + len;
  }
  return out;
}

/** Client key_share: the groups of the KeyShareEntry list, or null when malformed. */
function clientKeyShares(b: Uint8Array, at: number, end: number): number[] | null {
  if (end - at < 2 || at + 2 + u16(b, at) !== end) return null;
  const groups: number[] = [];
  for (let i = at + 2; i < end; ) {
    if (end - i < 4) return null;
    const len = u16(b, i + 2);
    if (i + 4 + len > end) return null;
    groups.push(u16(b, i));
    i += 4 + len;
  }
  return groups;
}

/** OfferedPsks: the number of identities, or null when malformed. */
function pskIdentityCount(b: Uint8Array, at: number, end: number): number | null {
  if (end - at < 2) return null;
  const idEnd = at + 2 + u16(b, at);
  if (idEnd + 2 > end) return null;
  let count = 0;
  for (let i = at + 2; i < idEnd; count++) {
    if (idEnd - i < 2) return null;
    const len = u16(b, i);
    if (i + 2 + len + 4 > idEnd) return null;
    i += 2 + len + 4;
  }
  if (count === 0 || idEnd + 2 + u16(b, idEnd) !== end) return null;
  return count;
}

/** Where the extensions block of a hello starts and ends, or null when its length does not fit exactly. */
function extensionsBlock(b: Uint8Array, at: number): [number, number] | null {
  if (at === b.length) return [at, at]; // TLS ≤ 1.2 hellos may end without extensions
  if (b.length - at < 2 || at + 2 + u16(b, at) !== b.length) return null;
  return [at + 2, b.length];
}

/** A ClientHello body, or null when it is not a well-formed ClientHello. */
export function parseClientHello(b: Uint8Array): ClientHello | null {
  if (b.length < 2 + 32 + 1) return null;
  let at = 34;
  const sidLen = b[at]!;
  if (sidLen > 32 || at + 1 + sidLen + 2 > b.length) return null;
  const sessionId = copyOf(b, at + 1, at + 1 + sidLen);
  at += 1 + sidLen;
  const csLen = u16(b, at);
  if (csLen < 2 || csLen % 2 !== 0 || at + 2 + csLen + 1 > b.length) return null;
  const cipherSuites = u16List(b, at + 2, csLen);
  at += 2 + csLen;
  const compLen = b[at]!;
  if (compLen < 1 || at + 1 + compLen > b.length) return null;
  at += 1 + compLen;
  const block = extensionsBlock(b, at);
  if (block === null) return null;
  const hello: ClientHello = {
    legacyVersion: u16(b, 0),
    sessionId,
    cipherSuites,
    extensions: [],
    serverName: null,
    serverNamePresent: false,
    supportedGroups: null,
    keyShares: null,
    supportedVersions: null,
    alpn: null,
    signatureAlgorithms: null,
    pskModes: null,
    pskIdentities: null,
    earlyData: false,
    sessionTicketLength: null,
  };
  for (let i = block[0]; i < block[1]; ) {
    if (block[1] - i < 4) return null;
    const type = u16(b, i);
    const start = i + 4;
    const end = start + u16(b, i + 2);
    if (end > block[1]) return null;
    if (!readClientExtension(hello, type, b, start, end)) return null;
    hello.extensions.push(type);
    i = end;
  }
  return hello;
}

/** Reads one ClientHello extension into `hello`; false when it is malformed or repeated. */
function readClientExtension(
  hello: ClientHello,
  type: number,
  b: Uint8Array,
  at: number,
  end: number,
): boolean {
  switch (type) {
    case ExtensionType.serverName: {
      if (hello.serverNamePresent) return false;
      const name = serverNameList(b, at, end);
      if (name === undefined) return false;
      hello.serverNamePresent = true;
      hello.serverName = name;
      return true;
    }
    case ExtensionType.supportedGroups:
      if (hello.supportedGroups !== null) return false;
      hello.supportedGroups = u16PrefixedU16s(b, at, end);
      return hello.supportedGroups !== null;
    case ExtensionType.keyShare:
      if (hello.keyShares !== null) return false;
      hello.keyShares = clientKeyShares(b, at, end);
      return hello.keyShares !== null;
    case ExtensionType.supportedVersions:
      if (hello.supportedVersions !== null) return false;
      hello.supportedVersions = u8PrefixedU16s(b, at, end);
      return hello.supportedVersions !== null;
    case ExtensionType.alpn:
      if (hello.alpn !== null) return false;
      hello.alpn = protocolNames(b, at, end);
      return hello.alpn !== null;
    case ExtensionType.signatureAlgorithms:
      if (hello.signatureAlgorithms !== null) return false;
      hello.signatureAlgorithms = u16PrefixedU16s(b, at, end);
      return hello.signatureAlgorithms !== null;
    case ExtensionType.pskKeyExchangeModes: {
      if (hello.pskModes !== null || end - at < 1 || at + 1 + b[at]! !== end) return false;
      const modes: number[] = [];
      for (let i = at + 1; i < end; i++) modes.push(b[i]!);
      hello.pskModes = modes;
      return true;
    }
    case ExtensionType.preSharedKey:
      if (hello.pskIdentities !== null) return false;
      hello.pskIdentities = pskIdentityCount(b, at, end);
      return hello.pskIdentities !== null;
    case ExtensionType.earlyData:
      if (hello.earlyData || end !== at) return false;
      hello.earlyData = true;
      return true;
    case ExtensionType.sessionTicket:
      if (hello.sessionTicketLength !== null) return false;
      hello.sessionTicketLength = end - at;
      return true;
    default:
      return !hello.extensions.includes(type);
  }
}

/** A ServerHello or HelloRetryRequest body, or null when it is not a well-formed one. */
export function parseServerHello(b: Uint8Array): ServerHello | null {
  if (b.length < 2 + 32 + 1) return null;
  let retry = true;
  for (let i = 0; i < 32; i++) {
    if (b[2 + i] !== HRR_RANDOM[i]) {
      retry = false;
      break;
    }
  }
  let at = 34;
  const sidLen = b[at]!;
  if (sidLen > 32 || at + 1 + sidLen + 3 > b.length) return null;
  const sessionId = copyOf(b, at + 1, at + 1 + sidLen);
  at += 1 + sidLen;
  const hello: ServerHello = {
    retry,
    legacyVersion: u16(b, 0),
    selectedVersion: null,
    sessionId,
    cipherSuite: u16(b, at),
    keyShareGroup: null,
    pskIdentity: null,
    alpn: null,
    extensions: [],
  };
  at += 3; // cipher suite, compression method
  const block = extensionsBlock(b, at);
  if (block === null) return null;
  for (let i = block[0]; i < block[1]; ) {
    if (block[1] - i < 4) return null;
    const type = u16(b, i);
    const start = i + 4;
    const end = start + u16(b, i + 2);
    if (end > block[1] || hello.extensions.includes(type)) return null;
    if (!readServerExtension(hello, type, b, start, end)) return null;
    hello.extensions.push(type);
    i = end;
  }
  return hello;
}

function readServerExtension(
  hello: ServerHello,
  type: number,
  b: Uint8Array,
  at: number,
  end: number,
): boolean {
  switch (type) {
    case ExtensionType.supportedVersions:
      if (end - at !== 2) return false;
      hello.selectedVersion = u16(b, at);
      return true;
    case ExtensionType.keyShare:
      // HelloRetryRequest: selected_group alone; ServerHello: one KeyShareEntry
      if (hello.retry) {
        if (end - at !== 2) return false;
      } else if (end - at < 4 || at + 4 + u16(b, at + 2) !== end) return false;
      hello.keyShareGroup = u16(b, at);
      return true;
    case ExtensionType.preSharedKey:
      if (end - at !== 2) return false;
      hello.pskIdentity = u16(b, at);
      return true;
    case ExtensionType.alpn: {
      const names = protocolNames(b, at, end);
      if (names === null || names.length !== 1) return false;
      hello.alpn = names[0]!;
      return true;
    }
    default:
      return true;
  }
}

/** How a TLS 1.2 cipher suite's ServerKeyExchange carries its group, from the suite's key exchange. */
export type KeyExchangeParams = "ecdhe" | "ecdhe-psk" | "dhe" | "dhe-psk" | null;

/** The ServerKeyExchange layout of a suite's key exchange (`ECDHE_RSA`, `DHE_PSK`, …); null: no group in it. */
export function keyExchangeParams(keyExchange: string | null): KeyExchangeParams {
  switch (keyExchange) {
    case "ECDHE_RSA":
    case "ECDHE_ECDSA":
    case "ECDH_anon":
      return "ecdhe";
    case "ECDHE_PSK":
      return "ecdhe-psk";
    case "DHE_RSA":
    case "DHE_DSS":
    case "DH_anon":
      return "dhe";
    case "DHE_PSK":
      return "dhe-psk";
    default:
      return null;
  }
}

/** What a ServerKeyExchange says about the group: a named curve, or the DH prime (to be matched). */
export type ServerKeyExchangeGroup =
  | { kind: "named"; group: number }
  | { kind: "dh-prime"; prime: Uint8Array }
  | { kind: "explicit-curve" };

/** The group part of a ServerKeyExchange body for a suite's layout, or null when malformed. */
export function parseServerKeyExchange(
  b: Uint8Array,
  params: KeyExchangeParams,
): ServerKeyExchangeGroup | null {
  let at = 0;
  if (params === "ecdhe-psk" || params === "dhe-psk") {
    if (b.length < 2) return null;
    at = 2 + u16(b, 0); // psk_identity_hint
  }
  if (params === "ecdhe" || params === "ecdhe-psk") {
    if (b.length - at < 1) return null;
    if (b[at] !== 3) return b[at] === 1 || b[at] === 2 ? { kind: "explicit-curve" } : null;
    if (b.length - at < 3) return null;
    return { kind: "named", group: u16(b, at + 1) };
  }
  if (params === "dhe" || params === "dhe-psk") {
    if (b.length - at < 2) return null;
    const len = u16(b, at);
    if (len === 0 || at + 2 + len > b.length) return null;
    return { kind: "dh-prime", prime: b.subarray(at + 2, at + 2 + len) };
  }
  return null;
}

/** The values of a list without GREASE (RFC 8701). */
export function withoutGrease(values: readonly number[]): number[] {
  return values.filter((v) => !isGrease(v));
}

/**
 * The first ClientHello of a byte stream that starts with TLS records (as a client writes it), or null when
 * the bytes hold no whole, well-formed one. The one ClientHello reader of the project: the calibration reads
 * a library's default groups off its first hello with it too.
 */
export function clientHelloOfStream(bytes: Uint8Array): ClientHello | null {
  let hello: ClientHello | null = null;
  let seen = false;
  const reader = new RecordReader(
    {
      record: (type) => (type === ContentType.handshake ? RecordBody.handshake : RecordBody.skip),
      wants: () => !seen,
      message: (type, body) => {
        if (seen) return;
        seen = true;
        if (type === HandshakeType.clientHello && body !== null) hello = parseClientHello(body);
      },
      alert: () => {},
      changeCipherSpec: () => {},
    },
    bytes.length,
  );
  reader.write(bytes);
  return hello;
}
