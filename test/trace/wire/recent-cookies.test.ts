/**
 * The wire source's memory of written connections: the last N cookies, nothing older, whatever their values
 * (cookies past 2^32, cookies that share a first slot), checked against a plain list kept beside it.
 */
import { describe, expect, test } from "bun:test";
import { RecentCookies } from "../../../src/trace/wire/recent-cookies.ts";

/** The same memory the slow way: the last `capacity` distinct cookies in a list. */
function reference(capacity: number) {
  const list: number[] = [];
  return {
    add(cookie: number) {
      if (list.includes(cookie)) return;
      if (list.length === capacity) list.shift();
      list.push(cookie);
    },
    has: (cookie: number) => list.includes(cookie),
  };
}

/** A small deterministic generator (xorshift), so that a failure names its seed. */
function random(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe("RecentCookies", () => {
  test("remembers the last N cookies and forgets the oldest first", () => {
    const recent = new RecentCookies(3);
    for (const c of [10, 20, 30]) recent.add(c);
    expect([10, 20, 30].map((c) => recent.has(c))).toEqual([true, true, true]);
    recent.add(40);
    expect([10, 20, 30, 40].map((c) => recent.has(c))).toEqual([false, true, true, true]);
    expect(recent.size).toBe(3);
    // a cookie added again is not a new entry: it does not push another one out
    recent.add(40);
    expect(recent.has(20)).toBe(true);
  });

  test("cookies past 2^32 and 2^48 are told apart from their low halves", () => {
    const recent = new RecentCookies(8);
    const big = [2 ** 32 + 5, 2 ** 48 + 5, 2 ** 52 + 7];
    for (const c of big) recent.add(c);
    expect(big.map((c) => recent.has(c))).toEqual([true, true, true]);
    expect([5, 7, 2 ** 32 + 7].map((c) => recent.has(c))).toEqual([false, false, false]);
  });

  test("agrees with a plain list over long runs of adds, with many cookies sharing slots", () => {
    for (const [capacity, range, seed] of [
      [1, 4, 1],
      [7, 20, 2],
      [64, 200, 3],
      [1000, 5000, 4],
      [1000, 1500, 5],
    ] as const) {
      const recent = new RecentCookies(capacity);
      const ref = reference(capacity);
      const next = random(seed);
      for (let i = 0; i < 20_000; i++) {
        const cookie = (next() % range) * 2 ** 20 + 1; // multiples of 2^20: low bits alike
        recent.add(cookie);
        ref.add(cookie);
        const probe = (next() % range) * 2 ** 20 + 1;
        if (recent.has(probe) !== ref.has(probe))
          throw new Error(`capacity ${capacity}, seed ${seed}, step ${i}: ${probe} disagrees`);
      }
      expect(recent.size).toBe(Math.min(capacity, range));
    }
  });
});
