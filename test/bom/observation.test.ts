/**
 * The quick check of a runtime record (isCompleteObservation) against the schema it stands in for: whatever it
 * accepts, the schema accepts and returns unchanged; real trace records take the quick path.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { HandshakeObservationSchema, isCompleteObservation } from "../../src/bom/observation.ts";
import { FIXTURES } from "./cli-run.ts";

const lines = (name: string) =>
  readFileSync(join(FIXTURES, name), "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Values of every JSON type and a few that break one rule each. */
const ODD_VALUES: unknown[] = [
  null,
  "",
  "text",
  "2026-03-01T10:00:00.000100Z",
  "2026-13-01T10:00:00Z",
  0,
  -1,
  0.5,
  1.5,
  7,
  true,
  false,
  [],
  ["X25519"],
  [1],
  {},
  "client",
  "server",
  "classical",
  "hybrid-pq",
  "context",
  "ab".repeat(12),
  "AB".repeat(12),
];

describe("the quick record check", () => {
  const real = lines("demo.jsonl");

  test("every record carnot trace wrote takes the quick path, and the schema returns it unchanged", () => {
    for (const record of real) {
      expect(isCompleteObservation(record)).toBe(true);
      const parsed = v.safeParse(HandshakeObservationSchema, record);
      expect(parsed.success).toBe(true);
      expect(parsed.output).toEqual(record);
    }
  });

  test("a value in any key, or a key removed: accepted only when the schema accepts it unchanged", () => {
    let quick = 0;
    let schemaOnly = 0;
    for (const record of [...real, ...lines("mixed.jsonl")]) {
      const keys = [...Object.keys(record), "host", "container_id", "pod_uid"];
      for (const key of keys) {
        const variants: Record<string, unknown>[] = ODD_VALUES.map((value) => ({ ...record, [key]: value }));
        const { [key]: _gone, ...without } = record;
        variants.push(without);
        for (const variant of variants) {
          const parsed = v.safeParse(HandshakeObservationSchema, variant);
          if (isCompleteObservation(variant)) {
            quick++;
            expect({ key, value: variant[key], accepted: parsed.success }).toEqual({
              key,
              value: variant[key],
              accepted: true,
            });
            expect(parsed.output).toEqual(variant);
          } else if (parsed.success) schemaOnly++;
        }
      }
    }
    // both paths were exercised: the check is not vacuous either way
    expect(quick).toBeGreaterThan(1000);
    expect(schemaOnly).toBeGreaterThan(100);
  });

  test("a record without a key the schema fills in is left to the schema", () => {
    const { role: _r, ...older } = real[0]!;
    expect(isCompleteObservation(older)).toBe(false);
    expect(v.parse(HandshakeObservationSchema, older).role).toBeNull();
  });
});
