/**
 * `--metrics-addr HOST:PORT`: the tracer's counters in Prometheus text format at `/metrics` (prom-client's
 * registry and exposition). The counters themselves stay where they are counted (the pipeline, the rotation,
 * the exporter) and are read once per scrape; only the handshakes by key exchange are counted here, once per
 * record, in a tally keyed by small integers — prom-client's own `inc(labels)` costs 4 times as much per
 * handshake (bench/metrics.ts) — and handed to prom-client at scrape time.
 *
 * Every label has a bounded set of values: a value outside the known set is "other", a missing one "none";
 * there are no per-SNI, per-pid or per-process labels.
 */
import { Counter, Gauge, Registry } from "prom-client";
import { CarnotError, systemReason } from "../errors.ts";
import type { ListenAddress } from "../serve/server.ts";
import { GROUPS } from "./groups.ts";
import type { TraceMetrics } from "./metrics.ts";
import { TLS_VERSIONS } from "./wire/tls/names.ts";

const ROLES = ["client", "server"] as const;
const KEX_CLASSES = ["classical", "hybrid-pq", "pq"] as const;
const VERSIONS = [...TLS_VERSIONS.values()];
const GROUP_NAMES = GROUPS.map((g) => g.name);
/** Index 0 of every dimension: the value is missing (null); the last: outside the known set. */
const NONE = "none";
const OTHER = "other";

/** The fields of a record the tally reads. */
export interface KexFields {
  role: string | null;
  kex_class: string | null;
  negotiated_group: string | null;
  tls_version: string | null;
}

/** value → 1-based index in `known`; 0 for null, known.length + 1 for anything else. */
function indexer(known: readonly string[]): { index(v: string | null): number; names: string[] } {
  const map = new Map(known.map((name, i) => [name, i + 1]));
  const other = known.length + 1;
  return { index: (v) => (v === null ? 0 : (map.get(v) ?? other)), names: [NONE, ...known, OTHER] };
}

const role = indexer(ROLES);
const kexClass = indexer(KEX_CLASSES);
const group = indexer(GROUP_NAMES);
const version = indexer(VERSIONS);
const KEX_RADIX = KEX_CLASSES.length + 2;
const GROUP_RADIX = GROUP_NAMES.length + 2;
const VERSION_RADIX = VERSIONS.length + 2;

/** Handshakes counted by role, key-exchange class, negotiated group and TLS version. */
export class HandshakeTally {
  readonly #counts = new Map<number, number>();

  /** Once per record, before it is written. */
  count(r: KexFields): void {
    const key =
      ((role.index(r.role) * KEX_RADIX + kexClass.index(r.kex_class)) * GROUP_RADIX +
        group.index(r.negotiated_group)) *
        VERSION_RADIX +
      version.index(r.tls_version);
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Every combination seen, with its labels. */
  *entries(): Generator<[{ role: string; kex_class: string; group: string; tls_version: string }, number]> {
    for (const [key, n] of this.#counts) {
      let k = key;
      const v = k % VERSION_RADIX;
      k = Math.floor(k / VERSION_RADIX);
      const g = k % GROUP_RADIX;
      k = Math.floor(k / GROUP_RADIX);
      const c = k % KEX_RADIX;
      const r = Math.floor(k / KEX_RADIX);
      yield [
        {
          role: role.names[r]!,
          kex_class: kexClass.names[c]!,
          group: group.names[g]!,
          tls_version: version.names[v]!,
        },
        n,
      ];
    }
  }
}

/** What a scrape reads: the pipeline's counters, the tally, and the agent's own (rotation, export). */
export interface MetricsSnapshot {
  trace: TraceMetrics;
  tally: HandshakeTally;
  /** counters of the rotation and the exporter, by metric name (without the carnot_trace_ prefix) */
  agent: Record<string, number>;
}

/** A counter whose value is read from the snapshot at scrape time (set, not incremented). */
type Reader = (s: MetricsSnapshot) => Iterable<[Record<string, string>, number]>;

const single =
  (pick: (m: TraceMetrics) => number | undefined): Reader =>
  (s) => {
    const v = pick(s.trace);
    return v === undefined ? [] : [[{}, v]];
  };

const bySource =
  (
    pick: (m: {
      libssl: TraceMetrics["libssl"];
      wire: TraceMetrics["wire"];
    }) => [string, number | undefined][],
  ): Reader =>
  (s) =>
    pick(s.trace)
      .filter((e): e is [string, number] => e[1] !== undefined)
      .map(([source, n]) => [{ source }, n] as [Record<string, string>, number]);

const byProblem =
  (pick: (w: NonNullable<TraceMetrics["wire"]>) => Record<string, number>): Reader =>
  (s) =>
    s.trace.wire === null
      ? []
      : Object.entries(pick(s.trace.wire)).map(
          ([problem, n]) => [{ problem }, n] as [Record<string, string>, number],
        );

interface CounterSpec {
  name: string;
  help: string;
  labels: string[];
  read: Reader;
}

/** Every counter of the endpoint (the names in README.md). */
const COUNTERS: CounterSpec[] = [
  {
    name: "events_received_total",
    help: "Kernel events read, both sources",
    labels: [],
    read: single((m) => m.eventsReceived),
  },
  {
    name: "handshakes_emitted_total",
    help: "Records written (one per handshake)",
    labels: [],
    read: single((m) => m.handshakesEmitted),
  },
  {
    name: "correlation_timeouts_total",
    help: "Handshakes given up after --window",
    labels: [],
    read: single((m) => m.correlationTimeouts),
  },
  {
    name: "cache_evictions_total",
    help: "Entries evicted from full correlation tables",
    labels: [],
    read: single((m) => m.cacheEvictions),
  },
  {
    name: "kernel_drops_total",
    help: "Events the kernel could not hand over (ring buffer full)",
    labels: [],
    read: single((m) => m.kernel_drops),
  },
  {
    name: "source_events_total",
    help: "Kernel events read, by source",
    labels: ["source"],
    read: bySource((m) => [
      ["libssl", m.libssl?.events],
      ["wire", m.wire?.events],
    ]),
  },
  {
    name: "source_handshakes_total",
    help: "Handshakes each source saw (a joined record counts for both)",
    labels: ["source"],
    read: bySource((m) => [
      ["libssl", m.libssl?.handshakes],
      ["wire", m.wire?.handshakes],
    ]),
  },
  {
    name: "source_timeouts_total",
    help: "Handshakes given up after --window, by source",
    labels: ["source"],
    read: bySource((m) => [
      ["libssl", m.libssl?.timeouts],
      ["wire", m.wire?.timeouts],
    ]),
  },
  {
    name: "source_evictions_total",
    help: "Table evictions, by source",
    labels: ["source"],
    read: bySource((m) => [
      ["libssl", m.libssl?.evictions],
      ["wire", m.wire?.evictions],
    ]),
  },
  {
    name: "source_kernel_drops_total",
    help: "Events the kernel could not hand over, by source",
    labels: ["source"],
    read: bySource((m) => [
      ["libssl", m.libssl?.kernel_drops],
      ["wire", m.wire?.kernel_drops],
    ]),
  },
  {
    name: "wire_segments_total",
    help: "TCP segments the wire source read",
    labels: [],
    read: single((m) => m.wire?.segments),
  },
  {
    name: "wire_connections_followed_total",
    help: "Connections whose stream started with a ClientHello",
    labels: [],
    read: single((m) => m.wire?.connections_followed),
  },
  {
    name: "wire_not_tls_total",
    help: "Connections whose first bytes were not TLS",
    labels: [],
    read: single((m) => m.wire?.not_tls),
  },
  {
    name: "wire_late_total",
    help: "Connections older than the trace",
    labels: [],
    read: single((m) => m.wire?.late),
  },
  {
    name: "wire_filtered_total",
    help: "Connections of processes the filters leave out",
    labels: [],
    read: single((m) => m.wire?.filtered),
  },
  {
    name: "wire_capped_total",
    help: "Directions that reached the kernel's copy limit",
    labels: [],
    read: single((m) => m.wire?.capped),
  },
  {
    name: "wire_unreadable_total",
    help: "Connections that started like TLS but could not be read, by problem",
    labels: ["problem"],
    read: byProblem((w) => w.unreadable),
  },
  {
    name: "wire_problems_total",
    help: "Records written with a problem after the ClientHello, by problem",
    labels: ["problem"],
    read: byProblem((w) => w.problems),
  },
  {
    name: "join_total",
    help: "Records by the sources that saw them",
    labels: ["observed_by"],
    read: (s) => [
      [{ observed_by: "libssl,wire" }, s.trace.join.joined],
      [{ observed_by: "libssl" }, s.trace.join.libssl_only],
      [{ observed_by: "wire" }, s.trace.join.wire_only],
    ],
  },
  {
    name: "join_links_rejected_total",
    help: "Links between the sources refused (the two views disagreed)",
    labels: [],
    read: single((m) => m.join.links_rejected),
  },
  {
    name: "handshakes_total",
    help: "Records by role, key-exchange class, negotiated group and TLS version",
    labels: ["role", "kex_class", "group", "tls_version"],
    read: (s) => s.tally.entries(),
  },
];

/** Counters of the rotation and the exporter (present when they run): name → help. */
const AGENT_COUNTERS: Record<string, string> = {
  rotations_total: "Output files closed, sealed and replaced by the next one",
  rotation_failures_total: "Rotations that could not be made (the current file was kept)",
  files_deleted_total: "Rotated files deleted by --max-files",
  output_stalls_total:
    "Times the disk refused the output's lines (held in memory and written once it took them)",
  export_published_total: "Records the broker acknowledged",
  export_failures_total: "Publications that failed (the records were sent again)",
  export_disconnects_total: "Times the connection to the broker was lost",
  export_read_bytes_total: "Bytes the exporter read back from the output files (its only queue)",
};
const AGENT_GAUGES: Record<string, string> = {
  export_pending_records: "Records written but not yet acknowledged by the broker",
  export_connected: "1 while connected to the broker",
};

/** The registry, and its metrics in text format with every value from one snapshot of the counters. */
export interface MetricsRegistry {
  registry: Registry;
  scrape(): Promise<string>;
}

/** Which of the agent's parts run: their metrics are listed only then. */
export interface AgentParts {
  rotation: boolean;
  export: boolean;
}

const partOf = (name: string): keyof AgentParts => (name.startsWith("export_") ? "export" : "rotation");

/** The registry: one prom-client metric per counter, its value taken from the snapshot at each scrape. */
export function metricsRegistry(snapshot: () => MetricsSnapshot, parts: AgentParts): MetricsRegistry {
  const registry = new Registry();
  // one snapshot per scrape (taken by scrape() below), shared by every metric's collect
  let current: MetricsSnapshot | null = null;
  const now = () => {
    current ??= snapshot();
    return current;
  };

  for (const spec of COUNTERS) {
    new Counter({
      name: `carnot_trace_${spec.name}`,
      help: spec.help,
      labelNames: spec.labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, n] of spec.read(now())) if (n > 0) this.inc(labels, n);
      },
    });
  }
  for (const [name, help] of Object.entries(AGENT_COUNTERS)) {
    if (!parts[partOf(name)]) continue;
    new Counter({
      name: `carnot_trace_${name}`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const n = now().agent[name];
        if (n !== undefined && n > 0) this.inc(n);
      },
    });
  }
  for (const [name, help] of Object.entries(AGENT_GAUGES)) {
    if (!parts[partOf(name)]) continue;
    new Gauge({
      name: `carnot_trace_${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(now().agent[name] ?? 0);
      },
    });
  }
  const scrape = async () => {
    current = snapshot();
    try {
      return await registry.metrics();
    } finally {
      current = null;
    }
  };
  return { registry, scrape };
}

export interface MetricsEndpoint {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Listen on `address` and answer GET /metrics. Throws a usage error (exit 2) when the address cannot be
 * taken (in use, not on this host): called before anything is attached.
 */
export function startMetricsEndpoint(
  address: ListenAddress,
  flag: string,
  snapshot: () => MetricsSnapshot,
  parts: AgentParts,
): MetricsEndpoint {
  const { registry, scrape } = metricsRegistry(snapshot, parts);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: address.hostname,
      port: address.port,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        if (path !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD")
          return new Response("method not allowed\n", { status: 405, headers: { Allow: "GET, HEAD" } });
        return new Response(await scrape(), { headers: { "Content-Type": registry.contentType } });
      },
    });
  } catch (err) {
    throw new CarnotError(`cannot listen on --metrics-addr ${flag}: ${systemReason(err)}`, { exitCode: 2 });
  }
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return { url: `http://${host}:${server.port}/metrics`, stop: () => server.stop(true) };
}
