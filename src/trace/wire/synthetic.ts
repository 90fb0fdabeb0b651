/**
 * The bytes of a TLS 1.3 handshake's flights, built from scratch: a ClientHello (SNI, groups, one key share,
 * versions, signature algorithms, ALPN), the server's ServerHello + ChangeCipherSpec + protected records, the
 * client's ChangeCipherSpec + Finished + request, and the server's answer. The tracer's warm-up runs its wire
 * path on them, so that nothing of a real connection is needed before it says ready.
 */

const u16 = (n: number) => [(n >> 8) & 255, n & 255];
const u24 = (n: number) => [(n >> 16) & 255, (n >> 8) & 255, n & 255];
const vector16 = (bytes: number[]) => [...u16(bytes.length), ...bytes];
const vector8 = (bytes: number[]) => [bytes.length, ...bytes];
const extension = (type: number, body: number[]) => [...u16(type), ...vector16(body)];
const record = (type: number, body: number[]) => [type, 3, 3, ...u16(body.length), ...body];
const handshake = (type: number, body: number[]) => [type, ...u24(body.length), ...body];
const filled = (n: number, value: number) => new Array<number>(n).fill(value);

const X25519 = 29;
const SECP256R1 = 23;
const TLS13 = 0x0304;
const TLS_AES_128_GCM_SHA256 = 0x1301;

function clientHello(sni: string): number[] {
  const name = [...new TextEncoder().encode(sni)];
  const extensions = [
    ...extension(0, vector16([0, ...vector16(name)])), // server_name
    ...extension(10, vector16([...u16(X25519), ...u16(SECP256R1)])), // supported_groups
    ...extension(13, vector16([...u16(0x0403), ...u16(0x0804)])), // signature_algorithms
    ...extension(16, vector16(vector8([...new TextEncoder().encode("http/1.1")]))), // ALPN
    ...extension(43, vector8([...u16(TLS13), ...u16(0x0303)])), // supported_versions
    ...extension(51, vector16([...u16(X25519), ...vector16(filled(32, 7))])), // key_share
  ];
  const body = [
    ...u16(0x0303),
    ...filled(32, 1), // random
    ...vector8(filled(32, 2)), // legacy session id
    ...vector16([...u16(TLS_AES_128_GCM_SHA256), ...u16(0x1302)]),
    ...vector8([0]), // compression
    ...vector16(extensions),
  ];
  return record(22, handshake(1, body));
}

function serverHello(): number[] {
  const extensions = [
    ...extension(43, u16(TLS13)),
    ...extension(51, [...u16(X25519), ...vector16(filled(32, 9))]),
  ];
  const body = [
    ...u16(0x0303),
    ...filled(32, 3),
    ...vector8(filled(32, 2)),
    ...u16(TLS_AES_128_GCM_SHA256),
    0,
    ...vector16(extensions),
  ];
  return record(22, handshake(2, body));
}

const changeCipherSpec = () => record(20, [1]);
const protectedRecord = (n: number) => record(23, filled(n, 0xaa));

/** The four flights of one handshake, in the order they cross the wire. */
export interface SyntheticFlights {
  clientHello: Uint8Array;
  /** ServerHello, ChangeCipherSpec, the encrypted rest of the server's flight */
  serverFlight: Uint8Array;
  /** ChangeCipherSpec, Finished, a request */
  clientFinished: Uint8Array;
  /** a ticket and the answer */
  serverAnswer: Uint8Array;
}

export function syntheticFlights(sni: string): SyntheticFlights {
  return {
    clientHello: new Uint8Array(clientHello(sni)),
    serverFlight: new Uint8Array([...serverHello(), ...changeCipherSpec(), ...protectedRecord(1100)]),
    clientFinished: new Uint8Array([...changeCipherSpec(), ...protectedRecord(53), ...protectedRecord(80)]),
    serverAnswer: new Uint8Array([...protectedRecord(250), ...protectedRecord(120)]),
  };
}
