/** What a calibration finds for one exact libssl file: the verified struct offsets and the library's own facts. */
import * as v from "valibot";

const offset = v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0)));

export const CalibrationSchema = v.object({
  library: v.string(),
  /** OpenSSL_version(OPENSSL_VERSION) of the loaded library */
  openssl: v.string(),
  handshakes: v.number(),
  groupsTried: v.array(v.number()),
  offsets: v.object({
    /** int SSL version in the SSL object */
    version: offset,
    /** const SSL_CIPHER * negotiated, in the SSL object */
    cipher: offset,
    /** uint32 id (0x0300xxxx) inside SSL_CIPHER */
    cipherId: offset,
    /** SSL_SESSION * in the SSL object */
    session: offset,
    /** uint16 kex group inside SSL_SESSION */
    kexGroup: offset,
    /** uint16 group id of a TLS 1.3 key exchange in the SSL object */
    group13: offset,
    /** int handshake state (OSSL_HANDSHAKE_STATE) in the SSL object */
    handState: offset,
    /** the SSL_CTX * given to SSL_new (kept when SSL_set_SSL_CTX switches the current one) */
    sslCtx: offset,
  }),
  handStateBefore: v.number(),
  handStateOk: v.number(),
  candidates: v.record(v.string(), v.nullable(v.array(v.number()))),
  /** IANA code (decimal string) → IANA cipher suite name, as this library names them */
  ciphers: v.record(v.string(), v.string()),
  /** the library's default groups list (IANA code points), null when it could not be read whole */
  defaultGroups: v.nullable(v.array(v.number())),
});
export type Calibration = v.InferOutput<typeof CalibrationSchema>;
