/**
 * The key-exchange accuracy matrix (issue 4): real handshakes between real peers on 127.0.0.1, traced by
 * `carnot trace`; each traced line's group, version and cipher is compared with what a peer itself reports
 * (the python witness's SSL object and wire messages, `openssl s_client`'s summary, Node's getters).
 * Used by test/trace/kex-matrix.test.ts (asserts every row) and bench/kex-accuracy.ts (prints the table).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  childPids,
  curl,
  freeTcpPort,
  makeSelfSignedCert,
  type RunningServer,
  startNginx,
  SYSTEM_PYTHON,
  type TlsCert,
  waitForTcp,
  startOpenSslServer,
} from "../../src/lab/loopback.ts";
import { GROUPS } from "../../src/trace/groups.ts";
import { cipherSuiteNames } from "./lab/cipher-suites.ts";
import type { ChainedObservation } from "../../src/trace/observation.ts";
import { readObservations, REPO, startTracer } from "./tracer.ts";

export const WITNESS = join(REPO, "test", "support", "tls_witness.py");
export const OPENSSL35_DIR = join(REPO, ".cache", "openssl35");
export const NODE_DIR = join(REPO, ".cache", "node");
export const NODE_PKG_VERSION = "26.10.0";

/** Debian 13's OpenSSL 3.5 unpacked by test/support/fetch-openssl35.sh, run through its own loader. */
export function openssl35(): { libssl: string; command: string[] } | null {
  const lib = join(OPENSSL35_DIR, "root", "usr", "lib", "x86_64-linux-gnu");
  const bin = join(OPENSSL35_DIR, "root", "usr", "bin", "openssl");
  const loader = join(lib, "ld-linux-x86-64.so.2");
  if (!existsSync(bin) || !existsSync(loader)) return null;
  return { libssl: join(lib, "libssl.so.3"), command: [loader, "--library-path", lib, bin] };
}

export function nodeBinary(): string | null {
  const node = join(NODE_DIR, NODE_PKG_VERSION, "bin", "node");
  return existsSync(node) ? node : null;
}

/** What a peer reported about one handshake. */
export interface PeerReport {
  version: string | null;
  cipher: string | null;
  group: string | null;
  /** the groups the client offered, as the server received them (witness server only) */
  offered?: string[];
}

export interface MatrixRow {
  case: string;
  side: "client" | "server";
  field: string;
  expected: unknown;
  observed: unknown;
}

const byCode = new Map(GROUPS.map((g) => [g.codePoint, g.name]));
const byLowerName = new Map(
  GROUPS.flatMap((g) => [g.name, ...g.aliases].map((n) => [n.toLowerCase(), g.name])),
);

/** The summary `openssl s_client` prints: protocol, cipher, and the key exchange (3.5: "Negotiated … group"). */
export function parseSClient(text: string, stdnames: ReadonlyMap<string, string>): PeerReport {
  const fresh = /(?:New|Reused), (\S+), Cipher is (\S+)/.exec(text);
  const negotiated = /Negotiated TLS1\.3 group: (\S+)/.exec(text)?.[1];
  const temp = /(?:Server|Peer) Temp Key: ([^\n]+)/.exec(text)?.[1];
  let group: string | null = null;
  if (negotiated) group = byLowerName.get(negotiated.toLowerCase()) ?? negotiated;
  else if (temp) {
    const parts = temp.split(",").map((p) => p.trim());
    if (parts[0] === "DH")
      group = `ffdhe${/(\d+) bits/.exec(temp)?.[1]}`; // TLS 1.3 DH is always an ffdhe group
    else if (parts[0] === "ECDH") group = byLowerName.get(parts[1]!.toLowerCase()) ?? parts[1]!;
    else group = byLowerName.get(parts[0]!.toLowerCase()) ?? parts[0]!;
  }
  const cipher = fresh?.[2] ?? null;
  return { version: fresh?.[1] ?? null, cipher: cipher && (stdnames.get(cipher) ?? cipher), group };
}

interface WitnessLine {
  pid: number;
  role: string;
  version: string;
  cipher: string;
  cipher_code: number | null;
  group: number | null;
  offered?: number[] | null;
  error?: string;
}

function witnessReport(line: WitnessLine, stdnames: ReadonlyMap<string, string>): PeerReport {
  return {
    version: line.version,
    cipher: stdnames.get(line.cipher) ?? line.cipher,
    group: line.group === null ? null : (byCode.get(line.group) ?? `0x${line.group.toString(16)}`),
    ...(line.offered && line.role === "server"
      ? { offered: line.offered.map((c) => byCode.get(c) ?? `0x${c.toString(16)}`) }
      : {}),
  };
}

async function spawnCollect(
  cmd: string[],
  env?: Record<string, string>,
): Promise<{ pid: number; out: string; code: number }> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: env ?? process.env });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { pid: proc.pid, out: out + err, code };
}

/** The python witness as a TLS server for `count` handshakes; its reports arrive as JSON lines. */
async function witnessServer(cert: TlsCert, count: number, extra: string[] = []) {
  const port = freeTcpPort();
  const proc = Bun.spawn(
    [SYSTEM_PYTHON, WITNESS, "server", String(port), cert.cert, cert.key, String(count), ...extra],
    {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  const lines: WitnessLine[] = [];
  const reading = (async () => {
    let buffered = "";
    for await (const chunk of proc.stdout) {
      buffered += new TextDecoder().decode(chunk);
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const parsed = JSON.parse(buffered.slice(0, nl));
        if (parsed.role) lines.push(parsed);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
      }
    }
  })();
  await waitForTcp(port, 5000, proc.exited);
  return {
    pid: proc.pid,
    port,
    lines,
    async done() {
      await Promise.race([proc.exited, Bun.sleep(5000)]);
      proc.kill();
      await reading;
    },
  };
}

async function witnessClient(port: number, sni: string, extra: string[] = []) {
  const r = await spawnCollect([SYSTEM_PYTHON, WITNESS, "client", String(port), sni, ...extra]);
  const line = r.out.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`python witness client failed: ${r.out.trim().split("\n").slice(-1)[0]}`);
  return { pid: r.pid, report: JSON.parse(line) as WitnessLine };
}

/** `openssl s_server -www` (implicit handshakes) from `command` (the system's, or 3.5 through its loader). */
const sServer = (command: string[], cert: TlsCert, args: string[] = []): Promise<RunningServer> =>
  startOpenSslServer(cert, { command, args });

function sClient(command: string[], port: number, args: string[] = []) {
  return spawnCollect([...command, "s_client", "-connect", `127.0.0.1:${port}`, ...args]);
}

/** A Node.js client and server in one process; prints what each side's getters report. */
const NODE_SCRIPT = `
const tls = require("node:tls");
const [cert, key, groups, maxVersion] = process.argv.slice(1);
const fs = require("node:fs");
const opts = { ecdhCurve: groups || undefined, maxVersion: maxVersion || undefined };
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ...opts }, (s) => {
  s.on("error", () => {});
  s.end("ok");
});
server.listen(0, "127.0.0.1", () => {
  const c = tls.connect({ host: "127.0.0.1", port: server.address().port, rejectUnauthorized: false, servername: "node.example", ...opts }, () => {
    const k = c.getEphemeralKeyInfo();
    console.log(JSON.stringify({ pid: process.pid, version: c.getProtocol(), cipher: c.getCipher().standardName, group: k.name ?? null, keyType: k.type ?? null }));
    c.on("data", () => {});
    c.on("end", () => { c.destroy(); server.close(); });
  });
});
`;

export interface MatrixResult {
  rows: MatrixRow[];
  skipped: string[];
  records: ChainedObservation[];
  tracerStderr: string;
}

/** Runs every case under one tracer; returns one row per (case, side, field). */
export async function runKexMatrix(opts: { binary?: string; args?: string[] } = {}): Promise<MatrixResult> {
  const dir = mkdtempSync(join(tmpdir(), "carnot-kex-"));
  const cert = await makeSelfSignedCert(dir);
  const stdnames = cipherSuiteNames().byOpenSslName;
  const v35 = openssl35();
  const node = nodeBinary();
  const skipped: string[] = [];
  if (!v35) skipped.push(`OpenSSL 3.5 cases: ${OPENSSL35_DIR} missing (make openssl35)`);
  if (!node) skipped.push(`Node.js cases: ${NODE_DIR} missing (make node26)`);
  const libs = [
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    ...(v35 ? [v35.libssl] : []),
    ...(node ? [node] : []),
  ];
  const out = join(dir, "runtime.jsonl");
  const tracer = await startTracer(
    ["--out", out, "--metrics-interval", "0", ...libs.flatMap((l) => ["--libssl", l]), ...(opts.args ?? [])],
    { binary: opts.binary },
  );
  /** per case: the pids whose lines to read (per side) and what the peer reported */
  const cases: {
    name: string;
    client: number[] | null;
    server: number[] | null;
    truth: PeerReport;
    checkOffered?: boolean;
  }[] = [];
  const servers: RunningServer[] = [];
  let tracerStderr = "";
  try {
    // curl → python witness server: the server's report (and the ClientHello it received) is the truth
    for (const [name, args] of [
      ["curl default → python", {}],
      ["curl --curves secp384r1 → python", { groups: "secp384r1" }],
      ["curl --curves ffdhe2048 → python", { groups: "ffdhe2048" }],
    ] as const) {
      const w = await witnessServer(cert, 1);
      const c = await curl(w.port, "curl.example", args);
      await w.done();
      if (c.exitCode !== 0 || !w.lines[0] || w.lines[0].error) throw new Error(`${name}: handshake failed`);
      cases.push({
        name,
        client: [c.pid],
        server: [w.pid],
        truth: witnessReport(w.lines[0], stdnames),
        checkOffered: true,
      });
    }
    // python witness client → nginx (non-blocking server side): the client's report is the truth
    for (const [name, extra, nginxOpts] of [
      ["python default → nginx", [], {}],
      ["python TLS 1.2 → nginx", ["--max-version", "TLSv1_2"], {}],
      ["python secp384r1 → nginx", ["--curve", "secp384r1"], {}],
    ] as const) {
      const nginx = await startNginx(join(dir, `nginx-${cases.length}`), cert, { workers: 1, ...nginxOpts });
      servers.push(nginx);
      const c = await witnessClient(nginx.port, "py.example", [...extra]);
      cases.push({
        name,
        client: [c.pid],
        server: await childPids(nginx.pid),
        truth: witnessReport(c.report, stdnames),
      });
    }
    // HelloRetryRequest: python's key share is X25519, the server only takes P-384
    {
      const s = await sServer(["openssl"], cert, ["-groups", "P-384"]);
      servers.push(s);
      const c = await witnessClient(s.port, "hrr.example");
      cases.push({
        name: "python → s_server -groups P-384 (HRR)",
        client: [c.pid],
        server: [s.pid],
        truth: witnessReport(c.report, stdnames),
      });
    }
    // implicit handshakes on both sides: s_client ↔ s_server -www
    for (const [name, args] of [
      ["s_client ↔ s_server -www", []],
      ["s_client -groups ffdhe2048 ↔ s_server -www", ["-groups", "ffdhe2048"]],
      ["s_client -tls1_2 ↔ s_server -www", ["-tls1_2"]],
    ] as const) {
      const s = await sServer(["openssl"], cert);
      servers.push(s);
      const c = await sClient(["openssl"], s.port, [...args]);
      cases.push({ name, client: [c.pid], server: [s.pid], truth: parseSClient(c.out, stdnames) });
    }
    // TLS 1.3 resumption with a new key exchange (psk_dhe_ke): the group is the new one, not the session's
    {
      const s = await sServer(["openssl"], cert);
      servers.push(s);
      const session = join(dir, "session.pem");
      // stays connected long enough to receive the session ticket
      await spawnCollect([
        "sh",
        "-c",
        `(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 0.5) | openssl s_client -connect 127.0.0.1:${s.port} -groups X25519:P-384 -sess_out ${session}`,
      ]);
      const c = await sClient(["openssl"], s.port, ["-sess_in", session, "-groups", "P-384"]);
      if (!/Reused, TLSv1\.3/.test(c.out)) throw new Error("TLS 1.3 resumption did not happen");
      cases.push({
        name: "s_client TLS 1.3 resumption, P-384 ↔ s_server -www",
        client: [c.pid],
        server: null,
        truth: parseSClient(c.out, stdnames),
      });
    }
    if (v35) {
      for (const [name, args] of [
        ["3.5 s_client ↔ 3.5 s_server -www (default)", []],
        ["3.5 s_client -groups secp384r1 ↔ 3.5 s_server -www", ["-groups", "secp384r1"]],
      ] as const) {
        const s = await sServer(v35.command, cert);
        servers.push(s);
        const c = await sClient(v35.command, s.port, [...args]);
        cases.push({ name, client: [c.pid], server: [s.pid], truth: parseSClient(c.out, stdnames) });
      }
    }
    if (node) {
      for (const [name, groups, maxVersion] of [
        ["node client ↔ node server (default)", "", ""],
        ["node client ↔ node server (P-256, TLS 1.2)", "P-256", "TLSv1.2"],
      ] as const) {
        const r = await spawnCollect([node, "-e", NODE_SCRIPT, cert.cert, cert.key, groups, maxVersion]);
        const line = r.out.split("\n").find((l) => l.startsWith("{"));
        if (!line) throw new Error(`${name}: ${r.out.trim()}`);
        const report = JSON.parse(line) as {
          pid: number;
          version: string;
          cipher: string;
          group: string | null;
        };
        const group =
          report.group === null ? null : (byLowerName.get(report.group.toLowerCase()) ?? report.group);
        cases.push({
          name,
          client: [r.pid],
          server: [r.pid],
          truth: { version: report.version, cipher: report.cipher, group },
        });
      }
    }
    await Bun.sleep(300); // the last SSL_free calls reach the tracer
  } finally {
    const stopped = await tracer.stop("SIGINT");
    await Promise.all(servers.map((s) => s.stop()));
    tracerStderr = stopped.stderr;
  }
  const records = readObservations(out);
  rmSync(dir, { recursive: true, force: true });
  const rows: MatrixRow[] = [];
  const groupClass = new Map(GROUPS.map((g) => [g.name, g.kexClass]));
  for (const c of cases) {
    for (const side of ["client", "server"] as const) {
      const pids = c[side];
      if (pids === null) continue;
      const lines = records.filter(
        (r) => r.pid !== null && pids.includes(r.pid) && r.role === side && r.handshake_success,
      );
      const line = lines.length === 1 ? lines[0]! : null;
      const row = (field: string, expected: unknown, observed: unknown) =>
        rows.push({ case: c.name, side, field, expected, observed });
      row("lines", 1, lines.length);
      row("negotiated_group", c.truth.group, line?.negotiated_group);
      row(
        "kex_class",
        c.truth.group === null ? null : (groupClass.get(c.truth.group) ?? null),
        line?.kex_class,
      );
      row("tls_version", c.truth.version, line?.tls_version);
      row("cipher", c.truth.cipher, line?.cipher);
      if (c.checkOffered && side === "client" && c.truth.offered)
        row("groups_offered", c.truth.offered, line?.groups_offered);
    }
  }
  return { rows, skipped, records, tracerStderr };
}
