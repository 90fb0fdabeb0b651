/**
 * What `--metrics-addr` costs per handshake: the tally the tracer keeps (src/trace/prometheus.ts) against
 * prom-client's own `inc(labels)`, on the label values of real records, and one scrape of the registry.
 * Run: bun bench/metrics.ts [handshakes]   (default 2,000,000; figures go into WORKLOG.md)
 */
import { Counter, Registry } from "prom-client";
import { EMPTY_METRICS } from "../src/trace/metrics.ts";
import { HandshakeTally, type KexFields, metricsRegistry } from "../src/trace/prometheus.ts";

const N = Number(process.argv[2] ?? 2_000_000);
const SHAPES: KexFields[] = [
  { role: "client", kex_class: "classical", negotiated_group: "X25519", tls_version: "TLSv1.3" },
  { role: "server", kex_class: "classical", negotiated_group: "X25519", tls_version: "TLSv1.3" },
  { role: "client", kex_class: "hybrid-pq", negotiated_group: "X25519MLKEM768", tls_version: "TLSv1.3" },
  { role: "server", kex_class: "classical", negotiated_group: "secp384r1", tls_version: "TLSv1.2" },
  { role: null, kex_class: null, negotiated_group: null, tls_version: null },
];
// fresh objects, as the pipeline makes one per record
const records = Array.from({ length: 4096 }, (_, i) => ({ ...SHAPES[i % SHAPES.length]! }));

function time(label: string, count: (r: KexFields) => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) count(records[i & 4095]!);
    best = Math.min(best, ((performance.now() - t0) * 1e6) / N);
  }
  console.log(`${label}: ${best.toFixed(0)} ns per handshake (best of 5 rounds of ${N})`);
  return best;
}

const tally = new HandshakeTally();
time("tally (what the tracer does)", (r) => tally.count(r));
const counter = new Counter({
  name: "bench_total",
  help: "bench",
  labelNames: ["role", "kex_class", "group", "tls_version"],
  registers: [new Registry()],
});
time("prom-client inc(labels)", (r) =>
  counter.inc({
    role: r.role ?? "none",
    kex_class: r.kex_class ?? "none",
    group: r.negotiated_group ?? "none",
    tls_version: r.tls_version ?? "none",
  }),
);
const { scrape } = metricsRegistry(() => ({ trace: EMPTY_METRICS, tally, agent: {} }), {
  rotation: true,
  export: true,
});
const t0 = performance.now();
const scrapes = 1000;
for (let i = 0; i < scrapes; i++) await scrape();
console.log(`one scrape: ${((performance.now() - t0) / scrapes).toFixed(3)} ms`);
