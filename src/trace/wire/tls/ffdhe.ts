/**
 * The RFC 7919 finite-field groups, recognised from a TLS 1.2 DHE ServerKeyExchange's prime. The primes are
 * computed from the RFC's own definition (§A): p = 2^b − 2^(b−64) + (⌊2^(b−130)·e⌋ + X)·2^64 − 1, so no
 * table of kilobytes of hex is kept; a test compares them with OpenSSL's.
 */

/** Bits, code point and the RFC's X for each group. */
const FFDHE: ReadonlyArray<readonly [bits: number, codePoint: number, x: bigint]> = [
  [2048, 256, 560316n],
  [3072, 257, 2625351n],
  [4096, 258, 5736041n],
  [6144, 259, 15705020n],
  [8192, 260, 10965728n],
];

/** ⌊2^n · e⌋, from e = Σ 1/k! with guard bits so that the truncation errors stay below one unit. */
function floorTwoPowTimesE(n: number): bigint {
  const guard = 64n;
  let term = 1n << (BigInt(n) + guard);
  let sum = 0n;
  for (let k = 1n; term > 0n; k++) {
    sum += term;
    term /= k;
  }
  return sum >> guard;
}

/** The RFC 7919 prime of `bits` bits, big-endian. */
export function ffdhePrime(bits: number, x: bigint): Uint8Array {
  const b = BigInt(bits);
  const p = (1n << b) - (1n << (b - 64n)) + (floorTwoPowTimesE(bits - 130) + x) * (1n << 64n) - 1n;
  return Uint8Array.from(Buffer.from(p.toString(16).padStart(bits / 4, "0"), "hex"));
}

/** Recognises the RFC 7919 primes; each is computed the first time a prime of its size is seen. */
export class FfdheGroups {
  readonly #primes = new Map<number, Uint8Array>();

  /** The group's code point when `prime` is one of RFC 7919's, else null. */
  codePointOf(prime: Uint8Array): number | null {
    // the RFC's primes start and end with 64 one bits: most other primes are rejected without computing
    if (prime.length < 16 || prime[0] !== 0xff || prime[prime.length - 1] !== 0xff) return null;
    for (const [bits, codePoint, x] of FFDHE) {
      if (prime.length !== bits / 8) continue;
      let known = this.#primes.get(bits);
      if (known === undefined) {
        known = ffdhePrime(bits, x);
        this.#primes.set(bits, known);
      }
      return Buffer.compare(known, prime) === 0 ? codePoint : null;
    }
    return null;
  }
}

export const FFDHE_GROUPS = FFDHE;
