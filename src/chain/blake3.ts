/**
 * BLAKE3-256 for the hash chain: hash and keyed hash of inputs of any length, 32-byte output.
 * Written for the writer's hot path — one reusable scratch buffer and fixed word arrays per
 * instance, no allocation per hash — because @noble/hashes cost ~2 µs per short line here
 * (bench/chain.ts). Validated against @noble/hashes and the official test vectors (test/chain/).
 */

const IV = Uint32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
);
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const KEYED_HASH = 16;
const CHUNK_LEN = 1024;
const BLOCK_LEN = 64;
/** Enough chaining values for any input below 2^64 bytes. */
const MAX_DEPTH = 54;

/** The 32-byte IV as the key of an unkeyed hash. */
export const UNKEYED: Readonly<Uint32Array> = IV;

/** The name the engine knows the compression function by (src/trace/engine.ts lets only it reach the FTL tier). */
export const COMPRESS_FUNCTION_NAME: string = compress.name;

/**
 * The compression function: 7 rounds unrolled over locals, the message permutation applied to
 * the word names of each round (no copies). Writes the 8-word chaining value
 * (state[0..7] ^ state[8..15]) to out[outOff..]. `cv` and `out` may be the same array.
 */
function compress(
  cv: Uint32Array,
  cvOff: number,
  m: Uint32Array,
  mOff: number,
  counter: number,
  blockLen: number,
  flags: number,
  out: Uint32Array,
  outOff: number,
): void {
  const m0 = m[mOff]! | 0,
    m1 = m[mOff + 1]! | 0,
    m2 = m[mOff + 2]! | 0,
    m3 = m[mOff + 3]! | 0;
  const m4 = m[mOff + 4]! | 0,
    m5 = m[mOff + 5]! | 0,
    m6 = m[mOff + 6]! | 0,
    m7 = m[mOff + 7]! | 0;
  const m8 = m[mOff + 8]! | 0,
    m9 = m[mOff + 9]! | 0,
    m10 = m[mOff + 10]! | 0,
    m11 = m[mOff + 11]! | 0;
  const m12 = m[mOff + 12]! | 0,
    m13 = m[mOff + 13]! | 0,
    m14 = m[mOff + 14]! | 0,
    m15 = m[mOff + 15]! | 0;
  let v0 = cv[cvOff]! | 0,
    v1 = cv[cvOff + 1]! | 0,
    v2 = cv[cvOff + 2]! | 0,
    v3 = cv[cvOff + 3]! | 0;
  let v4 = cv[cvOff + 4]! | 0,
    v5 = cv[cvOff + 5]! | 0,
    v6 = cv[cvOff + 6]! | 0,
    v7 = cv[cvOff + 7]! | 0;
  let v8 = 0x6a09e667 | 0,
    v9 = 0xbb67ae85 | 0,
    v10 = 0x3c6ef372 | 0,
    v11 = 0xa54ff53a | 0;
  let v12 = counter | 0,
    v13 = (counter / 0x100000000) | 0,
    v14 = blockLen | 0,
    v15 = flags | 0;
  // round 1
  v0 = (v0 + v4 + m0) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m1) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m2) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m3) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m4) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m5) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m6) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m7) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m8) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m9) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m10) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m11) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m12) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m13) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m14) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m15) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 2
  v0 = (v0 + v4 + m2) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m6) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m3) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m10) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m7) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m0) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m4) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m13) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m1) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m11) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m12) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m5) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m9) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m14) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m15) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m8) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 3
  v0 = (v0 + v4 + m3) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m4) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m10) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m12) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m13) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m2) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m7) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m14) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m6) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m5) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m9) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m0) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m11) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m15) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m8) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m1) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 4
  v0 = (v0 + v4 + m10) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m7) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m12) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m9) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m14) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m3) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m13) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m15) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m4) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m0) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m11) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m2) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m5) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m8) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m1) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m6) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 5
  v0 = (v0 + v4 + m12) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m13) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m9) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m11) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m15) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m10) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m14) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m8) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m7) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m2) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m5) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m3) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m0) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m1) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m6) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m4) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 6
  v0 = (v0 + v4 + m9) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m14) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m11) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m5) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m8) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m12) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m15) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m1) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m13) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m3) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m0) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m10) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m2) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m6) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m4) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m7) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  // round 7
  v0 = (v0 + v4 + m11) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 16) | (v12 << 16);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m15) | 0;
  v12 ^= v0;
  v12 = (v12 >>> 8) | (v12 << 24);
  v8 = (v8 + v12) | 0;
  v4 ^= v8;
  v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m5) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 16) | (v13 << 16);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m0) | 0;
  v13 ^= v1;
  v13 = (v13 >>> 8) | (v13 << 24);
  v9 = (v9 + v13) | 0;
  v5 ^= v9;
  v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m1) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 16) | (v14 << 16);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m9) | 0;
  v14 ^= v2;
  v14 = (v14 >>> 8) | (v14 << 24);
  v10 = (v10 + v14) | 0;
  v6 ^= v10;
  v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m8) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 16) | (v15 << 16);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m6) | 0;
  v15 ^= v3;
  v15 = (v15 >>> 8) | (v15 << 24);
  v11 = (v11 + v15) | 0;
  v7 ^= v11;
  v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m14) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 16) | (v15 << 16);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m10) | 0;
  v15 ^= v0;
  v15 = (v15 >>> 8) | (v15 << 24);
  v10 = (v10 + v15) | 0;
  v5 ^= v10;
  v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m2) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 16) | (v12 << 16);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m12) | 0;
  v12 ^= v1;
  v12 = (v12 >>> 8) | (v12 << 24);
  v11 = (v11 + v12) | 0;
  v6 ^= v11;
  v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m3) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 16) | (v13 << 16);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m4) | 0;
  v13 ^= v2;
  v13 = (v13 >>> 8) | (v13 << 24);
  v8 = (v8 + v13) | 0;
  v7 ^= v8;
  v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m7) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 16) | (v14 << 16);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m13) | 0;
  v14 ^= v3;
  v14 = (v14 >>> 8) | (v14 << 24);
  v9 = (v9 + v14) | 0;
  v4 ^= v9;
  v4 = (v4 >>> 7) | (v4 << 25);
  out[outOff] = v0 ^ v8;
  out[outOff + 1] = v1 ^ v9;
  out[outOff + 2] = v2 ^ v10;
  out[outOff + 3] = v3 ^ v11;
  out[outOff + 4] = v4 ^ v12;
  out[outOff + 5] = v5 ^ v13;
  out[outOff + 6] = v6 ^ v14;
  out[outOff + 7] = v7 ^ v15;
}

/** Lowercase hex of 8 little-endian words (a 32-byte digest). */
export function wordsToHex(w: Uint32Array, off = 0): string {
  return new Uint8Array(w.buffer, w.byteOffset + off * 4, 32).toHex();
}

/** 8 little-endian words from 32 bytes. */
export function bytesToWords(bytes: Uint8Array): Uint32Array {
  if (bytes.length !== 32) throw new Error(`a BLAKE3 key is 32 bytes, got ${bytes.length}`);
  const w = new Uint32Array(8);
  for (let i = 0; i < 8; i++) {
    w[i] = bytes[4 * i]! | (bytes[4 * i + 1]! << 8) | (bytes[4 * i + 2]! << 16) | (bytes[4 * i + 3]! << 24);
  }
  return w;
}

/** 32 bytes from 8 little-endian words. */
export function wordsToBytes(w: Uint32Array, off = 0): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const x = w[off + i]!;
    b[4 * i] = x;
    b[4 * i + 1] = x >>> 8;
    b[4 * i + 2] = x >>> 16;
    b[4 * i + 3] = x >>> 24;
  }
  return b;
}

/** 8 words from 64 lowercase hex characters, or null when the text is not that. */
export function hexToWords(hex: string): Uint32Array | null {
  if (!/^[0-9a-f]{64}$/.test(hex)) return null;
  const w = new Uint32Array(8);
  for (let i = 0; i < 8; i++) {
    let x = 0;
    for (let j = 3; j >= 0; j--)
      x = (x << 8) | Number.parseInt(hex.slice(8 * i + 2 * j, 8 * i + 2 * j + 2), 16);
    w[i] = x;
  }
  return w;
}

/** True when two 8-word digests are equal. */
export function sameWords(a: Uint32Array, aOff: number, b: Uint32Array, bOff: number): boolean {
  let d = 0;
  for (let i = 0; i < 8; i++) d |= a[aOff + i]! ^ b[bOff + i]!;
  return d === 0;
}

/**
 * A reusable BLAKE3 hasher. Input goes into its scratch buffer (`encode` for strings, `load` for
 * bytes), then `digest` hashes the first `len` scratch bytes. Not shared between writers.
 */
export class Blake3 {
  /** Scratch input; always zero-padded to a whole block past the loaded length. */
  scratch: Buffer;
  private words: Uint32Array;
  private readonly encoder = new TextEncoder();
  private readonly cv = new Uint32Array(8);
  private readonly parentBlock = new Uint32Array(16);
  private readonly stack = new Uint32Array(MAX_DEPTH * 8);
  /** The last digest, 8 little-endian words. */
  readonly out = new Uint32Array(8);
  private readonly outBytes = new Uint8Array(this.out.buffer);

  constructor(capacity = 4096) {
    if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1)
      throw new Error("BLAKE3: big-endian hosts are not supported");
    this.scratch = Buffer.alloc(0);
    this.words = new Uint32Array(0);
    this.reserve(capacity);
  }

  /** Make room for `len` input bytes plus block padding. */
  reserve(len: number): void {
    const need = len + BLOCK_LEN;
    if (need <= this.scratch.length) return;
    let cap = Math.max(4096, this.scratch.length);
    while (cap < need) cap *= 2;
    // a Buffer: copy() moves bytes out without allocating a view per record
    const bytes = new ArrayBuffer(cap);
    this.scratch = Buffer.from(bytes);
    this.words = new Uint32Array(bytes);
  }

  /** UTF-8 encode `s` into the scratch buffer; returns its byte length. */
  encode(s: string): number {
    if (s.length * 3 + BLOCK_LEN > this.scratch.length) this.reserve(s.length * 3);
    const len = this.encoder.encodeInto(s, this.scratch).written;
    this.pad(len);
    return len;
  }

  /** Copy bytes into the scratch buffer; returns their length. */
  load(bytes: Uint8Array): number {
    this.reserve(bytes.length);
    this.scratch.set(bytes);
    this.pad(bytes.length);
    return bytes.length;
  }

  /** Zero the bytes after `len` up to the end of its last block, so blocks read straight from `words`. */
  pad(len: number): void {
    const end = len === 0 ? BLOCK_LEN : (len + BLOCK_LEN - 1) & ~(BLOCK_LEN - 1);
    // at most 63 bytes: a loop is cheaper than a native fill call
    const scratch = this.scratch;
    for (let i = len; i < end; i++) scratch[i] = 0;
  }

  /**
   * Hash scratch[0..len) into `out`: keyed with the 8 words `key` at `keyOff`, or unkeyed with
   * `UNKEYED`. The caller must have padded (encode/load/pad do).
   */
  digest(len: number, key: Uint32Array = IV, keyOff = 0): Uint32Array {
    const flags = key === IV ? 0 : KEYED_HASH;
    if (len <= CHUNK_LEN) {
      this.chunk(0, len, 0, key, keyOff, flags | ROOT, this.out, 0);
      return this.out;
    }
    const chunks = Math.ceil(len / CHUNK_LEN);
    let sp = 0;
    for (let c = 0; c < chunks - 1; c++) {
      this.chunk(c * CHUNK_LEN, CHUNK_LEN, c, key, keyOff, flags, this.stack, sp * 8);
      sp++;
      // merge completed subtrees: one merge per trailing zero bit of the chunk count
      for (let total = c + 1; (total & 1) === 0; total >>>= 1) {
        this.parent((sp - 2) * 8, this.stack, (sp - 1) * 8, key, keyOff, flags, this.stack, (sp - 2) * 8);
        sp--;
      }
    }
    const last = chunks - 1;
    this.chunk(last * CHUNK_LEN, len - last * CHUNK_LEN, last, key, keyOff, flags, this.cv, 0);
    while (sp > 0) {
      sp--;
      const root = sp === 0 ? ROOT : 0;
      this.parent(sp * 8, this.cv, 0, key, keyOff, flags | root, root ? this.out : this.cv, 0);
    }
    return this.out;
  }

  /** The last digest as lowercase hex. */
  outHex(): string {
    return this.outBytes.toHex();
  }

  /** Hex digest of a string (UTF-8). */
  hexOfString(s: string, key: Uint32Array = IV, keyOff = 0): string {
    this.digest(this.encode(s), key, keyOff);
    return this.outBytes.toHex();
  }

  /** Hex digest of bytes. */
  hexOfBytes(bytes: Uint8Array, key: Uint32Array = IV, keyOff = 0): string {
    this.digest(this.load(bytes), key, keyOff);
    return this.outBytes.toHex();
  }

  /**
   * out = blake3_keyed(key, the 32 bytes of `msg`'s 8 words): one compression (a one-block, one-chunk
   * input). Leaves the scratch buffer alone, so it can run between loading a record and hashing it.
   */
  keyedWords(key: Uint32Array, msg: Uint32Array, out: Uint32Array): void {
    const block = this.parentBlock;
    for (let i = 0; i < 8; i++) {
      block[i] = msg[i]!;
      block[8 + i] = 0;
    }
    compress(key, 0, block, 0, 0, 32, KEYED_HASH | CHUNK_START | CHUNK_END | ROOT, out, 0);
  }

  private chunk(
    byteOff: number,
    len: number,
    counter: number,
    key: Uint32Array,
    keyOff: number,
    flags: number,
    out: Uint32Array,
    outOff: number,
  ): void {
    const cv = this.cv;
    for (let i = 0; i < 8; i++) cv[i] = key[keyOff + i]!;
    const blocks = len === 0 ? 1 : Math.ceil(len / BLOCK_LEN);
    const root = flags & ROOT;
    const base = flags & ~ROOT;
    let wOff = byteOff >>> 2;
    for (let b = 0; b < blocks; b++) {
      const isLast = b === blocks - 1;
      const blockLen = isLast ? len - b * BLOCK_LEN : BLOCK_LEN;
      const f = base | (b === 0 ? CHUNK_START : 0) | (isLast ? CHUNK_END | root : 0);
      compress(cv, 0, this.words, wOff, counter, blockLen, f, isLast ? out : cv, isLast ? outOff : 0);
      wOff += 16;
    }
  }

  /** Parent node of the left CV at stack[leftOff] and the right CV at right[rightOff]. */
  private parent(
    leftOff: number,
    right: Uint32Array,
    rightOff: number,
    key: Uint32Array,
    keyOff: number,
    flags: number,
    out: Uint32Array,
    outOff: number,
  ): void {
    const block = this.parentBlock;
    for (let i = 0; i < 8; i++) {
      block[i] = this.stack[leftOff + i]!;
      block[8 + i] = right[rightOff + i]!;
    }
    compress(key, keyOff, block, 0, 0, BLOCK_LEN, flags | PARENT, out, outOff);
  }
}
