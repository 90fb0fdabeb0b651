/**
 * `carnot trace --export`: how fast the exporter's thread gets records acknowledged by a local
 * `nats-server -js` (Debian's nats-server), reading them back from a chained file as the tracer would.
 * Run: bun bench/export.ts [records]   (default 100,000; figures go into WORKLOG.md)
 */
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChainedWriter } from "../src/chain/writer.ts";
import { NatsExporter } from "../src/export/exporter.ts";
import { parseNatsUrl } from "../src/export/nats-url.ts";
import { freeTcpPort, waitForTcp } from "../src/lab/loopback.ts";
import { canonicalObservation, type Observation } from "../src/trace/observation.ts";

const N = Number(process.argv[2] ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), "carnot-bench-export-"));
const port = freeTcpPort();
const nats = Bun.spawn(
  ["nats-server", "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", join(dir, "store")],
  {
    stdout: "ignore",
    stderr: "ignore",
  },
);
try {
  await waitForTcp(port, 15_000, nats.exited);
  const path = join(dir, "runtime.jsonl");
  const w = await ChainedWriter.open(path, { parallelAfter: Number.POSITIVE_INFINITY });
  for (let i = 0; i < N; i++) {
    const r = observation(i);
    w.append(r as unknown as Record<string, unknown>, canonicalObservation(r));
  }
  await w.close();
  const exporter = NatsExporter.start(
    parseNatsUrl(`nats://127.0.0.1:${port}/bench.export`, "bench"),
    () => {},
  );
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  exporter.file(1, openSync(path, "r"));
  exporter.written(1, w.bytes, true);
  const outcome = await exporter.finish(600_000);
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (outcome.pending !== null) throw new Error(`not all acknowledged: ${JSON.stringify(outcome)}`);
  console.log(
    `export: ${N} records (${(w.bytes / N).toFixed(0)} B each) acknowledged in ${s.toFixed(2)} s: ` +
      `${Math.round(N / s)} records/s; carnot's CPU ${((cpu.user + cpu.system) / N) | 0} µs per record (exporter thread)`,
  );
} finally {
  nats.kill("SIGTERM");
  await nats.exited;
  rmSync(dir, { recursive: true, force: true });
}

function observation(i: number): Observation {
  return {
    source: "runtime.ebpf",
    asset_id: null,
    owner: null,
    data_class: null,
    secrecy_lifetime_years: null,
    exposure: null,
    sni: `api-${i % 97}.example.org`,
    groups_offered: ["X25519", "secp256r1", "secp384r1"],
    handshake_success: true,
    pid: 1000 + (i % 50),
    tid: 1000 + (i % 50),
    ssl_ptr: `0x55c7780e${(i % 4096).toString(16).padStart(4, "0")}`,
    time: "2026-12-04T15:07:47.107621Z",
    confidence: 0.95,
    role: i % 2 === 0 ? "client" : "server",
    negotiated_group: "X25519",
    negotiated_group_id: 29,
    kex_class: "classical",
    tls_version: "TLSv1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
    groups_source: "client-hello",
    comm: "curl",
    exe: "/usr/bin/curl",
    host: "bench-host",
    machine_id: null,
    cgroup: null,
    container_id: null,
    pod_uid: null,
    library: "/usr/lib/x86_64-linux-gnu/libssl.so.3 (OpenSSL 3.0.19)",
    duration_us: 16275,
    error: null,
    observed_by: ["libssl", "wire"],
    local_addr: "127.0.0.1",
    local_port: 40000 + (i % 20000),
    remote_addr: "127.0.0.1",
    remote_port: 443,
    server_name: `api-${i % 97}.example.org`,
    server_groups: null,
    key_shares_offered: ["X25519"],
    hello_retry: false,
    alpn: null,
    ja4: "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
    resumed: false,
  };
}
