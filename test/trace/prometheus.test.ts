/**
 * `carnot trace --metrics-addr`: a real Prometheus server (Debian's `prometheus`) scrapes the endpoint on
 * loopback while real curl handshakes are traced; its HTTP API gives back the counters and the handshakes by
 * role, key-exchange class, group and version that the output file holds. A port in use is refused before
 * anything is attached.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freeTcpPort,
  makeSelfSignedCert,
  runClient,
  type RunningServer,
  startNginx,
  waitForTcp,
} from "../../src/lab/loopback.ts";
import { readObservations, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const skip =
  traceSkipReason() ??
  (existsSync(PROMETHEUS) ? null : "prometheus not installed (Debian package prometheus: make setup)");
if (skip) console.warn(`skipping the Prometheus tests: ${skip}`);

/** The client's own name: its comm is what the trace is filtered on (other work on this host makes handshakes too). */
const CLIENT = "crvprom";

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promPort: number, expr: string): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] } };
  expect(body.status).toBe("success");
  return body.data.result;
}

describe.skipIf(skip !== null)("carnot trace --metrics-addr, scraped by Prometheus", () => {
  let dir = "";
  let nginx: RunningServer;
  let client = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-prom-"));
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir));
    client = join(dir, CLIENT);
    copyFileSync("/usr/bin/curl", client);
  });
  afterAll(async () => {
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("Prometheus's API returns the counters and the handshakes by role, kex class, group and version", async () => {
    const metricsPort = freeTcpPort();
    const out = join(dir, "runtime.jsonl");
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--comm",
      CLIENT,
      "--metrics-addr",
      `127.0.0.1:${metricsPort}`,
    ]);
    const promPort = freeTcpPort();
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 500ms",
        "  scrape_timeout: 400ms",
        "scrape_configs:",
        "  - job_name: carnot",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${metricsPort}"]`,
        "",
      ].join("\n"),
    );
    const prom = Bun.spawn(
      [
        PROMETHEUS,
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    try {
      await waitForTcp(promPort, 30_000, prom.exited);
      const handshake = async (groups: string, extra: string[] = []) => {
        const r = await runClient([
          client,
          "-sk",
          "--max-time",
          "10",
          "--curves",
          groups,
          ...extra,
          "--resolve",
          `prom.lab.example:${nginx.port}:127.0.0.1`,
          `https://prom.lab.example:${nginx.port}/`,
        ]);
        expect(r.exitCode).toBe(0);
      };
      for (let i = 0; i < 5; i++) await handshake("X25519");
      for (let i = 0; i < 3; i++) await handshake("secp256r1");
      for (let i = 0; i < 2; i++) await handshake("secp384r1:prime256v1", ["--tls-max", "1.2"]);

      // Prometheus has scraped once the last handshake is in
      const deadline = Date.now() + 30_000;
      let emitted: Sample[] = [];
      while (Date.now() < deadline) {
        emitted = await query(promPort, 'carnot_trace_handshakes_emitted_total{job="carnot"}');
        if (emitted[0]?.value[1] === "10") break;
        await Bun.sleep(250);
      }
      expect(emitted.map((s) => s.value[1])).toEqual(["10"]);

      const byKex = await query(promPort, "carnot_trace_handshakes_total");
      const got = Object.fromEntries(
        byKex.map((s) => [
          `${s.metric.role} ${s.metric.kex_class} ${s.metric.group} ${s.metric.tls_version}`,
          Number(s.value[1]),
        ]),
      );
      expect(got).toEqual({
        "client classical X25519 TLSv1.3": 5,
        "client classical secp256r1 TLSv1.3": 3,
        "client classical secp384r1 TLSv1.2": 2,
      });
      const bySource = await query(promPort, "carnot_trace_source_handshakes_total");
      expect(Object.fromEntries(bySource.map((s) => [s.metric.source, Number(s.value[1])]))).toEqual({
        libssl: 10,
        wire: 10,
      });
      const joined = await query(promPort, 'carnot_trace_join_total{observed_by="libssl,wire"}');
      expect(joined.map((s) => Number(s.value[1]))).toEqual([10]);
      const drops = await query(promPort, "carnot_trace_kernel_drops_total");
      expect(drops.map((s) => Number(s.value[1]))).toEqual([0]);
      // no label names a process, a server name or a pid
      const labels = new Set(byKex.flatMap((s) => Object.keys(s.metric)));
      expect([...labels].sort()).toEqual([
        "__name__",
        "group",
        "instance",
        "job",
        "kex_class",
        "role",
        "tls_version",
      ]);
    } finally {
      prom.kill("SIGTERM");
      await prom.exited;
      const stopped = await tracer.stop("SIGINT");
      expect(stopped.exitCode).toBe(0);
    }
    // the same numbers as the file
    const records = readObservations(out);
    expect(records).toHaveLength(10);
    expect(
      records.filter((r) => r.negotiated_group === "X25519" && r.tls_version === "TLSv1.3"),
    ).toHaveLength(5);
  }, 120_000);

  test("a port in use: one line, exit 2, before anything is attached", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const out = join(dir, "never.jsonl");
      const proc = Bun.spawnSync(
        [
          process.execPath,
          join(REPO, "src", "cli.ts"),
          "trace",
          "--out",
          out,
          "--metrics-addr",
          `127.0.0.1:${taken.port}`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const stderr = proc.stderr.toString();
      expect(proc.exitCode).toBe(2);
      expect(stderr.trim().split("\n")).toEqual([
        `carnot: cannot listen on --metrics-addr 127.0.0.1:${taken.port}: address already in use (EADDRINUSE)`,
      ]);
      expect(existsSync(out)).toBe(false);
    } finally {
      taken.stop(true);
    }
  }, 60_000);

  test("a malformed address: one line, exit 2", () => {
    const proc = Bun.spawnSync(
      [process.execPath, join(REPO, "src", "cli.ts"), "trace", "--metrics-addr", "localhost"],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(proc.exitCode).toBe(2);
    expect(proc.stderr.toString().trim()).toBe(
      'carnot: invalid --metrics-addr "localhost": expected HOST:PORT, [IPv6]:PORT or :PORT',
    );
  });
});
