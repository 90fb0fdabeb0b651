/**
 * The independent truth of the wire tests: tshark (Debian's, 4.0) captures a test's traffic and dissects it
 * into per-connection facts — what each ClientHello offered, what each ServerHello / HelloRetryRequest chose,
 * the TLS 1.2 ServerKeyExchange curve, plaintext alerts — keyed by the client's (address, port).
 * Group names come from src/trace/groups.ts (tshark 4.0 prints the ML-KEM code points as bare numbers).
 */
import { join } from "node:path";
import { GROUPS } from "../../../src/trace/groups.ts";
import { type CipherSuiteNames, cipherSuiteName, cipherSuiteNames } from "./cipher-suites.ts";

export interface Capture {
  readonly file: string;
  /** Stops tshark and waits until it has written the file. */
  stop(): Promise<void>;
}

/** Why the capture tests cannot run here, or null. */
export function tsharkSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (packet capture)";
  if (!Bun.which("tshark")) return "tshark (Debian tshark) not installed";
  return null;
}

/**
 * Starts `tshark -i IFACE -f "tcp port P or …" -w DIR/NAME.pcapng` (inside a namespace when `prefix` is
 * `ip netns exec NS`); resolves once tshark says the capture has started, i.e. the filter is on the socket.
 */
export async function startCapture(opts: {
  dir: string;
  ports: number[];
  iface?: string;
  name?: string;
  prefix?: string[];
}): Promise<Capture> {
  const file = join(opts.dir, `${opts.name ?? "capture"}.pcapng`);
  const filter = opts.ports.map((p) => `tcp port ${p}`).join(" or ");
  const proc = Bun.spawn(
    [...(opts.prefix ?? []), "tshark", "-i", opts.iface ?? "lo", "-f", filter, "-w", file, "-q"],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  let err = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  const deadline = Date.now() + 15_000;
  while (!err.includes("Capture started")) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      await proc.exited;
      throw new Error(`tshark did not start capturing: ${err.trim().split("\n").slice(-2).join(" ")}`);
    }
    await Bun.sleep(20);
  }
  return {
    file,
    async stop() {
      // the capture receives the kernel's packets in batches and drops the last batch when interrupted
      await Bun.sleep(600);
      if (proc.exitCode === null) proc.kill("SIGINT");
      const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
      if (!done) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
      await reading;
    },
  };
}

export interface Endpoint {
  addr: string;
  port: number;
}

export interface ClientHelloFacts {
  serverName: string | null;
  /** supported_groups in the client's order, canonical names (GREASE values left out, unknown ones as 0x…) */
  supportedGroups: string[];
  /** the groups of the key_share entries the client sent */
  keyShareGroups: string[];
  /** supported_versions (TLSv1.3, TLSv1.2, …), empty when the extension is absent */
  supportedVersions: string[];
  /** cipher suites offered, IANA names */
  cipherSuites: string[];
  /** ALPN protocols offered */
  alpn: string[];
  /** the client's GREASE values (RFC 8701), if any: Chromium and BoringSSL send them */
  grease: boolean;
}

export interface ServerHelloFacts {
  /** a HelloRetryRequest (a ServerHello with RFC 8446's fixed random) */
  helloRetry: boolean;
  /** the selected version: supported_versions when present, else the legacy version field */
  version: string;
  cipher: string;
  /** ServerHello key_share group, or HelloRetryRequest selected_group */
  keyShareGroup: string | null;
  alpn: string | null;
  /** the server selected a pre-shared key (pre_shared_key extension): a TLS 1.3 resumption */
  preSharedKey: boolean;
}

export interface AlertFacts {
  from: "client" | "server";
  level: number;
  description: number;
}

export interface ConnectionFacts {
  client: Endpoint;
  server: Endpoint;
  clientHellos: ClientHelloFacts[];
  /** HelloRetryRequest first when there was one, then the ServerHello */
  serverHellos: ServerHelloFacts[];
  /** TLS 1.2 ECDHE: the ServerKeyExchange named curve */
  serverKeyExchangeGroup: string | null;
  alerts: AlertFacts[];
}

/** What a handshake came to, in the terms of a trace line. */
export interface HandshakeSummary {
  serverName: string | null;
  groupsOffered: string[];
  keySharesOffered: string[];
  /** null when the server answered nothing */
  helloRetry: boolean | null;
  version: string | null;
  cipher: string | null;
  /** the negotiated group: the ServerHello's key share (TLS 1.3) or the ServerKeyExchange curve (TLS 1.2) */
  group: string | null;
  alpn: string | null;
  /** TLS 1.3: the server selected a pre-shared key; null for other versions (not judged here) */
  resumed: boolean | null;
}

/** SHA-256("HelloRetryRequest"), the random of every HelloRetryRequest (RFC 8446 4.1.3). */
const HRR_RANDOM =
  "cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c";

const VERSIONS: Record<number, string> = {
  772: "TLSv1.3",
  771: "TLSv1.2",
  770: "TLSv1.1",
  769: "TLSv1",
  768: "SSLv3",
};

/** RFC 8446 4.2: the pre_shared_key extension's type */
const EXTENSION_PRE_SHARED_KEY = 41;

const groupByCode = new Map(GROUPS.map((g) => [g.codePoint, g.name]));

/** RFC 8701: 0x0A0A, 0x1A1A, … 0xFAFA */
export const isGrease = (code: number): boolean => (code & 0x0f0f) === 0x0a0a && code >> 8 === (code & 0xff);

const hex = (code: number) => `0x${code.toString(16).padStart(4, "0")}`;
const groupName = (code: number) => groupByCode.get(code) ?? hex(code);
const versionName = (code: number) => VERSIONS[code] ?? hex(code);

/** tshark prints code points in hex ("0x001d") in some fields and in decimal ("4588") in others. */
const code = (value: string) => (value.startsWith("0x") ? Number.parseInt(value, 16) : Number(value));

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Every value of `key` anywhere under `node`, arrays flattened (tshark --no-duplicate-keys makes them). */
function valuesOf(node: Json, key: string, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) valuesOf(n, key, out);
  else if (node !== null && typeof node === "object")
    for (const [k, v] of Object.entries(node)) {
      if (k === key) for (const x of Array.isArray(v) ? v : [v]) out.push(String(x));
      else valuesOf(v, key, out);
    }
  return out;
}

/** Every object under `node` that has `key` (handshake messages, alerts). */
function objectsWith(node: Json, key: string, out: { [key: string]: Json }[] = []) {
  if (Array.isArray(node)) for (const n of node) objectsWith(n, key, out);
  else if (node !== null && typeof node === "object") {
    if (key in node) out.push(node);
    else for (const v of Object.values(node)) objectsWith(v, key, out);
  }
  return out;
}

function clientHello(m: Json, ciphers: CipherSuiteNames): ClientHelloFacts {
  const groups = valuesOf(m, "tls.handshake.extensions_supported_group").map(code);
  const shares = valuesOf(m, "tls.handshake.extensions_key_share_group").map(code);
  const versions = valuesOf(m, "tls.handshake.extensions.supported_version").map(code);
  const suites = valuesOf(m, "tls.handshake.ciphersuite").map(code);
  return {
    serverName: valuesOf(m, "tls.handshake.extensions_server_name")[0] ?? null,
    supportedGroups: groups.filter((c) => !isGrease(c)).map(groupName),
    keyShareGroups: shares.filter((c) => !isGrease(c)).map(groupName),
    supportedVersions: versions.filter((c) => !isGrease(c)).map(versionName),
    cipherSuites: suites.filter((c) => !isGrease(c)).map((c) => cipherSuiteName(ciphers, c)),
    alpn: valuesOf(m, "tls.handshake.extensions_alpn_str"),
    grease: [...groups, ...shares, ...versions, ...suites].some(isGrease),
  };
}

function serverHello(m: Json, ciphers: CipherSuiteNames): ServerHelloFacts {
  const selected = valuesOf(m, "tls.handshake.extensions.supported_version")[0];
  const share =
    valuesOf(m, "tls.handshake.extensions_key_share_group")[0] ??
    valuesOf(m, "tls.handshake.extensions_key_share_selected_group")[0];
  const suite = valuesOf(m, "tls.handshake.ciphersuite")[0];
  return {
    helloRetry: valuesOf(m, "tls.handshake.random")[0] === HRR_RANDOM,
    version: versionName(code(selected ?? valuesOf(m, "tls.handshake.version")[0] ?? "0")),
    cipher: suite === undefined ? "" : cipherSuiteName(ciphers, code(suite)),
    keyShareGroup: share === undefined ? null : groupName(code(share)),
    alpn: valuesOf(m, "tls.handshake.extensions_alpn_str")[0] ?? null,
    preSharedKey: valuesOf(m, "tls.handshake.extension.type").map(Number).includes(EXTENSION_PRE_SHARED_KEY),
  };
}

function endpoints(layers: { [key: string]: Json }): { src: Endpoint; dst: Endpoint; stream: number } {
  const v4 = layers.ip !== undefined;
  const first = (key: string) => valuesOf(layers, key)[0] ?? "";
  return {
    src: { addr: first(v4 ? "ip.src" : "ipv6.src"), port: Number(first("tcp.srcport")) },
    dst: { addr: first(v4 ? "ip.dst" : "ipv6.dst"), port: Number(first("tcp.dstport")) },
    stream: Number(first("tcp.stream")),
  };
}

/** The connections of one client run: to `serverPort`, from `address`, whose first ClientHello names `sni`. */
export function connectionsOfRun(
  wire: readonly ConnectionFacts[],
  serverPort: number,
  address: string,
  sni: string,
): ConnectionFacts[] {
  return wire.filter(
    (c) => c.server.port === serverPort && c.client.addr === address && c.clientHellos[0]?.serverName === sni,
  );
}

/**
 * The TLS facts of every TCP connection in a capture that carried a handshake message or a plaintext
 * alert, in the order the connections started. `tlsPorts` are dissected as TLS whatever their number.
 */
export async function dissectCapture(file: string, tlsPorts: number[] = []): Promise<ConnectionFacts[]> {
  const proc = Bun.spawn(
    [
      "tshark",
      "-r",
      file,
      ...tlsPorts.flatMap((p) => ["-d", `tcp.port==${p},tls`]),
      "-Y",
      "tls.handshake or tls.alert_message",
      "-T",
      "json",
      "--no-duplicate-keys",
      "-J",
      "ip ipv6 tcp tls",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, exit] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (exit !== 0) throw new Error(`tshark -r ${file}: ${err.trim().split("\n").slice(-1)[0]}`);
  const frames = (out.trim() === "" ? [] : JSON.parse(out)) as {
    _source: { layers: { [k: string]: Json } };
  }[];
  const ciphers = cipherSuiteNames();
  const byStream = new Map<number, ConnectionFacts>();
  for (const frame of frames) {
    const layers = frame._source.layers;
    const { src, dst, stream } = endpoints(layers);
    const tls = layers.tls ?? null;
    for (const m of objectsWith(tls, "tls.handshake.type")) {
      const type = Number(valuesOf(m, "tls.handshake.type")[0]);
      if (type !== 1 && type !== 2 && type !== 12) continue;
      // the client is whoever sends the ClientHello; the other messages travel towards it
      const [client, server] = type === 1 ? [src, dst] : [dst, src];
      let c = byStream.get(stream);
      if (!c) {
        c = { client, server, clientHellos: [], serverHellos: [], serverKeyExchangeGroup: null, alerts: [] };
        byStream.set(stream, c);
      }
      if (type === 1) c.clientHellos.push(clientHello(m, ciphers));
      else if (type === 2) c.serverHellos.push(serverHello(m, ciphers));
      else {
        const curve = valuesOf(m, "tls.handshake.server_named_curve")[0];
        if (curve !== undefined) c.serverKeyExchangeGroup = groupName(code(curve));
      }
    }
    for (const a of objectsWith(tls, "tls.alert_message.level")) {
      const c = byStream.get(stream);
      if (!c) continue; // an alert on a connection whose hello was not seen: no client to key it by
      c.alerts.push({
        from: src.addr === c.client.addr && src.port === c.client.port ? "client" : "server",
        level: Number(valuesOf(a, "tls.alert_message.level")[0]),
        description: Number(valuesOf(a, "tls.alert_message.desc")[0]),
      });
    }
  }
  return [...byStream.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
}

/** The handshake of one connection as a trace line would state it (the first ClientHello is what was offered). */
export function summarize(c: ConnectionFacts): HandshakeSummary {
  const hello = c.clientHellos[0];
  const final = c.serverHellos.filter((s) => !s.helloRetry).at(-1) ?? null;
  const group =
    final === null ? null : final.version === "TLSv1.3" ? final.keyShareGroup : c.serverKeyExchangeGroup;
  return {
    serverName: hello?.serverName ?? null,
    groupsOffered: hello?.supportedGroups ?? [],
    keySharesOffered: hello?.keyShareGroups ?? [],
    helloRetry: c.serverHellos.length === 0 ? null : c.serverHellos.some((s) => s.helloRetry),
    version: final?.version ?? null,
    cipher: final?.cipher || null,
    group,
    alpn: final?.alpn ?? null,
    resumed: final?.version === "TLSv1.3" ? final.preSharedKey : null,
  };
}

export interface Segment {
  frame: number;
  src: Endpoint;
  dst: Endpoint;
  /** relative sequence number */
  seq: number;
  /** TCP payload length */
  len: number;
  /** the set flags as tshark's tcp.flags.str letters: "S", "AS", "A", "AP", "AR", "AF" */
  flags: string;
  retransmission: boolean;
  outOfOrder: boolean;
  /** SACK blocks the segment carries, relative [left, right) edges */
  sack: [number, number][];
}

/** Every TCP segment of a capture, in capture order, with tshark's analysis of it. */
export async function tcpSegments(file: string): Promise<Segment[]> {
  const fields = [
    "frame.number",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.seq",
    "tcp.len",
    "tcp.flags.str",
    "tcp.analysis.retransmission",
    "tcp.analysis.out_of_order",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
  ];
  const proc = Bun.spawn(
    [
      "tshark",
      "-r",
      file,
      "-Y",
      "tcp",
      "-T",
      "fields",
      "-E",
      "separator=\t",
      ...fields.flatMap((f) => ["-e", f]),
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [out, , exit] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (exit !== 0) throw new Error(`tshark -r ${file} failed (exit ${exit})`);
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((line) => {
      const f = line.split("\t");
      return {
        frame: Number(f[0]),
        src: { addr: f[1] || f[2] || "", port: Number(f[3]) },
        dst: { addr: f[4] || f[5] || "", port: Number(f[6]) },
        seq: Number(f[7]),
        len: Number(f[8]),
        flags: (f[9] ?? "").replace(/[·]/g, "").trim(),
        retransmission: (f[10] ?? "") !== "",
        outOfOrder: (f[11] ?? "") !== "",
        sack: (f[12] ?? "")
          .split(",")
          .filter((x) => x !== "")
          .map((left, i) => [Number(left), Number((f[13] ?? "").split(",")[i])] as [number, number]),
      };
    });
}
