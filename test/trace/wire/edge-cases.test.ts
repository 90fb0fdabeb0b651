/**
 * The wire source on traffic that goes wrong or looks odd (issue 12), across two network namespaces joined by
 * a veth pair with MTU 1500 (made here, removed after), `carnot trace` running in the root namespace with its
 * default sources: a hybrid ClientHello in two segments, one byte per segment, reordered, cut by a reset; plain
 * HTTP on port 443; TLS on an unusual port; garbage behind a TLS record header. Each gives the line tshark's
 * dissection of the same run says, an honest null, or no line — and shows in the metrics. Then the filters:
 * `--comm` and `--pid` keep or leave out a client only the wire sees. Needs root.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCert, runClient, SYSTEM_PYTHON, type TlsCert } from "../../../src/lab/loopback.ts";
import type { TraceMetrics } from "../../../src/trace/metrics.ts";
import type { ChainedObservation } from "../../../src/trace/observation.ts";
import { openssl35 } from "../../support/kex-matrix.ts";
import { endpointsOf, linesOfConnection, lineSummary } from "../../support/lab/lines.ts";
import {
  createNetnsPair,
  type NamespaceServer,
  type NetnsPair,
  netnsSkipReason,
  removeStaleNamespaces,
  serveInNamespace,
} from "../../support/lab/netns.ts";
import {
  captureClientHello,
  dropFirstHelloSegmentOnce,
  gatedTraffic,
  PLAIN_HTTP_REQUEST,
  sendTraffic,
  type TrafficMode,
  type TrafficResult,
} from "../../support/lab/traffic.ts";
import {
  type Capture,
  type ConnectionFacts,
  dissectCapture,
  type Segment,
  startCapture,
  summarize,
  tcpSegments,
  tsharkSkipReason,
} from "../../support/lab/tshark.ts";
import { readMetrics, readObservations, startTracer, traceSkipReason } from "../../support/tracer.ts";

const skip =
  traceSkipReason() ??
  netnsSkipReason() ??
  tsharkSkipReason() ??
  (Bun.which("nft") ? null : "nft (Debian nftables) not installed") ??
  (Bun.which("gnutls-cli") ? null : "gnutls-cli (Debian gnutls-bin) not installed") ??
  (openssl35() ? null : ".cache/openssl35 missing (make openssl35)");
if (skip) console.warn(`skipping the wire edge-case tests: ${skip}`);

const SNI = "raw.lab.example";
const ODD_PORT = 5443;
/** s_server runs through the OpenSSL 3.5 loader: that is its comm */
const S_SERVER_COMM = "ld-linux-x86-64";

/** Deterministic bytes (a linear congruential generator): the same garbage on every run. */
function garbage(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A TLS handshake record header (16 03 01, length) whose first message is not a hello (type 0x63). */
const NOT_A_HELLO = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x63]), garbage(255, 7)]);
/** A record header and a ClientHello header whose lengths hold, then garbage where the hello's fields are. */
const BROKEN_HELLO = Buffer.concat([
  Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03]),
  garbage(250, 11),
]);

/** OpenSSL 3.5 `s_server -www` in the server's namespace on `port`. */
function sServerIn(pair: NetnsPair, cert: TlsCert, port: number): Promise<NamespaceServer> {
  return serveInNamespace(
    pair.server,
    [
      ...openssl35()!.command,
      "s_server",
      "-accept",
      `${pair.server.addr}:${port}`,
      "-cert",
      cert.cert,
      "-key",
      cert.key,
      "-www",
      "-quiet",
    ],
    port,
  );
}

describe.skipIf(skip !== null)("wire edge cases across two namespaces (veth, MTU 1500)", () => {
  let dir = "";
  let cert: TlsCert;
  let pair: NetnsPair;
  let hello: Uint8Array = new Uint8Array(0);
  let capture: Capture;
  /** every case's own result, by name */
  const cases = new Map<string, TrafficResult>();
  let curl = { pid: 0, localPort: 0, exitCode: -1 };
  let lines: ChainedObservation[] = [];
  let metrics: TraceMetrics;
  let wire: ConnectionFacts[] = [];
  let segments: Segment[] = [];
  const sServerPids: number[] = [];

  const inClient = () => ["ip", "netns", "exec", pair.client.ns];

  async function tlsServer(port: number): Promise<NamespaceServer> {
    const server = await sServerIn(pair, cert, port);
    sServerPids.push(server.pid);
    return server;
  }

  async function send(name: string, mode: TrafficMode, bytes: Uint8Array, arg?: number): Promise<void> {
    cases.set(name, await sendTraffic(mode, pair.server.addr, 443, bytes, { arg, prefix: inClient() }));
  }

  beforeAll(async () => {
    removeStaleNamespaces();
    dir = mkdtempSync(join(tmpdir(), "carnot-wire-edges-"));
    cert = await makeSelfSignedCert(dir);
    hello = await captureClientHello(SNI);
    pair = createNetnsPair();
    const out = join(dir, "runtime.jsonl");
    const metricsJson = join(dir, "metrics.json");
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--metrics-json",
      metricsJson,
    ]);
    try {
      capture = await startCapture({
        dir,
        ports: [443, ODD_PORT],
        iface: pair.client.dev,
        prefix: inClient(),
      });
      try {
        const tls = await tlsServer(443);
        try {
          await send("split", "send", hello);
          await send("bytewise", "bytewise", hello, 1);
          const undo = dropFirstHelloSegmentOnce(pair.server, 443);
          try {
            await send("reordered", "split", hello, 1000);
          } finally {
            undo();
          }
          await send("reset", "reset", hello);
          await send("reset inside the hello", "reset", hello.slice(0, 1000));
          await send("not a hello", "send", NOT_A_HELLO);
          await send("broken hello", "send", BROKEN_HELLO);
        } finally {
          await tls.stop();
        }
        const web = await serveInNamespace(
          pair.server,
          [SYSTEM_PYTHON, "-m", "http.server", "443", "--bind", pair.server.addr, "--directory", dir],
          443,
        );
        try {
          await send("plain HTTP", "send", PLAIN_HTTP_REQUEST);
        } finally {
          await web.stop();
        }
        const odd = await tlsServer(ODD_PORT);
        try {
          const r = await runClient([
            ...inClient(),
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{local_port}",
            "--resolve",
            `odd.lab.example:${ODD_PORT}:${pair.server.addr}`,
            `https://odd.lab.example:${ODD_PORT}/`,
          ]);
          curl = { pid: r.pid, localPort: Number(r.stdout), exitCode: r.exitCode };
        } finally {
          await odd.stop();
        }
      } finally {
        await capture.stop();
      }
    } finally {
      await tracer.stop();
    }
    lines = readObservations(out).filter((l) => l.local_addr?.startsWith("10.231.0."));
    metrics = readMetrics(metricsJson);
    wire = await dissectCapture(capture.file, [443, ODD_PORT]);
    segments = await tcpSegments(capture.file);
  }, 180_000);

  afterAll(() => {
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** tshark's connection from the client's port, and the two lines of it. */
  function connection(localPort: number) {
    const conn = wire.find((c) => c.client.port === localPort);
    if (!conn) throw new Error(`tshark saw no TLS on the connection from port ${localPort}`);
    return { conn, truth: summarize(conn), ...linesOfConnection(lines, conn) };
  }

  const linesFrom = (localPort: number) =>
    lines.filter((l) => l.local_port === localPort || l.remote_port === localPort);

  /** How the connection from `localPort` ended on the wire: a reset from either side, or FINs. */
  const endOf = (localPort: number) =>
    segments.some((s) => (s.src.port === localPort || s.dst.port === localPort) && s.flags.includes("R"))
      ? "reset"
      : "closed";

  /**
   * A hybrid ClientHello answered by OpenSSL 3.5: both lines as tshark says, the client's owner right. The
   * client reads the server's flight and hangs up without its Finished (s_server's answer to that, after the
   * client closed, draws a reset): the bytes prove the handshake did not complete.
   */
  function expectHybridLines(name: string) {
    const r = cases.get(name)!;
    const { truth, client, server } = connection(r.localPort);
    expect({ client: client.length, server: server.length }).toEqual({ client: 1, server: 1 });
    expect(truth).toMatchObject({ serverName: SNI, group: "X25519MLKEM768", version: "TLSv1.3" });
    expect(truth.keySharesOffered[0]).toBe("X25519MLKEM768");
    const [c, s] = [client[0]!, server[0]!];
    expect(lineSummary(c)).toEqual(truth);
    expect(lineSummary(s)).toEqual(truth);
    expect([c.pid, c.comm, c.observed_by, c.kex_class]).toEqual([r.pid, "python3", ["wire"], "hybrid-pq"]);
    expect(sServerPids).toContain(s.pid!);
    expect([s.comm, s.observed_by]).toEqual([S_SERVER_COMM, ["wire"]]);
    // the sockets of the namespaces, seen from the root namespace's cgroup programs
    expect([endpointsOf(c), endpointsOf(s)]).toEqual([
      [pair.client.addr, r.localPort, pair.server.addr, 443],
      [pair.server.addr, 443, pair.client.addr, r.localPort],
    ]);
    for (const l of [c, s])
      expect([l.role, l.handshake_success, l.error]).toEqual([l.role, false, endOf(r.localPort)]);
  }

  /** The client's data segments of one case, as tshark saw them on the client's veth. */
  const dataSegments = (localPort: number) => segments.filter((s) => s.src.port === localPort && s.len > 0);

  test("a hybrid ClientHello in two segments: both lines, read whole", () => {
    const r = cases.get("split")!;
    expect(dataSegments(r.localPort).length).toBe(2);
    expectHybridLines("split");
  });

  test("one byte per segment: the same lines", () => {
    const r = cases.get("bytewise")!;
    // every byte its own segment (a busy host may send one again: retransmissions aside)
    const fresh = dataSegments(r.localPort).filter((s) => !s.retransmission);
    expect([fresh.length, fresh.every((s) => s.len === 1)]).toEqual([hello.length, true]);
    expectHybridLines("bytewise");
  });

  test("reordered segments (the server receives the second first): the same lines", () => {
    const r = cases.get("reordered")!;
    expect(dataSegments(r.localPort).map((s) => s.seq)).toEqual([1, 1001, 1]);
    expectHybridLines("reordered");
  });

  test("a reset in the middle of the handshake: lines that say so, facts as far as the bytes go", () => {
    const r = cases.get("reset")!;
    const { truth, client, server } = connection(r.localPort);
    expect({ client: client.length, server: server.length }).toEqual({ client: 1, server: 1 });
    for (const l of [...client, ...server]) {
      expect(lineSummary(l)).toEqual(truth);
      expect([l.handshake_success, l.error]).toEqual([false, "reset"]);
    }
    expect(client[0]!.pid).toBe(r.pid);
  });

  test("plain HTTP on port 443: no line, counted as not TLS", () => {
    const r = cases.get("plain HTTP")!;
    expect(Buffer.from(r.head, "hex").toString("latin1")).toStartWith("HTTP/1.0 200");
    expect(linesFrom(r.localPort)).toEqual([]);
    expect(wire.find((c) => c.client.port === r.localPort)).toBeUndefined();
  });

  test("a TLS record header before something that is not a hello: no line, not TLS", () => {
    expect(linesFrom(cases.get("not a hello")!.localPort)).toEqual([]);
  });

  test("garbage where a ClientHello's fields should be: no line, counted as unreadable", () => {
    expect(linesFrom(cases.get("broken hello")!.localPort)).toEqual([]);
  });

  test("a reset in the middle of the ClientHello: no line (no whole hello), counted as truncated", () => {
    const r = cases.get("reset inside the hello")!;
    expect(r.sent).toBeLessThan(hello.length);
    expect(linesFrom(r.localPort)).toEqual([]);
  });

  test("the metrics count each case (at least: the tracer counts the whole host)", () => {
    const w = metrics.wire!;
    // both sockets of each: plain HTTP and the record that is no hello (the kernel's not-TLS), the broken hello,
    // the hello cut by a reset
    expect({
      not_tls: w.not_tls >= 4,
      malformed: (w.unreadable.malformed ?? 0) >= 2,
      truncated: (w.unreadable.truncated ?? 0) >= 2,
    }).toEqual({ not_tls: true, malformed: true, truncated: true });
  });

  test("TLS on an unusual port: curl's line joined (libssl + wire), the server's from the wire", () => {
    expect(curl.exitCode).toBe(0);
    const { truth, client, server } = connection(curl.localPort);
    expect(truth).toMatchObject({ serverName: "odd.lab.example", version: "TLSv1.3" });
    expect({ client: client.length, server: server.length }).toEqual({ client: 1, server: 1 });
    const [c, s] = [client[0]!, server[0]!];
    expect(lineSummary(c)).toEqual(truth);
    expect(lineSummary(s)).toEqual(truth);
    expect([c.pid, c.comm, c.observed_by, c.handshake_success, c.remote_port]).toEqual([
      curl.pid,
      "curl",
      ["libssl", "wire"],
      true,
      ODD_PORT,
    ]);
    expect([s.comm, s.observed_by, s.handshake_success, s.local_port]).toEqual([
      S_SERVER_COMM,
      ["wire"],
      true,
      ODD_PORT,
    ]);
  });

  test("no other line from the namespaces", () => {
    const expected = 2 * 5; // split, bytewise, reordered, reset, unusual port: client and server each
    expect(lines.length).toBe(expected);
  });
});

describe.skipIf(skip !== null)("the wire source's filters: --comm and --pid", () => {
  let dir = "";
  let cert: TlsCert;
  let pair: NetnsPair;
  let hello: Uint8Array = new Uint8Array(0);
  let server: NamespaceServer;

  beforeAll(async () => {
    removeStaleNamespaces();
    dir = mkdtempSync(join(tmpdir(), "carnot-wire-filters-"));
    cert = await makeSelfSignedCert(dir);
    hello = await captureClientHello(SNI);
    pair = createNetnsPair();
    server = await sServerIn(pair, cert, 443);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inClient = () => ["ip", "netns", "exec", pair.client.ns];

  /** gnutls-cli (GnuTLS: only the wire sees it) from the client's namespace; its pid and local port. */
  async function gnutls(): Promise<{ pid: number; exitCode: number }> {
    const r = await runClient([
      ...inClient(),
      "gnutls-cli",
      "--insecure",
      "--sni-hostname",
      "gnutls.lab.example",
      "-p",
      "443",
      pair.server.addr,
    ]);
    return { pid: r.pid, exitCode: r.exitCode };
  }

  /** Runs `fn` under a tracer with `filter`; the lines from the namespaces and the metrics. */
  async function traced(filter: string[], fn: () => Promise<void>) {
    const out = join(dir, `runtime-${filter.join("-")}.jsonl`);
    const metricsJson = join(dir, `metrics-${filter.join("-")}.json`);
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--metrics-json",
      metricsJson,
      ...filter,
    ]);
    try {
      await fn();
      // the server's last answer reaches the tracer before it stops
      await Bun.sleep(300);
    } finally {
      await tracer.stop();
    }
    return {
      lines: readObservations(out).filter((l) => l.local_addr?.startsWith("10.231.0.")),
      metrics: readMetrics(metricsJson),
    };
  }

  test("--comm gnutls-cli: gnutls-cli's line, nothing of python3 or of the server", async () => {
    let g = { pid: 0, exitCode: -1 };
    let py: TrafficResult | null = null;
    const { lines, metrics } = await traced(["--comm", "gnutls-cli"], async () => {
      g = await gnutls();
      py = await sendTraffic("send", pair.server.addr, 443, hello, { prefix: inClient() });
    });
    expect(g.exitCode).toBe(0);
    expect(py).not.toBeNull();
    expect(
      lines.map((l) => [l.role, l.pid, l.comm, l.server_name, l.observed_by, l.handshake_success]),
    ).toEqual([["client", g.pid, "gnutls-cli", "gnutls.lab.example", ["wire"], true]]);
    // python3's socket, and the server's two: left out in the kernel once their owner was seen
    expect(metrics.wire!.filtered).toBeGreaterThanOrEqual(3);
  });

  test("--pid: that process's line only, not gnutls-cli's nor the server's", async () => {
    const held = gatedTraffic("send", pair.server.addr, 443, hello, { prefix: inClient() });
    let py: TrafficResult | null = null;
    let g = { pid: 0, exitCode: -1 };
    const { lines } = await traced(["--pid", String(held.pid)], async () => {
      py = await held.go();
      g = await gnutls();
    });
    expect(g.exitCode).toBe(0);
    expect(
      lines.map((l) => [l.role, l.pid, l.comm, l.local_port, l.server_name, l.negotiated_group]),
    ).toEqual([["client", held.pid, "python3", py!.localPort, SNI, "X25519MLKEM768"]]);
  });
});
