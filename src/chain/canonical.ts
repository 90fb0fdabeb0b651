/**
 * Canonical JSON: object keys sorted (UTF-16 code unit order) at every depth, no spaces.
 * Used where a hash must not depend on key order — `raw_hash` of a record without `raw_line`
 * (the verifier re-serializes the parsed record, and JSON.parse moves integer-like keys first)
 * and the seal's mac.
 */
export function canonicalJson(value: unknown, omitTopLevel: readonly string[] = []): string {
  return serialize(value, omitTopLevel);
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
