/**
 * The calibration child (`carnot __calibrate LIBSSL`): dlopens one exact libssl, runs in-memory handshakes
 * (a BIO pair, no sockets) with known parameters, and finds where that build keeps the facts the BPF side
 * reads at handshake completion. An offset is kept only when exactly one candidate agrees with the library's
 * own getters in every handshake; anything else is reported as null (never guessed). Prints one JSON line.
 *
 * It runs in a child process because the library may need another glibc (then the child runs under the
 * library's own ld-linux loader) and because a crash inside a foreign library must not take the tracer down.
 */
import { CString, dlopen, FFIType as T, type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { clientHelloOfStream } from "../../wire/tls/hello.ts";
import type { Calibration } from "./types.ts";

/** How many bytes of the SSL object and of its SSL_SESSION are searched. */
const SSL_SCAN = 4096;
const SESSION_SCAN = 1024;
const CIPHER_SCAN = 64;

const SSL_CTRL_SET_GROUPS_LIST = 92;
const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_FILETYPE_PEM = 1;
/** OSSL_HANDSHAKE_STATE: TLS_ST_BEFORE and TLS_ST_OK */
const TLS_ST_BEFORE = 0;
const TLS_ST_OK = 1;

function openLibraries(libssl: string) {
  const ssl = dlopen(libssl, {
    OpenSSL_version: { returns: T.ptr, args: [T.i32] },
    TLS_method: { returns: T.ptr, args: [] },
    SSL_CTX_new: { returns: T.ptr, args: [T.ptr] },
    SSL_CTX_free: { returns: T.void, args: [T.ptr] },
    SSL_CTX_use_certificate_file: { returns: T.i32, args: [T.ptr, T.cstring, T.i32] },
    SSL_CTX_use_PrivateKey_file: { returns: T.i32, args: [T.ptr, T.cstring, T.i32] },
    SSL_CTX_ctrl: { returns: T.i64, args: [T.ptr, T.i32, T.i64, T.ptr] },
    SSL_CTX_set_ciphersuites: { returns: T.i32, args: [T.ptr, T.cstring] },
    SSL_CTX_set_cipher_list: { returns: T.i32, args: [T.ptr, T.cstring] },
    SSL_ctrl: { returns: T.i64, args: [T.ptr, T.i32, T.i64, T.ptr] },
    SSL_new: { returns: T.ptr, args: [T.ptr] },
    SSL_free: { returns: T.void, args: [T.ptr] },
    SSL_set_bio: { returns: T.void, args: [T.ptr, T.ptr, T.ptr] },
    SSL_set_connect_state: { returns: T.void, args: [T.ptr] },
    SSL_set_accept_state: { returns: T.void, args: [T.ptr] },
    SSL_do_handshake: { returns: T.i32, args: [T.ptr] },
    SSL_version: { returns: T.i32, args: [T.ptr] },
    SSL_get_state: { returns: T.i32, args: [T.ptr] },
    SSL_get_current_cipher: { returns: T.ptr, args: [T.ptr] },
    SSL_get_session: { returns: T.ptr, args: [T.ptr] },
    SSL_get_SSL_CTX: { returns: T.ptr, args: [T.ptr] },
    SSL_set_SSL_CTX: { returns: T.ptr, args: [T.ptr, T.ptr] },
    SSL_get_ciphers: { returns: T.ptr, args: [T.ptr] },
    SSL_CIPHER_get_id: { returns: T.u32, args: [T.ptr] },
    SSL_CIPHER_standard_name: { returns: T.ptr, args: [T.ptr] },
    OPENSSL_sk_num: { returns: T.i32, args: [T.ptr] },
    OPENSSL_sk_value: { returns: T.ptr, args: [T.ptr, T.i32] },
    BIO_new_bio_pair: { returns: T.i32, args: [T.ptr, T.u64, T.ptr, T.u64] },
    BIO_read: { returns: T.i32, args: [T.ptr, T.ptr, T.i32] },
    BIO_free: { returns: T.i32, args: [T.ptr] },
  });
  return ssl.symbols;
}

type Ssl = ReturnType<typeof openLibraries>;

const cstr = (s: string) => Buffer.from(`${s}\0`);

interface Case {
  serverGroups: string;
  clientGroups: string;
  /** max protocol version, 0x303 or 0x304 */
  version: number;
  /** TLS 1.3 suite or TLS 1.2 cipher list */
  suite: string;
  /** IANA code point of the group the server is limited to (the truth to find) */
  groupId: number;
}

/** Varied on purpose: every offset must agree over different versions, groups, suites and roles. */
const CASES: Case[] = [
  {
    serverGroups: "X25519",
    clientGroups: "X25519",
    version: 0x304,
    suite: "TLS_AES_256_GCM_SHA384",
    groupId: 29,
  },
  {
    serverGroups: "P-384",
    clientGroups: "P-384",
    version: 0x304,
    suite: "TLS_AES_128_GCM_SHA256",
    groupId: 24,
  },
  // HelloRetryRequest: the client's first key share is X25519, the server only takes P-521
  {
    serverGroups: "P-521",
    clientGroups: "X25519:P-521",
    version: 0x304,
    suite: "TLS_CHACHA20_POLY1305_SHA256",
    groupId: 25,
  },
  {
    serverGroups: "ffdhe2048",
    clientGroups: "ffdhe2048",
    version: 0x304,
    suite: "TLS_AES_128_GCM_SHA256",
    groupId: 256,
  },
  {
    serverGroups: "P-256",
    clientGroups: "P-256",
    version: 0x303,
    suite: "ECDHE-ECDSA-AES128-GCM-SHA256",
    groupId: 23,
  },
  {
    serverGroups: "X25519",
    clientGroups: "X25519",
    version: 0x303,
    suite: "ECDHE-ECDSA-CHACHA20-POLY1305",
    groupId: 29,
  },
  {
    serverGroups: "X448",
    clientGroups: "X448",
    version: 0x303,
    suite: "ECDHE-ECDSA-AES256-GCM-SHA384",
    groupId: 30,
  },
  // only where the library knows it (OpenSSL 3.5+): a KEM hybrid
  {
    serverGroups: "X25519MLKEM768",
    clientGroups: "X25519MLKEM768",
    version: 0x304,
    suite: "TLS_AES_256_GCM_SHA384",
    groupId: 4588,
  },
];

interface Snapshot {
  ssl: DataView;
  session: DataView | null;
  cipher: DataView | null;
  version: number;
  cipherPtr: bigint;
  cipherId: number;
  sessionPtr: bigint;
  ctxPtr: bigint;
  state: number;
  groupId: number | null;
  tls13: boolean;
}

/** bun:ffi hands pointers back as numbers (or bigints above 2^53, which user space never reaches here). */
type Handle = Pointer | bigint | null;
const asPointer = (p: Handle) => p as Pointer;

function view(p: Handle, bytes: number): DataView | null {
  return p ? new DataView(toArrayBuffer(asPointer(p), 0, bytes)) : null;
}

function snapshot(ssl: Ssl, s: Handle, groupId: number | null): Snapshot {
  const cipher = ssl.SSL_get_current_cipher(s);
  const session = ssl.SSL_get_session(s);
  const version = ssl.SSL_version(s);
  return {
    ssl: view(s, SSL_SCAN)!,
    session: view(session, SESSION_SCAN),
    cipher: view(cipher, CIPHER_SCAN),
    version,
    cipherPtr: BigInt(cipher ?? 0),
    cipherId: cipher ? ssl.SSL_CIPHER_get_id(cipher) : 0,
    sessionPtr: BigInt(session ?? 0),
    // no SNI callback here: the current context is SSL_new's
    ctxPtr: BigInt(ssl.SSL_get_SSL_CTX(s) ?? 0),
    state: ssl.SSL_get_state(s),
    groupId,
    tls13: version === 0x304,
  };
}

/** Offsets (multiples of `align` below `limit`) where `read` equals the expected value, per snapshot. */
function intersect(
  candidates: number[] | null,
  limit: number,
  align: number,
  matches: (offset: number) => boolean,
): number[] {
  const out: number[] = [];
  if (candidates === null) {
    for (let o = 0; o + 8 <= limit; o += align) if (matches(o)) out.push(o);
    return out;
  }
  return candidates.filter(matches);
}

function only(candidates: number[] | null): number | null {
  return candidates !== null && candidates.length === 1 ? candidates[0]! : null;
}

/** A throwaway self-signed Ed25519 certificate, made with the same libcrypto (no openssl CLI needed). */
export function makeCertificate(libcrypto: string, dir: string): { cert: string; key: string } {
  const crypto = dlopen(libcrypto, {
    EVP_PKEY_CTX_new_from_name: { returns: T.ptr, args: [T.ptr, T.cstring, T.ptr] },
    EVP_PKEY_keygen_init: { returns: T.i32, args: [T.ptr] },
    EVP_PKEY_generate: { returns: T.i32, args: [T.ptr, T.ptr] },
    X509_new: { returns: T.ptr, args: [] },
    X509_set_pubkey: { returns: T.i32, args: [T.ptr, T.ptr] },
    X509_sign: { returns: T.i32, args: [T.ptr, T.ptr, T.ptr] },
    X509_get_serialNumber: { returns: T.ptr, args: [T.ptr] },
    ASN1_INTEGER_set: { returns: T.i32, args: [T.ptr, T.i64] },
    X509_getm_notBefore: { returns: T.ptr, args: [T.ptr] },
    X509_getm_notAfter: { returns: T.ptr, args: [T.ptr] },
    X509_gmtime_adj: { returns: T.ptr, args: [T.ptr, T.i64] },
    X509_get_subject_name: { returns: T.ptr, args: [T.ptr] },
    X509_set_issuer_name: { returns: T.i32, args: [T.ptr, T.ptr] },
    BIO_new_file: { returns: T.ptr, args: [T.cstring, T.cstring] },
    BIO_free: { returns: T.i32, args: [T.ptr] },
    PEM_write_bio_X509: { returns: T.i32, args: [T.ptr, T.ptr] },
    PEM_write_bio_PrivateKey: { returns: T.i32, args: [T.ptr, T.ptr, T.ptr, T.ptr, T.i32, T.ptr, T.ptr] },
  }).symbols;
  const pctx = crypto.EVP_PKEY_CTX_new_from_name(null, cstr("ED25519"), null);
  const out = new BigUint64Array(1);
  if (!pctx || crypto.EVP_PKEY_keygen_init(pctx) !== 1 || crypto.EVP_PKEY_generate(pctx, ptr(out)) !== 1) {
    throw new Error("cannot generate an Ed25519 key");
  }
  const pkey = Number(out[0]) as unknown as Pointer;
  const x509 = crypto.X509_new();
  crypto.ASN1_INTEGER_set(crypto.X509_get_serialNumber(x509), 1);
  crypto.X509_set_pubkey(x509, pkey);
  crypto.X509_gmtime_adj(crypto.X509_getm_notBefore(x509), 0);
  crypto.X509_gmtime_adj(crypto.X509_getm_notAfter(x509), 86_400);
  crypto.X509_set_issuer_name(x509, crypto.X509_get_subject_name(x509));
  if (crypto.X509_sign(x509, pkey, null) <= 0) throw new Error("cannot sign the certificate");
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const certBio = crypto.BIO_new_file(cstr(cert), cstr("w"));
  crypto.PEM_write_bio_X509(certBio, x509);
  crypto.BIO_free(certBio);
  const keyBio = crypto.BIO_new_file(cstr(key), cstr("w"));
  crypto.PEM_write_bio_PrivateKey(keyBio, pkey, null, null, 0, null, null);
  crypto.BIO_free(keyBio);
  return { cert, key };
}

/** The libcrypto beside a libssl (libssl.so.3 → libcrypto.so.3), else the name the loader resolves. */
export function libcryptoBeside(libssl: string): string {
  const beside = join(
    dirname(libssl),
    libssl
      .split("/")
      .pop()!
      .replace(/^libssl/, "libcrypto"),
  );
  return existsSync(beside) ? beside : "libcrypto.so.3";
}

/** What a client from a default SSL_CTX offers: its first ClientHello, read off the BIO pair. */
function defaultGroups(ssl: Ssl, pair: () => readonly [Pointer, Pointer]): number[] | null {
  const ctx = ssl.SSL_CTX_new(ssl.TLS_method());
  const s = ssl.SSL_new(ctx)!;
  const [cb, sb] = pair();
  try {
    ssl.SSL_set_bio(s, cb, cb);
    ssl.SSL_set_connect_state(s);
    ssl.SSL_do_handshake(s); // writes the ClientHello, then wants to read
    const buf = new Uint8Array(16_384);
    const n = ssl.BIO_read(sb, ptr(buf), buf.byteLength);
    return n > 0 ? (clientHelloOfStream(buf.subarray(0, n))?.supportedGroups ?? null) : null;
  } finally {
    ssl.SSL_free(s);
    ssl.BIO_free(sb);
    ssl.SSL_CTX_free(ctx);
  }
}

/** Every cipher suite the library offers by default and with all TLS 1.2 suites: IANA code → name. */
function cipherNames(ssl: Ssl): Record<string, string> {
  const names: Record<string, string> = {};
  const ctx = ssl.SSL_CTX_new(ssl.TLS_method());
  ssl.SSL_CTX_set_cipher_list(ctx, cstr("ALL:COMPLEMENTOFALL:@SECLEVEL=0"));
  const s = ssl.SSL_new(ctx);
  const stack = ssl.SSL_get_ciphers(s);
  const n = stack ? ssl.OPENSSL_sk_num(stack) : 0;
  for (let i = 0; i < n; i++) {
    const c = ssl.OPENSSL_sk_value(stack, i);
    const std = c ? ssl.SSL_CIPHER_standard_name(c) : null;
    if (c && std) names[String(ssl.SSL_CIPHER_get_id(c) & 0xffff)] = new CString(std).toString();
  }
  ssl.SSL_free(s);
  ssl.SSL_CTX_free(ctx);
  return names;
}

/**
 * Calibrates `libssl` (the name its record carries), loaded from `load` (the same files, open in this
 * process: /proc/self/fd/N) when given. libcrypto is loaded first, so that libssl's dependency on it is that
 * very file (the dynamic loader matches it by its soname) wherever libssl's directory is.
 */
export function calibrateLoaded(
  libssl: string,
  workDir: string,
  load: { libssl?: string; libcrypto?: string } = {},
): Calibration {
  const { cert, key } = makeCertificate(load.libcrypto ?? libcryptoBeside(libssl), workDir);
  const ssl = openLibraries(load.libssl ?? libssl);
  const versionText = new CString(ssl.OpenSSL_version(0)!).toString();
  let version: number[] | null = null;
  let cipher: number[] | null = null;
  let cipherId: number[] | null = null;
  let session: number[] | null = null;
  let kexGroup: number[] | null = null;
  let group13: number[] | null = null;
  let handState: number[] | null = null;
  let sslCtx: number[] | null = null;
  const groupsSeen: number[] = [];
  let handshakes = 0;

  const pair = () => {
    const b = new BigUint64Array(2);
    if (ssl.BIO_new_bio_pair(ptr(b), 0, ptr(b, 8), 0) !== 1) throw new Error("BIO_new_bio_pair failed");
    return [Number(b[0]) as unknown as Pointer, Number(b[1]) as unknown as Pointer] as const;
  };
  const checkState = (snap: Snapshot) => {
    // the version field holds TLS_ANY_VERSION before the handshake and the protocol after: any snapshot counts
    version = intersect(version, SSL_SCAN, 4, (o) => snap.ssl.getInt32(o, true) === snap.version);
    sslCtx = intersect(sslCtx, SSL_SCAN, 8, (o) => snap.ssl.getBigUint64(o, true) === snap.ctxPtr);
    handState = intersect(handState, SSL_SCAN, 4, (o) => snap.ssl.getInt32(o, true) === snap.state);
  };

  // SSL_new's context, which the SSL object keeps even when SSL_set_SSL_CTX (an SNI callback) switches it
  {
    const first = ssl.SSL_CTX_new(ssl.TLS_method());
    const second = ssl.SSL_CTX_new(ssl.TLS_method());
    const s = ssl.SSL_new(first);
    ssl.SSL_set_SSL_CTX(s, second);
    const mem = view(s, SSL_SCAN)!;
    const want = BigInt(first ?? 0);
    sslCtx = intersect(sslCtx, SSL_SCAN, 8, (o) => mem.getBigUint64(o, true) === want);
    ssl.SSL_free(s);
    ssl.SSL_CTX_free(second);
    ssl.SSL_CTX_free(first);
  }
  for (const c of CASES) {
    const sctx = ssl.SSL_CTX_new(ssl.TLS_method());
    const cctx = ssl.SSL_CTX_new(ssl.TLS_method());
    if (ssl.SSL_CTX_use_certificate_file(sctx, cstr(cert), SSL_FILETYPE_PEM) !== 1)
      throw new Error("cannot load the calibration certificate");
    if (ssl.SSL_CTX_use_PrivateKey_file(sctx, cstr(key), SSL_FILETYPE_PEM) !== 1)
      throw new Error("cannot load the calibration key");
    let usable = true;
    for (const [ctx, groups] of [
      [sctx, c.serverGroups],
      [cctx, c.clientGroups],
    ] as const) {
      if (Number(ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, ptr(cstr(groups)))) !== 1) usable = false;
      ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, c.version, null);
      ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, c.version, null);
      const ok =
        c.version === 0x304
          ? ssl.SSL_CTX_set_ciphersuites(ctx, cstr(c.suite))
          : ssl.SSL_CTX_set_cipher_list(ctx, cstr(c.suite));
      if (ok !== 1) usable = false;
    }
    if (!usable) {
      ssl.SSL_CTX_free(sctx);
      ssl.SSL_CTX_free(cctx);
      continue; // a group or suite this build does not have
    }
    const server = asPointer(ssl.SSL_new(sctx));
    const client = asPointer(ssl.SSL_new(cctx));
    const [cb, sb] = pair();
    ssl.SSL_set_bio(client, cb, cb);
    ssl.SSL_set_bio(server, sb, sb);
    ssl.SSL_set_connect_state(client);
    ssl.SSL_set_accept_state(server);
    for (const s of [client, server]) checkState(snapshot(ssl, s, null));
    let rc = 0;
    let rs = 0;
    for (let i = 0; i < 20 && (rc !== 1 || rs !== 1); i++) {
      if (rc !== 1) rc = ssl.SSL_do_handshake(client);
      // mid-handshake states differ from BEFORE and OK: they make the state offset unique
      if (rc !== 1) checkState(snapshot(ssl, client, null));
      if (rs !== 1) rs = ssl.SSL_do_handshake(server);
      if (rs !== 1) checkState(snapshot(ssl, server, null));
    }
    if (rc !== 1 || rs !== 1) throw new Error(`calibration handshake ${c.serverGroups} failed`);
    handshakes++;
    groupsSeen.push(c.groupId);
    for (const s of [client, server]) {
      const snap = snapshot(ssl, s, c.groupId);
      if (snap.state !== TLS_ST_OK || snap.version !== c.version)
        throw new Error("unexpected handshake result");
      checkState(snap);
      version = intersect(version, SSL_SCAN, 4, (o) => snap.ssl.getInt32(o, true) === snap.version);
      cipher = intersect(cipher, SSL_SCAN, 8, (o) => snap.ssl.getBigUint64(o, true) === snap.cipherPtr);
      session = intersect(session, SSL_SCAN, 8, (o) => snap.ssl.getBigUint64(o, true) === snap.sessionPtr);
      if (snap.cipher) {
        const cv = snap.cipher;
        cipherId = intersect(cipherId, CIPHER_SCAN, 4, (o) => cv.getUint32(o, true) === snap.cipherId);
      }
      if (snap.session) {
        const sv = snap.session;
        kexGroup = intersect(kexGroup, SESSION_SCAN, 2, (o) => sv.getUint16(o, true) === c.groupId);
      }
      if (snap.tls13)
        group13 = intersect(group13, SSL_SCAN, 2, (o) => snap.ssl.getUint16(o, true) === c.groupId);
    }
    ssl.SSL_free(client);
    ssl.SSL_free(server);
    ssl.SSL_CTX_free(sctx);
    ssl.SSL_CTX_free(cctx);
  }
  return {
    library: libssl,
    openssl: versionText,
    handshakes,
    groupsTried: groupsSeen,
    offsets: {
      version: only(version),
      cipher: only(cipher),
      cipherId: only(cipherId),
      session: only(session),
      kexGroup: only(kexGroup),
      group13: only(group13),
      handState: only(handState),
      sslCtx: only(sslCtx),
    },
    handStateBefore: TLS_ST_BEFORE,
    handStateOk: TLS_ST_OK,
    candidates: { version, cipher, cipherId, session, kexGroup, group13, handState, sslCtx },
    ciphers: cipherNames(ssl),
    defaultGroups: defaultGroups(ssl, pair),
  };
}
