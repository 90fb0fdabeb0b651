/**
 * TLS code points the wire parser reads, with their names: record content types, handshake message types,
 * extension types, protocol versions and alert descriptions (RFC 8446, RFC 5246, RFC 8701 for GREASE).
 * Cipher suite names are generated from Wireshark's table (cipher-suites.generated.ts); group names come
 * from src/trace/groups.ts.
 */
export { CIPHER_SUITE_NAMES } from "./cipher-suites.generated.ts";

/** Record layer content types. */
export const ContentType = {
  changeCipherSpec: 20,
  alert: 21,
  handshake: 22,
  applicationData: 23,
  heartbeat: 24,
} as const;

/** Handshake message types. */
export const HandshakeType = {
  clientHello: 1,
  serverHello: 2,
  newSessionTicket: 4,
  certificate: 11,
  serverKeyExchange: 12,
  certificateRequest: 13,
  serverHelloDone: 14,
  certificateVerify: 15,
  clientKeyExchange: 16,
  finished: 20,
  certificateStatus: 22,
} as const;

/** Extension types. */
export const ExtensionType = {
  serverName: 0,
  supportedGroups: 10,
  signatureAlgorithms: 13,
  alpn: 16,
  sessionTicket: 35,
  preSharedKey: 41,
  earlyData: 42,
  supportedVersions: 43,
  pskKeyExchangeModes: 45,
  keyShare: 51,
} as const;

export const TLS13 = 0x0304;

/** Protocol versions as the records name them (OpenSSL's spelling, `SSL_get_version`). */
export const TLS_VERSIONS: ReadonlyMap<number, string> = new Map([
  [0x0304, "TLSv1.3"],
  [0x0303, "TLSv1.2"],
  [0x0302, "TLSv1.1"],
  [0x0301, "TLSv1"],
  [0x0300, "SSLv3"],
]);

/** Alert descriptions (RFC 8446 §6, RFC 5246 §7.2 for the ones TLS 1.3 retired, RFC 9849 for ech_required). */
export const ALERT_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "close_notify"],
  [10, "unexpected_message"],
  [20, "bad_record_mac"],
  [21, "decryption_failed"],
  [22, "record_overflow"],
  [30, "decompression_failure"],
  [40, "handshake_failure"],
  [41, "no_certificate"],
  [42, "bad_certificate"],
  [43, "unsupported_certificate"],
  [44, "certificate_revoked"],
  [45, "certificate_expired"],
  [46, "certificate_unknown"],
  [47, "illegal_parameter"],
  [48, "unknown_ca"],
  [49, "access_denied"],
  [50, "decode_error"],
  [51, "decrypt_error"],
  [60, "export_restriction"],
  [70, "protocol_version"],
  [71, "insufficient_security"],
  [80, "internal_error"],
  [86, "inappropriate_fallback"],
  [90, "user_canceled"],
  [100, "no_renegotiation"],
  [109, "missing_extension"],
  [110, "unsupported_extension"],
  [111, "certificate_unobtainable"],
  [112, "unrecognized_name"],
  [113, "bad_certificate_status_response"],
  [114, "bad_certificate_hash_value"],
  [115, "unknown_psk_identity"],
  [116, "certificate_required"],
  [120, "no_application_protocol"],
  [121, "ech_required"],
]);

export const ALERT_CLOSE_NOTIFY = 0;
export const ALERT_USER_CANCELED = 90;

/** An alert description's name; one without a registered name keeps its number visible. */
export function alertName(description: number): string {
  return ALERT_NAMES.get(description) ?? `alert_${description}`;
}

/** RFC 8701 GREASE values: 0x?A?A with both bytes equal (cipher suites, extensions, groups, versions, …). */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

/** A 16-bit code point as carnot shows one it has no name for: `0x` and four lowercase hex digits. */
export function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, "0")}`;
}
