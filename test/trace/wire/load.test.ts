/**
 * Accounting under load (issue 12): 5,000 fresh TLS connections, 50 at a time, with `carnot trace` running
 * (default sources). nginx (OpenSSL 3.0, probed) against hey (Go's TLS: only the wire sees it): exactly 5,000
 * nginx lines, each joined (libssl + wire), and 5,000 hey lines; then a Bun client against Bun.serve (both
 * BoringSSL, hybrid X25519MLKEM768, the server's listener with TCP_DEFER_ACCEPT): 5,000 client and 5,000
 * server lines. Each client line pairs with one server line by its endpoints; no kernel drop. Needs root.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  childPids,
  makeSelfSignedCert,
  type RunningServer,
  runClient,
  startNginx,
  type TlsCert,
} from "../../../src/lab/loopback.ts";
import type { TraceMetrics } from "../../../src/trace/metrics.ts";
import type { ChainedObservation } from "../../../src/trace/observation.ts";
import { bunClientLoad, startBunServer } from "../../support/lab/bun-load.ts";
import { readMetrics, readObservations, startTracer, traceSkipReason } from "../../support/tracer.ts";

const TOTAL = 5000;
const CONCURRENCY = 50;

const skip = traceSkipReason() ?? (Bun.which("hey") ? null : "hey (Debian hey) not installed");
if (skip) console.warn(`skipping the wire load tests: ${skip}`);

/**
 * Under this load on two cores a client may sit on a server's flight for seconds before it answers (Bun's
 * client up to 3.4 s, measured with tshark, with or without the tracer): a window longer than that keeps every
 * handshake until its bytes prove it, which is what is counted here.
 */
const WINDOW = "10s";

interface Traced {
  lines: ChainedObservation[];
  metrics: TraceMetrics;
  seconds: number;
}

/** Runs `load` under the tracer; its lines, its metrics and how long the load took. */
async function traced(dir: string, name: string, load: () => Promise<void>): Promise<Traced> {
  const out = join(dir, `${name}.jsonl`);
  const metricsJson = join(dir, `${name}-metrics.json`);
  const tracer = await startTracer([
    "--out",
    out,
    "--metrics-interval",
    "0",
    "--metrics-json",
    metricsJson,
    "--window",
    WINDOW,
  ]);
  const t0 = performance.now();
  try {
    await load();
  } finally {
    await tracer.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    lines: readObservations(out),
    metrics: readMetrics(metricsJson),
    seconds,
  };
}

/** How many lines have each value of `f`. */
function tally<T>(lines: T[], f: (l: T) => unknown): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of lines) {
    const k = JSON.stringify(f(l));
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

/**
 * Each client line's endpoints are one server line's, mirrored: one connection, one line on each side. (A
 * client port comes back once the server has closed its earlier connection: the endpoints repeat, in pairs.)
 */
function expectPaired(clients: ChainedObservation[], servers: ChainedObservation[]) {
  const count = (keys: string[]) => tally(keys, (k) => k);
  const clientSide = count(
    clients.map((l) => `${l.local_addr}:${l.local_port}>${l.remote_addr}:${l.remote_port}`),
  );
  const serverSide = count(
    servers.map((l) => `${l.remote_addr}:${l.remote_port}>${l.local_addr}:${l.local_port}`),
  );
  expect(clientSide).toEqual(serverSide);
}

describe.skipIf(skip !== null)(
  `accounting under load: ${TOTAL} connections, ${CONCURRENCY} at a time`,
  () => {
    let dir = "";
    let cert: TlsCert;
    let nginx: RunningServer | null = null;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "carnot-wire-load-"));
      cert = await makeSelfSignedCert(dir);
    });

    afterAll(async () => {
      await nginx?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("nginx and hey: 5,000 joined server lines, 5,000 client lines from the wire, no drop", async () => {
      nginx = await startNginx(join(dir, "nginx"), cert, { workers: 1 });
      const url = `https://127.0.0.1:${nginx.port}/`;
      let hey = { pid: 0, exitCode: -1, stdout: "", stderr: "" };
      const run = await traced(dir, "hey", async () => {
        hey = await runClient([
          "hey",
          "-n",
          String(TOTAL),
          "-c",
          String(CONCURRENCY),
          "-disable-keepalive",
          url,
        ]);
      });
      expect(hey.exitCode).toBe(0);
      expect(/\[200\]\s+(\d+) responses/.exec(hey.stdout)?.[1]).toBe(String(TOTAL));
      const workers = await childPids(nginx.pid);
      const servers = run.lines.filter((l) => l.role === "server" && l.local_port === nginx!.port);
      const clients = run.lines.filter((l) => l.role === "client" && l.remote_port === nginx!.port);
      console.log(
        `hey: ${TOTAL} handshakes in ${run.seconds.toFixed(1)} s; ${servers.length} server lines, ` +
          `${clients.length} client lines; kernel drops ${run.metrics.kernel_drops}, events ${run.metrics.eventsReceived}`,
      );
      expect(
        tally(servers, (l) => [
          l.observed_by,
          workers.includes(l.pid ?? -1),
          l.handshake_success,
          l.server_name,
          l.negotiated_group,
        ]),
      ).toEqual({
        // hey names its server by the URL's host and port: that is the SNI its ClientHello carries
        [JSON.stringify([["libssl", "wire"], true, true, `127.0.0.1:${nginx.port}`, "X25519"])]: TOTAL,
      });
      expect(
        tally(clients, (l) => [l.observed_by, l.pid, l.comm, l.handshake_success, l.negotiated_group]),
      ).toEqual({
        [JSON.stringify([["wire"], hey.pid, "hey", true, "X25519"])]: TOTAL,
      });
      expectPaired(clients, servers);
      // nothing lost in the kernel nor pushed out of a table (counted over the whole host)
      expect([run.metrics.kernel_drops, run.metrics.cacheEvictions]).toEqual([0, 0]);
      await nginx.stop();
      nginx = null;
    }, 120_000);

    test("a Bun client against Bun.serve: 5,000 client and 5,000 server lines, hybrid, from the wire", async () => {
      const server = await startBunServer(cert);
      let client = { pid: 0, ok: 0, failed: 0 };
      let run: Traced;
      try {
        run = await traced(dir, "bun", async () => {
          client = await bunClientLoad(server.port, "load.lab.example", TOTAL, CONCURRENCY);
        });
      } finally {
        await server.stop();
      }
      expect([client.ok, client.failed]).toEqual([TOTAL, 0]);
      const servers = run.lines.filter((l) => l.role === "server" && l.local_port === server.port);
      const clients = run.lines.filter((l) => l.role === "client" && l.remote_port === server.port);
      console.log(
        `bun: ${TOTAL} handshakes in ${run.seconds.toFixed(1)} s; ${servers.length} server lines, ` +
          `${clients.length} client lines; kernel drops ${run.metrics.kernel_drops}, events ${run.metrics.eventsReceived}`,
      );
      const facts = (l: ChainedObservation) => [
        l.observed_by,
        l.pid,
        l.handshake_success,
        l.server_name,
        l.negotiated_group,
        l.kex_class,
      ];
      expect(tally(clients, facts)).toEqual({
        [JSON.stringify([["wire"], client.pid, true, "load.lab.example", "X25519MLKEM768", "hybrid-pq"])]:
          TOTAL,
      });
      expect(tally(servers, facts)).toEqual({
        [JSON.stringify([["wire"], server.pid, true, "load.lab.example", "X25519MLKEM768", "hybrid-pq"])]:
          TOTAL,
      });
      expectPaired(clients, servers);
      expect([run.metrics.kernel_drops, run.metrics.cacheEvictions]).toEqual([0, 0]);
    }, 120_000);
  },
);
