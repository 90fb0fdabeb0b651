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
const show = (v: unknown) => (v === undefined ? "-" : Array.isArray(v) ? v.join(",") : String(v));
// one row per case and side: expected → observed, over every field compared
const keyOf = (r: (typeof result.rows)[number]) => `${r.case} [${r.side}]`;
const byCase = new Map<string, typeof result.rows>();
for (const r of result.rows) byCase.set(keyOf(r), [...(byCase.get(keyOf(r)) ?? []), r]);
const same = (r: (typeof result.rows)[number]) => JSON.stringify(r.expected) === JSON.stringify(r.observed);
const fields = (rows: typeof result.rows, side: "expected" | "observed") =>
  rows
    .filter((r) => r.field !== "lines" && r.field !== "groups_offered")
    .map((r) => show(r[side]))
    .join(" ");
const table = [...byCase.entries()].map(([name, rows]) => ({
  case: name,
  expected: fields(rows, "expected"),
  observed: fields(rows, "observed"),
  ok: rows.every(same) ? "yes" : "NO",
}));
const cols = ["case", "expected", "observed", "ok"] as const;
const width = (k: (typeof cols)[number]) => Math.max(k.length, ...table.map((t) => t[k].length));
console.log(
  "group, kex_class, tls_version, cipher as the peer reports them (expected) and as carnot wrote them",
);
console.log(cols.map((c) => c.padEnd(width(c))).join("  "));
for (const t of table) console.log(cols.map((c) => t[c].padEnd(width(c))).join("  "));
const valueRows = result.rows.filter((r) => r.field !== "lines");
const correct = valueRows.filter(same).length;
const missing = valueRows.filter((r) => !same(r) && r.observed === null).length;
const wrong = valueRows.length - correct - missing;
const cases = new Set(result.rows.map((r) => r.case)).size;
console.log(
  `\n${cases} cases, ${valueRows.length} values: ${correct} correct (${((100 * correct) / valueRows.length).toFixed(1)} %), ${wrong} wrong, ${missing} missing`,
);
for (const s of result.skipped) console.log(`skipped: ${s}`);
process.exit(result.rows.every(same) ? 0 : 1);
