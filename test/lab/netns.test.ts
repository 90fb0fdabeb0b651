/**
 * The wire edge cases' traffic, each generator on its own (no tracer yet): across two namespaces joined by a
 * veth pair with MTU 1500, tshark on the client's side shows the segments as intended and the server
 * (OpenSSL 3.5 s_server, or a plain HTTP server on 443) sees what it should. Needs root.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCert, runClient, SYSTEM_PYTHON, type TlsCert } from "../../src/lab/loopback.ts";
import { openssl35 } from "../support/kex-matrix.ts";
import {
  createNetnsPair,
  labNamespaces,
  type NetnsPair,
  netnsSkipReason,
  removeStaleNamespaces,
  serveInNamespace,
} from "../support/lab/netns.ts";
import {
  captureClientHello,
  dropFirstHelloSegmentOnce,
  garbageAfterRecordHeader,
  PLAIN_HTTP_REQUEST,
  sendTraffic,
  type TrafficResult,
} from "../support/lab/traffic.ts";
import {
  dissectCapture,
  type Segment,
  startCapture,
  summarize,
  tcpSegments,
  tsharkSkipReason,
} from "../support/lab/tshark.ts";

const skip =
  netnsSkipReason() ??
  tsharkSkipReason() ??
  (Bun.which("nft") ? null : "nft (Debian nftables) not installed") ??
  (openssl35() ? null : ".cache/openssl35 missing (make openssl35)");
if (skip) console.warn(`skipping the namespace traffic tests: ${skip}`);

/** TCP payload per segment on a 1500-byte link with timestamps: 1500 − 20 (IP) − 32 (TCP) */
const MSS = 1448;
/** A ServerHello record: handshake (16), TLS 1.2 record version (03 03), …, type ServerHello (02) */
const SERVER_HELLO = /^160303[0-9a-f]{4}02/;

describe.skipIf(skip !== null)("wire edge-case traffic across two namespaces (veth, MTU 1500)", () => {
  let dir = "";
  let cert: TlsCert;
  let pair: NetnsPair;
  let hello: Uint8Array = new Uint8Array(0);

  beforeAll(async () => {
    removeStaleNamespaces();
    dir = mkdtempSync(join(tmpdir(), "carnot-lab-netns-"));
    cert = await makeSelfSignedCert(dir);
    hello = await captureClientHello("raw.lab.example");
    pair = createNetnsPair();
  });

  afterAll(() => {
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inClient = () => ["ip", "netns", "exec", pair.client.ns];

  /** OpenSSL 3.5 `s_server -www` on the server side, for the duration of `fn`. */
  async function withTlsServer<T>(port: number, fn: () => Promise<T>): Promise<T> {
    const v35 = openssl35()!;
    const server = await serveInNamespace(
      pair.server,
      [
        ...v35.command,
        "s_server",
        "-accept",
        `${pair.server.addr}:${port}`,
        "-cert",
        cert.cert,
        "-key",
        cert.key,
      ].concat(["-www", "-quiet"]),
      port,
    );
    try {
      return await fn();
    } finally {
      await server.stop();
    }
  }

  /** Runs `fn` under a capture on the client's veth; returns its result and the capture file. */
  async function captured<T>(name: string, port: number, fn: () => Promise<T>) {
    const capture = await startCapture({
      dir,
      ports: [port],
      iface: pair.client.dev,
      name,
      prefix: inClient(),
    });
    try {
      return { result: await fn(), file: capture.file };
    } finally {
      await capture.stop();
    }
  }

  const dataFrom = (segments: Segment[], port: number) =>
    segments.filter((s) => s.src.port === port && s.len > 0);

  /** The server's answer to a hybrid ClientHello: a ServerHello choosing X25519MLKEM768, per tshark. */
  async function expectHybridServerHello(r: TrafficResult, file: string, port: number) {
    expect(r.head).toMatch(SERVER_HELLO);
    const conns = await dissectCapture(file, [port]);
    expect(conns.map((c) => [c.client.port, summarize(c).serverName, summarize(c).group])).toEqual([
      [r.localPort, "raw.lab.example", "X25519MLKEM768"],
    ]);
  }

  test("the captured hybrid ClientHello is longer than one segment", () => {
    expect(hello[0]).toBe(0x16);
    expect(hello.length).toBeGreaterThan(MSS);
  });

  test("written at once, it crosses the link as two segments; tshark reassembles it", async () => {
    const { result, file } = await withTlsServer(443, () =>
      captured("whole", 443, () => sendTraffic("send", pair.server.addr, 443, hello, { prefix: inClient() })),
    );
    const data = dataFrom(await tcpSegments(file), result.localPort);
    expect(data.map((s) => [s.seq, s.len])).toEqual([
      [1, MSS],
      [1 + MSS, hello.length - MSS],
    ]);
    await expectHybridServerHello(result, file, 443);
  });

  test("one byte per segment: as many segments as bytes, and the server still answers", async () => {
    const { result, file } = await withTlsServer(443, () =>
      captured("bytewise", 443, () =>
        sendTraffic("bytewise", pair.server.addr, 443, hello, { arg: 1, prefix: inClient() }),
      ),
    );
    const data = dataFrom(await tcpSegments(file), result.localPort);
    expect(data.length).toBe(hello.length);
    expect(data.every((s, i) => s.len === 1 && s.seq === i + 1 && !s.retransmission)).toBe(true);
    await expectHybridServerHello(result, file, 443);
  }, 60_000);

  test("reordered: the server receives the second segment first, then the first again", async () => {
    const undo = dropFirstHelloSegmentOnce(pair.server, 443);
    const { result, file } = await withTlsServer(443, () =>
      captured("reordered", 443, () =>
        sendTraffic("split", pair.server.addr, 443, hello, { arg: 1000, prefix: inClient() }),
      ),
    ).finally(undo);
    const segments = await tcpSegments(file);
    const data = dataFrom(segments, result.localPort);
    expect(data.map((s) => [s.seq, s.len])).toEqual([
      [1, 1000],
      [1001, hello.length - 1000],
      [1, 1000],
    ]);
    // before the first segment comes again, the server acknowledges only the second (a SACK block)
    const resent = segments.indexOf(data[2]!);
    const sacked = segments.slice(0, resent).find((s) => s.src.port === 443 && s.sack.length > 0);
    expect(sacked?.sack).toEqual([[1001, 1 + hello.length]]);
    await expectHybridServerHello(result, file, 443);
  });

  test("a reset after the ClientHello: the client's RST ends it, and the server takes the next one", async () => {
    const { result, file, next } = await withTlsServer(443, async () => {
      const cut = await captured("reset", 443, () =>
        sendTraffic("reset", pair.server.addr, 443, hello, { prefix: inClient() }),
      );
      const next = await sendTraffic("send", pair.server.addr, 443, hello, { prefix: inClient() });
      return { ...cut, next };
    });
    const mine = (await tcpSegments(file)).filter((s) => s.src.port === result.localPort);
    expect(mine.filter((s) => s.len > 0).reduce((n, s) => n + s.len, 0)).toBe(hello.length);
    expect(mine.at(-1)?.flags).toContain("R");
    expect(mine.some((s) => s.flags.includes("F"))).toBe(false);
    expect(next.head).toMatch(SERVER_HELLO);
  });

  test("plain HTTP on port 443: an HTTP answer, and no TLS on the wire", async () => {
    const web = mkdtempSync(join(dir, "www-"));
    const server = await serveInNamespace(
      pair.server,
      [SYSTEM_PYTHON, "-m", "http.server", "443", "--bind", pair.server.addr, "--directory", web],
      443,
    );
    const { result, file } = await captured("plain", 443, () =>
      sendTraffic("send", pair.server.addr, 443, PLAIN_HTTP_REQUEST, { prefix: inClient() }),
    ).finally(() => server.stop());
    expect(Buffer.from(result.head, "hex").toString("latin1")).toStartWith("HTTP/1.0 200");
    expect(result.ended).toBe("eof");
    expect(await dissectCapture(file, [443])).toEqual([]);
  });

  test("TLS on an unusual port: curl's handshake to 5443 is dissected as TLS", async () => {
    const { result, file } = await withTlsServer(5443, () =>
      captured("unusual-port", 5443, () =>
        runClient([
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
          `odd.lab.example:5443:${pair.server.addr}`,
          "https://odd.lab.example:5443/",
        ]),
      ),
    );
    expect(result.exitCode).toBe(0);
    const conns = await dissectCapture(file, [5443]);
    expect(conns.map((c) => [c.client.port, summarize(c).serverName, summarize(c).version])).toEqual([
      [Number(result.stdout), "odd.lab.example", "TLSv1.3"],
    ]);
  });

  test("garbage behind a TLS record header: no ServerHello, no ClientHello, the server takes the next one", async () => {
    const garbage = garbageAfterRecordHeader(300);
    const { result, file, next } = await withTlsServer(443, async () => {
      const sent = await captured("garbage", 443, () =>
        sendTraffic("send", pair.server.addr, 443, garbage, { prefix: inClient() }),
      );
      const next = await sendTraffic("send", pair.server.addr, 443, hello, { prefix: inClient() });
      return { ...sent, next };
    });
    const data = dataFrom(await tcpSegments(file), result.localPort);
    expect(data.reduce((n, s) => n + s.len, 0)).toBe(garbage.length);
    expect(result.head).not.toMatch(SERVER_HELLO);
    expect((await dissectCapture(file, [443])).filter((c) => c.clientHellos.length > 0)).toEqual([]);
    expect(next.head).toMatch(SERVER_HELLO);
  });

  test("leaves no namespace and no veth behind", () => {
    pair.destroy();
    const mine = `-${process.pid}-`;
    expect(labNamespaces().filter((n) => n.includes(mine))).toEqual([]);
    const links = Bun.spawnSync(["ip", "-o", "link"]).stdout.toString();
    expect(links.includes(pair.client.dev) || links.includes(pair.server.dev)).toBe(false);
  });
});
