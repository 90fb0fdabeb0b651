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
import { ChainedWriter } from "../src/chain/writer.ts";
import { indexGroups } from "../src/trace/groups.ts";
import { DEFAULT_RINGBUF_SIZE } from "../src/trace/libssl/probes.ts";
import { RecordRegion, TracePipeline } from "../src/trace/pipeline.ts";
import { WireConnection, wireContext } from "../src/trace/wire/connection.ts";
import {
  encodeWireEvent,
  WIRE_EVENT_LAYOUT,
  WireDecoder,
  WireFlag,
  WireKind,
} from "../src/trace/wire/events.ts";
import { WireSource } from "../src/trace/wire/source.ts";
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

// The whole user-space path of the wire source as `carnot trace` runs it: the kernel's bytes (each segment and
// end as a carnot_wire_event, every handshake on fresh cookies) drained from a region, decoded, reassembled and
// parsed per connection, decided, joined (nothing to join: wire alone) and made into records — counted by a sink
// that keeps nothing, then written through the chained writer to /dev/null.
const groupIndex = indexGroups();
/**
 * Handshakes per batch: as many as the tracer's ring buffer holds at its default size (8 MiB). With a region of
 * 20,000 (300 MB) alive, the parse loop above ran 7× slower per CPU second, and a ring buffer is never that
 * large. No full collection before each batch either: the work right after one ran 3× slower.
 */
const BATCH = (() => {
  const bytes = kernelBytes(all.length, 1).reduce((sum, r) => sum + ((r.byteLength + 7) & ~7), 0);
  const fit = Math.floor(DEFAULT_RINGBUF_SIZE / (bytes / all.length));
  return Math.min(N, Math.max(all.length, fit - (fit % all.length)));
})();
/** the handshakes the pipeline stages run: whole batches */
const TOTAL = Math.ceil(N / BATCH) * BATCH;
function kernelBytes(batch: number, firstCookie: number): Uint8Array[] {
  const records: Uint8Array[] = [];
  for (let i = 0; i < batch; i++) {
    const ends = all[i % all.length]!;
    ends.forEach((events, end) => {
      const cookie = firstCookie + 2 * i + end;
      const socket = {
        cookie,
        localAddr: "127.0.0.1",
        remoteAddr: "127.0.0.1",
        localPort: end === 0 ? 40000 + (i % 20000) : 443,
        remotePort: end === 0 ? 443 : 40000 + (i % 20000),
        comm: "bench",
        pid: 1000 + (i % 50),
        tid: 1000 + (i % 50),
      };
      for (const e of events) {
        const sent = e.direction === 0;
        const flags =
          (sent ? WireFlag.Egress | WireFlag.Owner : 0) |
          (e.kind === "end" ? (e.end === "rst" ? WireFlag.Rst : WireFlag.Fin) : 0);
        records.push(
          encodeWireEvent({
            ...socket,
            kind: e.kind === "segment" ? WireKind.Segment : WireKind.End,
            flags,
            streamOffset: e.offset ?? 0,
            payload: e.kind === "segment" ? e.bytes : undefined,
            tsNs: 1e9 + i * 1000,
          }),
        );
      }
    });
  }
  return records;
}
const context = {
  library: () => ({ label: "none", ciphers: null, defaultGroups: null }),
  exe: () => null,
  cgroup: () => ({ path: null, containerId: null, podUid: null }),
  host: "bench-host",
  machineId: null,
  clockOffsetUs: 0,
  groupIndex,
};
/**
 * One region of BATCH handshakes, built once; each batch gives its connections fresh cookies by rewriting them in
 * place (nothing allocated between timed sections: the collector would otherwise be busy with the building
 * while the pipeline is timed).
 */
const batchRegion = new RecordRegion(kernelBytes(BATCH, 1));
const batchCookies = (() => {
  const offsets: number[] = [];
  batchRegion.drain((offset) => offsets.push(offset + WIRE_EVENT_LAYOUT.cookie[0]));
  return offsets;
})();
const regionView = new DataView(batchRegion.dataBuffer);
/** The region, its cookies moved past every cookie used so far, rewound for another drain. */
function nextBatch(done: number): RecordRegion {
  for (const at of batchCookies) {
    const cookie = Number(regionView.getBigUint64(at, true));
    regionView.setBigUint64(at, BigInt(((cookie - 1) % (2 * BATCH)) + 1 + 2 * done), true);
  }
  batchRegion.rewind();
  return batchRegion;
}

/** The first stage alone: drained, decoded, reassembled, parsed and decided, per connection (no records). */
function drainRun(): { wall: number; cpu: number; lines: number } {
  let lines = 0;
  const source = new WireSource(
    { windowNs: 2e9, maxPending: 65_536, newAnalyzer: () => new WireConnection(ctx), release: () => {} },
    { linked: () => {}, decided: () => void lines++ },
  );
  let wall = 0;
  let cpu = 0;
  const decoder = new WireDecoder(batchRegion.dataBuffer, batchRegion.dataOffset, batchRegion.length);
  for (let done = 0; done < TOTAL; done += BATCH) {
    const region = nextBatch(done);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    region.drain((offset, length) => source.push(decoder.decode(offset, length)));
    const used = process.cpuUsage(cpu0);
    wall += (performance.now() - t0) / 1000;
    cpu += (used.user + used.system) / 1e6;
  }
  source.flush(1e12);
  return { wall, cpu, lines };
}

async function pipelineRun(writeRecords: boolean): Promise<{ wall: number; cpu: number; lines: number }> {
  let lines = 0;
  const writer = writeRecords
    ? await ChainedWriter.open("/dev/null", { parallelAfter: Number.POSITIVE_INFINITY })
    : null;
  const sink = writer ?? { append: () => void lines++ };
  const pipeline = new TracePipeline({
    windowMs: 2000,
    maxPending: 65_536,
    groupIndex,
    libssl: null,
    wire: {
      release: () => {},
      stats: () => ({ dropped: 0, followed: 0, notTls: 0, late: 0, filtered: 0, capped: 0 }),
    },
    context,
    sink,
  });
  let wall = 0;
  let cpu = 0;
  for (let done = 0; done < TOTAL; done += BATCH) {
    const region = nextBatch(done);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    pipeline.drain(region);
    const used = process.cpuUsage(cpu0);
    wall += (performance.now() - t0) / 1000;
    cpu += (used.user + used.system) / 1e6;
  }
  pipeline.finish(null, () => 1e12);
  if (writer) {
    await writer.close();
    lines = writer.count;
  }
  return { wall, cpu, lines };
}
const stages = [
  ["drain, decode, reassemble, parse, decide", async () => drainRun()],
  ["… and records built (join, names, canonical text)", () => pipelineRun(false)],
  ["… and records hashed and written to /dev/null", () => pipelineRun(true)],
] as const;
for (const [what, run] of stages) {
  const wallRates: number[] = [];
  const cpuRatesP: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run();
    // both ends of each handshake make a line
    if (r.lines !== 2 * TOTAL)
      throw new Error(`pipeline: ${r.lines} lines for ${TOTAL} handshakes (both ends)`);
    wallRates.push(TOTAL / r.wall);
    cpuRatesP.push(TOTAL / r.cpu);
  }
  console.log(
    `wire source (batches of ${BATCH}): ${what}:\n  per wall second: ${spread(wallRates)} handshakes/s\n  per CPU second:  ${spread(cpuRatesP)} handshakes/s`,
  );
}
