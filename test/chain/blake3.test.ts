import { describe, expect, test } from "bun:test";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { Blake3, bytesToWords, hexToWords, wordsToHex } from "../../src/chain/blake3.ts";
import vectors from "./blake3-vectors.json" with { type: "json" };

/** Deterministic pseudo-random bytes (xorshift32), so a failure names a reproducible length. */
function pseudoRandomBytes(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 255;
  }
  return out;
}

describe("BLAKE3", () => {
  const key = new TextEncoder().encode(vectors.key);
  const keyWords = bytesToWords(key);

  test.each(vectors.cases.map((c) => [c.input_len, c] as const))("official vector, %i bytes", (len, c) => {
    const input = new Uint8Array(len).map((_, i) => i % 251);
    const h = new Blake3();
    expect(h.hexOfBytes(input)).toBe(c.hash);
    expect(h.hexOfBytes(input, keyWords)).toBe(c.keyed_hash);
  });

  test("matches @noble/hashes on 600 lengths 0..5000, keyed and unkeyed, one reused instance", () => {
    const h = new Blake3(64);
    const lengths = [0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 4096, 4097, 5000];
    for (let i = 0; lengths.length < 600; i++) lengths.push((i * 7919 + 13) % 5001);
    // decreasing lengths after long ones catch stale scratch bytes that padding must clear
    lengths.sort((a, b) => ((a * 31) % 97) - ((b * 31) % 97));
    const mismatches: string[] = [];
    for (const [i, len] of lengths.entries()) {
      const input = pseudoRandomBytes(len, i + 1);
      const k = pseudoRandomBytes(32, 1000 + i);
      if (h.hexOfBytes(input) !== bytesToHex(nobleBlake3(input))) mismatches.push(`unkeyed ${len}`);
      if (h.hexOfBytes(input, bytesToWords(k)) !== bytesToHex(nobleBlake3(input, { key: k }))) {
        mismatches.push(`keyed ${len}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  test("keyedWords (a v2 link key: a 32-byte message in one compression) matches @noble/hashes; scratch untouched", () => {
    const h = new Blake3(64);
    h.load(new Uint8Array(40).fill(9));
    const scratch = Buffer.from(h.scratch);
    const out = new Uint32Array(8);
    for (let i = 0; i < 50; i++) {
      const k = pseudoRandomBytes(32, 2000 + i);
      const msg = pseudoRandomBytes(32, 3000 + i);
      h.keyedWords(bytesToWords(k), bytesToWords(msg), out);
      expect(wordsToHex(out)).toBe(bytesToHex(nobleBlake3(msg, { key: k })));
    }
    expect(Buffer.from(h.scratch).equals(scratch)).toBe(true);
  });

  test("strings are hashed as UTF-8, also when they hold multi-byte characters and lone surrogates", () => {
    const h = new Blake3(16);
    for (const s of ["", "abc", "päth/日本語/🦀", `${"x".repeat(3000)}é`, "\ud800 lone"]) {
      expect(h.hexOfString(s)).toBe(bytesToHex(nobleBlake3(new TextEncoder().encode(s))));
    }
  });

  test("hex and word conversions round-trip; bad hex is rejected", () => {
    const w = Uint32Array.of(0x01234567, 0x89abcdef, 0, 0xffffffff, 1, 2, 3, 4);
    const hex = wordsToHex(w);
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    expect(hex.slice(0, 8)).toBe("67452301");
    expect(Array.from(hexToWords(hex)!)).toEqual(Array.from(w));
    expect(hexToWords(hex.toUpperCase())).toBeNull();
    expect(hexToWords(hex.slice(1))).toBeNull();
    expect(() => bytesToWords(new Uint8Array(31))).toThrow("32 bytes");
  });
});
