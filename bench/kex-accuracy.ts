/**
 * `bun bench/kex-accuracy.ts` (root): the key-exchange accuracy table of issue 4 — each case of the matrix,
 * what the peer reported and what `carnot trace` wrote — and the totals (correct / wrong / missing).
 */
import { runKexMatrix } from "../test/support/kex-matrix.ts";
import { traceSkipReason } from "../test/support/tracer.ts";

const skip = traceSkipReason();
if (skip) {
  console.error(`kex-accuracy: ${skip}`);
  process.exit(1);
}
const result = await runKexMatrix();
const show = (v: unknown) => (v === undefined ? "-" : JSON.stringify(v));
const table = result.rows.map((r) => ({
  case: `${r.case} [${r.side}]`,
  field: r.field,
  expected: show(r.expected),
  observed: show(r.observed),
  ok: JSON.stringify(r.expected) === JSON.stringify(r.observed),
}));
const width = (k: "case" | "field" | "expected" | "observed") =>
  Math.max(k.length, ...table.map((t) => t[k].length));
const cols = ["case", "field", "expected", "observed"] as const;
console.log(`${cols.map((c) => c.padEnd(width(c))).join("  ")}  ok`);
for (const t of table)
  console.log(`${cols.map((c) => t[c].padEnd(width(c))).join("  ")}  ${t.ok ? "yes" : "NO"}`);
const valueRows = table.filter((t) => t.field !== "lines");
const correct = valueRows.filter((t) => t.ok).length;
const missing = valueRows.filter((t) => !t.ok && t.observed === "null").length;
const wrong = valueRows.length - correct - missing;
const cases = new Set(result.rows.map((r) => r.case)).size;
console.log(
  `\n${cases} cases, ${valueRows.length} values: ${correct} correct (${((100 * correct) / valueRows.length).toFixed(1)} %), ${wrong} wrong, ${missing} missing`,
);
for (const s of result.skipped) console.log(`skipped: ${s}`);
process.exit(wrong + missing === 0 && table.every((t) => t.ok) ? 0 : 1);
