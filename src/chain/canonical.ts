/**
 * Canonical JSON: object keys sorted (UTF-16 code unit order) at every depth, no spaces.
 * Used where a hash must not depend on key order — `raw_hash` of a record without `raw_line`
 * (the verifier re-serializes the parsed record, and JSON.parse moves integer-like keys first)
 * and the seal's mac.
 */
export function canonicalJson(value: unknown, omitTopLevel: readonly string[] = []): string {
  const sorted = sortedCopy(value, omitTopLevel);
  // JSON.stringify of key-sorted copies is the same text, twice as fast; integer-like keys would be
  // enumerated first by the engine, so objects holding one take the key-by-key path
  return sorted === INTEGER_KEY ? serialize(value, omitTopLevel) : (JSON.stringify(sorted) as string);
}

/** Marks a value that holds an object with an integer-like key (JSON.stringify would reorder it). */
const INTEGER_KEY: unique symbol = Symbol("integer-like key");
const INTEGER_LIKE = /^(?:0|[1-9]\d*)$/;

/** The value with every object's keys in sorted order (same values otherwise), or INTEGER_KEY. */
function sortedCopy(value: unknown, omit: readonly string[]): unknown {
  if (value === null || typeof value !== "object") {
    if (value === undefined || typeof value === "function" || typeof value === "symbol")
      return serializeOrThrow(value);
    return value;
  }
  const json = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof json === "function") return sortedCopy(json.call(value), []);
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const c = isSkipped(v) ? null : sortedCopy(v, []);
      if (c === INTEGER_KEY) return INTEGER_KEY;
      out[i] = c;
    }
    return out;
  }
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj).sort()) {
    if (INTEGER_LIKE.test(key)) return INTEGER_KEY;
    const v = obj[key];
    if (isSkipped(v) || omit.includes(key)) continue;
    const c = sortedCopy(v, []);
    if (c === INTEGER_KEY) return INTEGER_KEY;
    out[key] = c;
  }
  return out;
}

/** A top-level value JSON cannot hold: the same error as the key-by-key path. */
function serializeOrThrow(value: unknown): never {
  serialize(value, []);
  throw new TypeError(`cannot serialize a ${typeof value} as JSON`);
}

function serialize(value: unknown, omit: readonly string[]): string {
  if (value !== null && typeof value === "object") {
    const json = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof json === "function") return serialize(json.call(value), []);
    if (Array.isArray(value)) {
      // as JSON.stringify: undefined, functions and symbols inside arrays become null
      return `[${value.map((v) => (isSkipped(v) ? "null" : serialize(v, []))).join(",")}]`;
    }
    const obj = value as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(obj).sort()) {
      const v = obj[key];
      if (isSkipped(v) || omit.includes(key)) continue;
      parts.push(`${JSON.stringify(key)}:${serialize(v, [])}`);
    }
    return `{${parts.join(",")}}`;
  }
  const s = JSON.stringify(value);
  if (s === undefined) throw new TypeError(`cannot serialize a ${typeof value} as JSON`);
  return s;
}

function isSkipped(v: unknown): boolean {
  return v === undefined || typeof v === "function" || typeof v === "symbol";
}
