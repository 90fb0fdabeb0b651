/**
 * `bun bench/wire-parse.ts` (root): user-space cost of the wire source. Real handshakes are captured on
 * loopback (OpenSSL 3.0 TLS 1.3 and 1.2, a HelloRetryRequest, Bun's hybrid X25519MLKEM768), then each is fed
 * N times through reassembly, TLS parsing, the handshake state and `result()` (JA4 included) — both sockets,
 * both directions, as the kernel would hand them over. Prints handshakes/s per run (median, spread) and the
 * objects a connection keeps. BENCH_HANDSHAKES (default 100000), BENCH_RUNS (7), BENCH_SEGMENT (cut segments to
 * this many bytes, e.g. 1448 for MTU 1500; default: as captured).
 */
import { heapStats } from "bun:jsc";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort, makeSelfSignedCert, startOpenSslServer } from "../src/lab/loopback.ts";
import { WireConnection, wireContext } from "../src/trace/wire/connection.ts";
import {
  captureSkipReason,
  readConnections,
  startCapture,
  type WireEvent,
} from "../test/support/wire-capture.ts";

const skip = captureSkipReason();
if (skip) {
  console.error(`wire-parse: ${skip}`);
  process.exit(1);
}
const N = Number(process.env.BENCH_HANDSHAKES ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const SEGMENT = Number(process.env.BENCH_SEGMENT ?? 0);

/** Captures the handshakes the benchmark replays; returns each end's events of each connection. */
async function captureHandshakes(): Promise<{ name: string; ends: WireEvent[][] }[]> {
  const dir = mkdtempSync(join(tmpdir(), "carnot-bench-wire-"));
  try {
    const cert = await makeSelfSignedCert(dir);
    const ports = [freeTcpPort(), freeTcpPort(), freeTcpPort(), freeTcpPort()];
    const capture = await startCapture(ports, join(dir, "bench.pcapng"));
    const sClient = async (port: number, args: string[]) => {
      const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-ign_eof", ...args], {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
      });
      p.stdin.write("GET / HTTP/1.0\r\n\r\n");
      await p.stdin.end();
      await p.exited;
    };
    const openssl: Array<[number, string[], string[]]> = [
      [0, ["-servername", "bench13.example", "-alpn", "h2,http/1.1"], []],
      [1, ["-tls1_2", "-servername", "bench12.example"], []],
      [2, ["-groups", "X25519:secp384r1"], ["-groups", "secp384r1"]],
    ];
    for (const [i, args, serverArgs] of openssl) {
      const server = await startOpenSslServer(cert, { port: ports[i], args: serverArgs });
      await sClient(ports[i]!, args);
      await server.stop();
    }
    const bun = Bun.serve({
      port: ports[3],
      hostname: "127.0.0.1",
      tls: { cert: Bun.file(cert.cert), key: Bun.file(cert.key) },
      fetch: () => new Response("ok"),
    });
    await (await fetch(`https://127.0.0.1:${ports[3]}/`, { tls: { rejectUnauthorized: false } })).text();
    bun.stop(true);
    const pcap = await capture.stop();
    const names = ["TLS 1.3", "TLS 1.2 ECDHE", "HelloRetryRequest", "hybrid (Bun)"];
    const conns = readConnections(pcap).filter((k) =>
      k.client.some((e) => e.kind === "segment" && e.direction === 0),
    );
    return ports.map((port, i) => {
      const k = conns.find((c) => c.serverPort === port);
      if (!k) throw new Error(`no handshake captured for ${names[i]}`);
      return { name: names[i]!, ends: [k.client, k.server].map(cutSegments) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function cutSegments(events: WireEvent[]): WireEvent[] {
  if (SEGMENT <= 0) return events;
  return events.flatMap((e) => {
    if (e.kind !== "segment") return [e];
    const out: WireEvent[] = [];
    for (let at = 0; at < e.bytes.length; at += SEGMENT) {
      out.push({ ...e, offset: e.offset + at, bytes: e.bytes.subarray(at, at + SEGMENT) });
    }
    return out;
  });
}

const ctx = wireContext();

/** One end of one handshake, fed until decided; returns the connection. */
function replay(events: WireEvent[]): WireConnection {
  const conn = new WireConnection(ctx);
  for (let i = 0; i < events.length && !conn.decided; i++) {
    const e = events[i]!;
    if (e.kind === "segment") conn.segment(e.direction, e.offset, e.bytes);
    else conn.end(e.direction, e.end, e.offset);
  }
  conn.result();
  return conn;
}

const handshakes = await captureHandshakes();
for (const h of handshakes) {
  const r = replay(h.ends[0]!).result();
  console.error(
    `${h.name}: ${h.ends[0]!.length} + ${h.ends[1]!.length} events, success ${r.success}, ${r.server?.negotiatedGroup}, ${r.client?.ja4}`,
  );
}

// one handshake = both sockets (client and server), each fed both directions
const all = handshakes.flatMap((h) => [h.ends]);
const rates: number[] = [];
const cpuRates: number[] = [];
for (let run = 0; run < RUNS; run++) {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const ends = all[i % all.length]!;
    replay(ends[0]!);
    replay(ends[1]!);
  }
  const cpu = process.cpuUsage(cpu0);
  rates.push(N / ((performance.now() - t0) / 1000));
  // CPU time of the whole process (JIT and GC threads included): less swayed by other work on the host
  cpuRates.push(N / ((cpu.user + cpu.system) / 1e6));
}
const k = (v: number) => `${Math.round(v / 1000)} k`;
/** median, min, max and every run */
function spread(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `median ${k(sorted[Math.floor(values.length / 2)]!)}, min ${k(sorted[0]!)}, max ${k(sorted.at(-1)!)} (${values.map(k).join(", ")})`;
}
const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
console.log(
  `wire-parse: ${N} handshakes × ${RUNS} runs${SEGMENT > 0 ? ` (segments of ${SEGMENT} bytes)` : ""}, load ${load}:\n` +
    `  per wall second: ${spread(rates)} handshakes/s\n  per CPU second:  ${spread(cpuRates)} handshakes/s`,
);

// the objects a decided connection keeps, per type (connections held so that none is collected)
Bun.gc(true);
const before = heapStats().objectTypeCounts;
const held: WireConnection[] = [];
const M = 10_000;
for (let i = 0; i < M; i++) held.push(replay(all[i % all.length]![i % 2]!));
Bun.gc(true);
const after = heapStats().objectTypeCounts;
const perConnection = Object.entries(after)
  .map(([type, n]) => [type, (n - (before[type] ?? 0)) / M] as const)
  .filter(([, n]) => n >= 0.5)
  .sort((a, b) => b[1] - a[1])
  .map(([type, n]) => `${type} ${n.toFixed(1)}`);
console.log(`objects kept per decided connection: ${perConnection.join(", ")} (${held.length} held)`);
