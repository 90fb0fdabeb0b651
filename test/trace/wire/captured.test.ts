/**
 * The wire parser on real handshakes: real peers (OpenSSL 3.0 and 3.5, curl, python3, gnutls-cli, Bun's own
 * fetch and Bun.serve) on loopback, captured by dumpcap; each connection's segments are fed to a
 * WireConnection for each end (as the kernel would hand them over), and every field is compared with tshark's
 * own dissection of the same capture and with what the peers report. Needs root (capture on `lo`);
 * CARNOT_KEEP_CAPTURE=1 keeps the capture and its directory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freeTcpPort,
  makeSelfSignedCert,
  type RunningServer,
  startOpenSslServer,
  SYSTEM_PYTHON,
  type TlsCert,
} from "../../../src/lab/loopback.ts";
import { indexGroups } from "../../../src/trace/groups.ts";
import { type WireHandshake, WireConnection, wireContext } from "../../../src/trace/wire/connection.ts";
import { ALERT_NAMES, CIPHER_SUITE_NAMES, isGrease } from "../../../src/trace/wire/tls/names.ts";
import { CHROMIUM, dumpHttpsDom } from "../../support/chromium.ts";
import { openssl35, parseSClient } from "../../support/kex-matrix.ts";
import { cipherSuiteNames } from "../../support/lab/cipher-suites.ts";
import {
  type CapturedConnection,
  captureSkipReason,
  readConnections,
  startCapture,
  framesOf,
  readTlsFrames,
  type TsharkFrame,
  type TsharkTls,
  type WireEvent,
} from "../../support/wire-capture.ts";

const skip = captureSkipReason();
if (skip) console.warn(`skipping the captured-handshake tests: ${skip}`);

const groups = indexGroups();
const ctx = wireContext();
const GET = "GET / HTTP/1.0\r\n\r\n";

interface Peer {
  out: string;
  code: number;
}

async function run(cmd: string[], input = ""): Promise<Peer> {
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.write(input);
  await proc.stdin.end();
  const timer = setTimeout(() => proc.kill(), 15_000);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { out: out + err, code };
}

/** What a case's connection must show beyond what tshark dissects (the outcome, the facts the case is about). */
interface Expected {
  success: boolean | null;
  error: string | null;
  helloRetry?: boolean;
  resumed?: boolean;
  group?: string | null;
  alpn?: string | null;
  keyShares?: string[];
  grease?: boolean;
}

interface Case {
  name: string;
  port: number;
  /**
   * runs servers and clients; returns the peers' reports (one per connection, in order) and the expectations,
   * or with `each` one expectation for every connection the client opened
   */
  run(port: number): Promise<{ peers: Peer[]; expected: Expected[]; each?: boolean }>;
  connections?: CapturedConnection[];
  peers?: Peer[];
  expected?: Expected[];
  each?: boolean;
}

let dir = "";
let ecCert: TlsCert;
let rsaCert: TlsCert;
let stdnames: ReadonlyMap<string, string>;

async function withServer<T>(server: Promise<RunningServer>, body: (port: number) => Promise<T>): Promise<T> {
  const s = await server;
  try {
    return await body(s.port);
  } finally {
    await s.stop();
  }
}

/** s_client sends one request and waits for the server to close (a TLS 1.3 session arrives after the handshake). */
const sClient = (port: number, args: string[], command = ["openssl"]) =>
  run([...command, "s_client", "-connect", `127.0.0.1:${port}`, "-ign_eof", ...args], GET);

/** python3's ssl client (system libssl): handshake, one request, one read; an error is printed, not raised. */
const PYTHON_CLIENT = `import socket, ssl, sys
c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE
try:
    s = c.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname=sys.argv[2])
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); s.recv(100); print(s.version()); s.close()
except (ssl.SSLError, OSError) as e:
    print(e)`;

const ok = (extra: Partial<Expected> = {}): Expected => ({ success: true, error: null, ...extra });

/** A server that reads the ClientHello, then closes (FIN) or resets (RST) the connection. */
async function abortingServer(port: number, mode: "fin" | "rst") {
  const script = `
import socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.recv(65536)
if sys.argv[2] == "rst": c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
`;
  const proc = Bun.spawn([SYSTEM_PYTHON, "-c", script, String(port), mode], {
    stdout: "pipe",
    stderr: "ignore",
  });
  // one connection only: wait for its word rather than probing the port
  const reader = proc.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  return proc;
}

const CASES: Case[] = [
  {
    name: "TLS 1.3 (OpenSSL 3.0 s_client → s_server), ALPN offered",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => ({
        peers: [await sClient(port, ["-servername", "tls13.example", "-alpn", "h2,http/1.1"])],
        expected: [
          ok({ helloRetry: false, resumed: false, group: "X25519", alpn: null, keyShares: ["X25519"] }),
        ],
      })),
  },
  {
    name: "TLS 1.2 ECDHE, ALPN selected",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port, args: ["-alpn", "http/1.1"] }), async () => ({
        peers: [await sClient(port, ["-tls1_2", "-servername", "tls12.example", "-alpn", "h2,http/1.1"])],
        expected: [ok({ resumed: false, group: "X25519", alpn: "http/1.1" })],
      })),
  },
  {
    name: "TLS 1.2 DHE with RFC 7919 ffdhe2048",
    port: 0,
    run: async (port) => {
      const params = join(dir, "ffdhe2048.pem");
      await Bun.$`openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out ${params}`.quiet();
      return withServer(startOpenSslServer(rsaCert, { port, args: ["-dhparam", params] }), async () => ({
        peers: [await sClient(port, ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"])],
        expected: [ok({ group: "ffdhe2048", alpn: null })],
      }));
    },
  },
  {
    // OpenSSL 3.0 picks RFC 3526's 2048-bit MODP prime itself: a prime no TLS group names
    name: "TLS 1.2 DHE with a prime that is no named group",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(rsaCert, { port }), async () => ({
        peers: [await sClient(port, ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"])],
        expected: [ok({ group: null })],
      })),
  },
  {
    name: "HelloRetryRequest: key share X25519, server wants secp384r1",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port, args: ["-groups", "secp384r1"] }), async () => ({
        peers: [await sClient(port, ["-groups", "X25519:secp384r1", "-servername", "hrr.example"])],
        expected: [ok({ helloRetry: true, group: "secp384r1", keyShares: ["X25519"] })],
      })),
  },
  {
    name: "TLS 1.3 resumption (PSK)",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => {
        const sess = join(dir, "tls13.sess");
        const first = await sClient(port, ["-sess_out", sess]);
        const second = await sClient(port, ["-sess_in", sess]);
        return { peers: [first, second], expected: [ok({ resumed: false }), ok({ resumed: true })] };
      }),
  },
  {
    name: "TLS 1.2 resumption",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => {
        const sess = join(dir, "tls12.sess");
        const first = await sClient(port, ["-tls1_2", "-sess_out", sess]);
        const second = await sClient(port, ["-tls1_2", "-sess_in", sess]);
        return { peers: [first, second], expected: [ok({ resumed: false }), ok({ resumed: true })] };
      }),
  },
  {
    name: "alert: no group in common",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port, args: ["-groups", "secp384r1"] }), async () => ({
        peers: [await sClient(port, ["-groups", "X25519"])],
        expected: [{ success: false, error: "handshake_failure" }],
      })),
  },
  {
    name: "alert: protocol version",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port, args: ["-tls1_3"] }), async () => ({
        peers: [await sClient(port, ["-tls1_2"])],
        expected: [{ success: false, error: "protocol_version" }],
      })),
  },
  {
    name: "hybrid X25519MLKEM768 (OpenSSL 3.5 s_client → s_server)",
    port: 0,
    run: async (port) => {
      const v35 = openssl35();
      if (!v35) return { peers: [], expected: [] };
      return withServer(startOpenSslServer(ecCert, { port, command: v35.command }), async () => ({
        peers: [await sClient(port, ["-servername", "pq.example"], v35.command)],
        expected: [ok({ group: "X25519MLKEM768", keyShares: ["X25519MLKEM768", "X25519"] })],
      }));
    },
  },
  {
    name: "hybrid X25519MLKEM768 (Bun fetch → Bun.serve), GREASE",
    port: 0,
    run: async (port) => {
      const server = Bun.serve({
        port,
        hostname: "127.0.0.1",
        tls: { cert: Bun.file(ecCert.cert), key: Bun.file(ecCert.key) },
        fetch: () => new Response("ok"),
      });
      try {
        const res = await fetch(`https://127.0.0.1:${port}/`, { tls: { rejectUnauthorized: false } });
        const body = await res.text();
        return {
          peers: [{ out: body, code: res.status === 200 ? 0 : 1 }],
          expected: [ok({ group: "X25519MLKEM768" })],
        };
      } finally {
        server.stop(true);
      }
    },
  },
  {
    name: "headless Chromium → s_server (GREASE)",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => {
        if (!CHROMIUM) return { peers: [], expected: [] };
        const dom = dumpHttpsDom("chromium.example", port);
        // Chromium opens a second connection for the icon: each is a handshake of its own
        return { peers: [{ out: dom, code: 0 }], expected: [ok({ grease: true })], each: true };
      }),
  },
  {
    name: "curl → s_server",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => ({
        peers: [
          await run([
            "curl",
            "-sk",
            "--resolve",
            `curl.example:${port}:127.0.0.1`,
            `https://curl.example:${port}/`,
          ]),
        ],
        expected: [ok({ group: "X25519" })],
      })),
  },
  {
    name: "python3 ssl → s_server",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => ({
        peers: [await run([SYSTEM_PYTHON, "-c", PYTHON_CLIENT, String(port), "py.example"])],
        expected: [ok({ group: "X25519" })],
      })),
  },
  {
    name: "gnutls-cli → s_server",
    port: 0,
    run: (port) =>
      withServer(startOpenSslServer(ecCert, { port }), async () => ({
        peers: [
          await run(
            ["gnutls-cli", "--insecure", "--sni-hostname=gnutls.example", "-p", String(port), "127.0.0.1"],
            GET,
          ),
        ],
        expected: [ok({})],
      })),
  },
  {
    name: "server resets after the ClientHello",
    port: 0,
    run: async (port) => {
      const server = await abortingServer(port, "rst");
      const peer = await sClient(port, ["-servername", "rst.example"]);
      await server.exited;
      return { peers: [peer], expected: [{ success: false, error: "reset" }] };
    },
  },
  {
    // python's ssl client sends no alert when the server hangs up (s_client sends decode_error)
    name: "server closes after the ClientHello",
    port: 0,
    run: async (port) => {
      const server = await abortingServer(port, "fin");
      const peer = await run([SYSTEM_PYTHON, "-c", PYTHON_CLIENT, String(port), "fin.example"]);
      await server.exited;
      return { peers: [peer], expected: [{ success: false, error: "closed" }] };
    },
  },
];

let pcap = "";
let frames: TsharkFrame[] = [];

/** Feeds one end's events to a new WireConnection, stopping where it says it is decided (as the kernel would). */
function feed(events: WireEvent[]): { conn: WireConnection; result: WireHandshake } {
  const conn = new WireConnection(ctx);
  for (const e of events) {
    if (conn.decided) break;
    if (e.kind === "segment") conn.segment(e.direction, e.offset, e.bytes);
    else conn.end(e.direction, e.end, e.offset);
  }
  return { conn, result: conn.result() };
}

const groupName = (code: number) =>
  groups.byCodePoint.get(code)?.name ?? `0x${code.toString(16).padStart(4, "0")}`;
const noGrease = (values: number[]) => values.filter((v) => !isGrease(v));
const hex4 = (v: number) => v.toString(16).padStart(4, "0");

/** JA4 from tshark's dissected fields, computed here from the specification independently of the parser. */
function ja4FromTshark(ch: TsharkTls): string {
  const versions = noGrease(ch.supportedVersions);
  const version = versions.length > 0 ? Math.max(...versions) : ch.helloVersions[0]!;
  const v = { 772: "13", 771: "12", 770: "11", 769: "10" }[version] ?? "00";
  const ciphers = noGrease(ch.ciphers);
  const exts = noGrease(ch.extensionTypes);
  const first = ch.alpn[0];
  const alpn = first ? first[0]! + first[first.length - 1]! : "00";
  const two = (n: number) => String(Math.min(n, 99)).padStart(2, "0");
  const a = `t${v}${exts.includes(0) ? "d" : "i"}${two(ciphers.length)}${two(exts.length)}${alpn}`;
  const hash = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex").slice(0, 12);
  const b = hash(
    [...ciphers]
      .sort((x, y) => x - y)
      .map(hex4)
      .join(","),
  );
  let c = [...exts]
    .filter((e) => e !== 0 && e !== 16)
    .sort((x, y) => x - y)
    .map(hex4)
    .join(",");
  const sigs = noGrease(ch.signatureAlgorithms).map(hex4).join(",");
  if (sigs) c += `_${sigs}`;
  return `${a}_${b}_${hash(c)}`;
}

describe.skipIf(skip !== null)("the wire parser on real handshakes, field by field against tshark", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-wire-"));
    ecCert = await makeSelfSignedCert(dir);
    const rsaDir = join(dir, "rsa");
    await Bun.$`mkdir -p ${rsaDir} && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -keyout ${rsaDir}/key.pem -out ${rsaDir}/cert.pem`.quiet();
    rsaCert = { cert: join(rsaDir, "cert.pem"), key: join(rsaDir, "key.pem") };
    stdnames = cipherSuiteNames().byOpenSslName;
    for (const c of CASES) c.port = freeTcpPort();
    const capture = await startCapture(
      CASES.map((c) => c.port),
      join(dir, "handshakes.pcapng"),
    );
    for (const c of CASES) {
      const { peers, expected, each } = await c.run(c.port);
      c.peers = peers;
      c.expected = expected;
      c.each = each ?? false;
    }
    pcap = await capture.stop();
    const connections = readConnections(pcap);
    frames = readTlsFrames(pcap);
    for (const c of CASES) {
      // connections whose client sent bytes (not the probes that wait for a server to listen)
      c.connections = connections.filter(
        (k) => k.serverPort === c.port && k.client.some((e) => e.kind === "segment" && e.direction === 0),
      );
    }
  }, 120_000);

  afterAll(() => {
    if (dir && !process.env.CARNOT_KEEP_CAPTURE) rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    test(c.name, () => {
      if (c.expected!.length === 0) {
        console.warn(`${c.name}: skipped (its peer is missing: make openssl35, chromium)`);
        return;
      }
      if (c.each) expect(c.connections!.length).toBeGreaterThanOrEqual(1);
      else expect(c.connections!.length).toBe(c.expected!.length);
      c.connections!.forEach((k, i) => {
        const want = c.expected![c.each ? 0 : i]!;
        const client = feed(k.client);
        const server = feed(k.server);
        // both ends see the same handshake, each in its own role
        expect(client.result.role).toBe("client");
        expect(server.result.role).toBe("server");
        const sameAs = (h: WireHandshake) => ({ ...h, role: null, protectedRecords: null });
        expect(sameAs(server.result)).toEqual(sameAs(client.result));
        const r = client.result;
        expect(r.problem).toBeNull();
        expect({ success: r.success, error: r.error }).toEqual({ success: want.success, error: want.error });

        // the ClientHello against tshark
        const ch = framesOf(frames, k.stream, k.clientPort, [1])[0]!;
        const hello = client.conn.clientHello!;
        expect(hello.cipherSuites).toEqual(ch.ciphers);
        expect(hello.extensions).toEqual(ch.extensionTypes);
        expect(hello.supportedGroups ?? []).toEqual(ch.supportedGroups);
        expect(hello.keyShares ?? []).toEqual(ch.keyShareGroups);
        expect(hello.supportedVersions ?? []).toEqual(ch.supportedVersions);
        expect(hello.signatureAlgorithms ?? []).toEqual(ch.signatureAlgorithms);
        expect(r.client!.serverName).toBe(ch.serverName[0] ?? null);
        expect(r.client!.alpnOffered).toEqual(ch.alpn);
        expect(r.client!.groupsOffered).toEqual(noGrease(ch.supportedGroups).map(groupName));
        expect(r.client!.keySharesOffered).toEqual(noGrease(ch.keyShareGroups).map(groupName));
        expect(r.client!.ciphersOffered).toEqual(
          noGrease(ch.ciphers).map((x) => CIPHER_SUITE_NAMES.get(x) ?? `0x${hex4(x)}`),
        );
        expect(r.client!.ja4).toBe(ja4FromTshark(ch));
        if (want.keyShares) expect(r.client!.keySharesOffered).toEqual(want.keyShares);
        if (want.grease !== undefined) expect(r.client!.grease).toBe(want.grease);

        // alerts against tshark
        const alerts = [
          ...framesOf(frames, k.stream, k.clientPort),
          ...framesOf(frames, k.stream, k.serverPort),
        ].flatMap((t) => t.alertDescriptions);
        if (want.success === false && alerts.length > 0) expect(r.error).toBe(ALERT_NAMES.get(alerts[0]!)!);
        expect(client.conn.alerts.map((a) => a.description)).toEqual(
          alerts.slice(0, client.conn.alerts.length),
        );

        // the ServerHello (and HelloRetryRequest, ServerKeyExchange) against tshark
        const sh = framesOf(frames, k.stream, k.serverPort, [2, 12]);
        if (want.error === "reset" || want.error === "closed" || alerts.length > 0) {
          if (sh.length === 0) expect(r.server).toBeNull();
          return;
        }
        const s = r.server!;
        const fields = {
          ciphers: sh.flatMap((t) => t.ciphers),
          versions: sh.flatMap((t) => t.supportedVersions),
          legacy: sh.flatMap((t) => t.helloVersions),
          shares: sh.flatMap((t) => t.keyShareGroups),
          selected: sh.flatMap((t) => t.keyShareSelectedGroup),
          curve: sh.flatMap((t) => t.namedCurve),
          prime: sh.flatMap((t) => t.dhPrime),
          alpn: sh.flatMap((t) => t.alpn),
          psk: sh.flatMap((t) => t.pskSelected),
          sessionIds: sh.flatMap((t) => t.sessionIds),
        };
        expect(s.cipherId).toBe(fields.ciphers.at(-1)!);
        expect(s.tlsVersionId).toBe(fields.versions.at(-1) ?? fields.legacy.at(-1)!);
        expect(s.helloRetry).toBe(fields.selected.length > 0);
        if (s.tlsVersion === "TLSv1.3") {
          expect(s.negotiatedGroupId).toBe(fields.shares.at(-1) ?? null);
          expect(s.resumed).toBe(fields.psk.length > 0);
          expect(s.alpn).toBeNull();
        } else {
          if (fields.curve.length > 0) expect(s.negotiatedGroupId).toBe(fields.curve[0]!);
          expect(s.alpn).toBe(fields.alpn[0] ?? null);
          const clientSid = ch.sessionIds[0] ?? "";
          if (clientSid !== "" && fields.sessionIds[0] === clientSid) expect(s.resumed).toBe(true);
        }
        if (fields.prime.length > 0) {
          const ffdhe2048 = Bun.spawnSync([
            "sh",
            "-c",
            "openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 | openssl asn1parse",
          ]).stdout.toString();
          const p = /INTEGER\s+:([0-9A-F]+)/.exec(ffdhe2048)![1]!.toLowerCase();
          expect(s.negotiatedGroup).toBe(fields.prime[0]!.replaceAll(":", "") === p ? "ffdhe2048" : null);
        }
        if (want.helloRetry !== undefined) expect(s.helloRetry).toBe(want.helloRetry);
        if (want.resumed !== undefined) expect(s.resumed).toBe(want.resumed);
        if (want.group !== undefined) expect(s.negotiatedGroup).toBe(want.group);
        if (want.alpn !== undefined) expect(s.alpn).toBe(want.alpn);
        expect(s.kexClass).toBe(groups.byCodePoint.get(s.negotiatedGroupId ?? -1)?.kexClass ?? null);

        // and what the OpenSSL client itself reports
        const peer = c.peers![c.each ? 0 : i]!;
        if (/s_client/.test(c.name) || /CONNECTED/.test(peer.out)) {
          const said = parseSClient(peer.out, stdnames);
          if (said.version) expect(s.tlsVersion).toBe(said.version);
          if (said.cipher) expect(s.cipher).toBe(said.cipher);
          // s_client says only "DH, 2048 bits" of a TLS 1.2 prime: the prime itself is checked above
          if (said.group && !s.resumed && fields.prime.length === 0)
            expect(s.negotiatedGroup).toBe(said.group);
          if (/^Reused,/m.test(peer.out)) expect(s.resumed).toBe(true);
        }
      });
    });
  }
});
