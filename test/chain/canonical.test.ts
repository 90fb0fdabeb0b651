import { describe, expect, test } from "bun:test";
import { canonicalJson } from "../../src/chain/canonical.ts";

/** Reference: keys sorted by UTF-16 code units at every depth, built key by key. */
function reference(value: unknown, omit: readonly string[] = []): string {
  if (value !== null && typeof value === "object") {
    const toJSON = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof toJSON === "function") return reference(toJSON.call(value));
    if (Array.isArray(value))
      return `[${value.map((v) => (v === undefined || typeof v === "function" ? "null" : reference(v))).join(",")}]`;
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .sort()
      .filter((k) => obj[k] !== undefined && typeof obj[k] !== "function" && !omit.includes(k));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) as string;
}

describe("canonicalJson", () => {
  const cases: Record<string, unknown> = {
    "a trace record": {
      source: "runtime.ebpf",
      sni: "api.example.org",
      groups_offered: ["X25519", "secp256r1"],
      handshake_success: true,
      confidence: 0.95,
      negotiated_group_id: 29,
      error: null,
      raw_hash: "x",
      chain: "y",
    },
    "nested objects and arrays": { z: { b: [1, { d: 2, c: [null, "é\n\u2028"] }], a: -0.5 }, a: [] },
    "undefined and functions are skipped": { b: undefined, a: [undefined, () => 1, 3], c: () => 2 },
    "integer-like keys (the engine would put them first)": { b: 1, "10": 2, "9": 3, a: { "2": 1, x: 0 } },
    toJSON: { when: new Date(0), a: { toJSON: () => ({ y: 1, x: 2 }) } },
    "unicode key order": { é: 1, e: 2, E: 3, "\u{1F600}": 4, "\uFFFF": 5 },
  };
  for (const [name, value] of Object.entries(cases)) {
    test(`${name}: keys sorted at every depth, same text as the key-by-key form`, () => {
      expect(canonicalJson(value, ["raw_hash", "chain"])).toBe(reference(value, ["raw_hash", "chain"]));
    });
  }
  test("what JSON cannot hold is refused", () => {
    expect(() => canonicalJson(undefined)).toThrow();
    expect(() => canonicalJson(() => 1)).toThrow();
  });
});
