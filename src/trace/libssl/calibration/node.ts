/**
 * Offsets for an executable that carries OpenSSL inside (Node.js): it cannot be dlopened, so the executable
 * itself runs a small script of TLS handshakes with known parameters (client and server in one process,
 * sockets kept open) and reports what its own getters say (getProtocol, getCipher, getEphemeralKeyInfo).
 * Meanwhile carnot's uprobes on that executable give the SSL* of every connection (SSL_new, and the role from
 * SSL_set_connect/accept_state), and the SSL objects are read through /proc/PID/mem. An offset is kept only
 * when exactly one candidate agrees with the truth in every handshake (and, for the handshake state, in
 * connections left mid-handshake on purpose), as for a library.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { EventKind, Role } from "../events.ts";
import { SslProbes } from "../probes.ts";
import { clientHelloOfStream } from "../../wire/tls/hello.ts";
import { sandboxed, sandboxEnv } from "./sandbox.ts";
import type { Calibration } from "./types.ts";

const SSL_SCAN = 4096;
const SESSION_SCAN = 1024;
const CIPHER_SCAN = 64;
/** OSSL_HANDSHAKE_STATE values (public enum of ssl.h) that every version shares: before and done. */
const TLS_ST_BEFORE = 0;
const TLS_ST_OK = 1;
/** SSL_version() of an OpenSSL 3 connection that has not negotiated yet (TLS_method: its highest version) */
const FRESH_VERSION = 0x0304;

/** TLS_ST_CW_CLNT_HELLO for an OpenSSL version ("3.5.8"); null for one whose enum carnot does not know. */
export function clientHelloState(openssl: string): number | null {
  const m = /^(\d+)\.(\d+)\./.exec(openssl);
  if (m?.[1] !== "3") return null;
  return Number(m[2]) >= 2 ? 13 : 12;
}

/** The script the executable runs: cases in order, one client then one server connection each. */
const SCRIPT = String.raw`
const tls = require("node:tls"), net = require("node:net");
const [cert, key] = [process.env.CARNOT_CAL_CERT, process.env.CARNOT_CAL_KEY];
const cases = [
  { ecdhCurve: "X25519", maxVersion: "TLSv1.3", ciphers: "TLS_AES_256_GCM_SHA384" },
  { ecdhCurve: "P-384", maxVersion: "TLSv1.3", ciphers: "TLS_AES_128_GCM_SHA256" },
  { ecdhCurve: "P-521", clientCurve: "X25519:P-521", maxVersion: "TLSv1.3", ciphers: "TLS_CHACHA20_POLY1305_SHA256" },
  { ecdhCurve: "ffdhe2048", maxVersion: "TLSv1.3", ciphers: "TLS_AES_128_GCM_SHA256" },
  { ecdhCurve: "P-256", maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" },
  { ecdhCurve: "X25519", maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-CHACHA20-POLY1305" },
  { ecdhCurve: "X448", maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384" },
  { ecdhCurve: "X25519MLKEM768", maxVersion: "TLSv1.3", ciphers: "TLS_AES_256_GCM_SHA384" },
];
const keep = [], truths = [];
function one(c) {
  return new Promise((resolve) => {
    let server;
    try {
      // the SNI callback switches the connection's context (SSL_set_SSL_CTX); SSL_new's stays in the object
      server = tls.createServer({ SNICallback: (name, cb) => cb(null, tls.createSecureContext({ cert, key })), cert, key, ecdhCurve: c.ecdhCurve, minVersion: c.maxVersion, maxVersion: c.maxVersion, ciphers: c.ciphers.startsWith("TLS_") ? undefined : c.ciphers, ...(c.ciphers.startsWith("TLS_") ? { ciphersuites: c.ciphers } : {}) });
    } catch { return resolve(); }
    let serverDone = false, clientTruth = null;
    const finish = () => { if (serverDone && clientTruth) { truths.push(clientTruth); resolve(); } };
    server.on("secureConnection", (s) => { keep.push(s); serverDone = true; finish(); });
    server.on("tlsClientError", () => resolve());
    server.listen(0, "127.0.0.1", () => {
      const sock = tls.connect({ host: "127.0.0.1", port: server.address().port, rejectUnauthorized: false, servername: "calibration.example",
        ecdhCurve: c.clientCurve ?? c.ecdhCurve, minVersion: c.maxVersion, maxVersion: c.maxVersion,
        ciphers: c.ciphers.startsWith("TLS_") ? undefined : c.ciphers, ...(c.ciphers.startsWith("TLS_") ? { ciphersuites: c.ciphers } : {}) }, () => {
        keep.push(sock);
        const k = sock.getEphemeralKeyInfo();
        clientTruth = { version: sock.getProtocol(), cipher: sock.getCipher().standardName, group: k.name ?? null };
        finish();
      });
      sock.on("error", () => resolve());
    });
    keep.push(server);
  });
}
function stuckClient(maxVersion) {
  // a client whose ClientHello gets no answer: its handshake is mid-way (neither before nor done); the
  // hello's supported_groups is also the default list this Node.js offers
  return new Promise((resolve) => {
    const raw = net.createServer((conn) => {
      keep.push(conn);
      conn.once("data", (hello) => { resolve(hello.toString("hex")); });
    });
    raw.listen(0, "127.0.0.1", () => { keep.push(tls.connect({ host: "127.0.0.1", port: raw.address().port, rejectUnauthorized: false, maxVersion }).on("error", () => {})); });
    keep.push(raw);
  });
}
function stuckServer() {
  // a server connection whose client says nothing: its handshake has not started
  return new Promise((resolve) => {
    const server = tls.createServer({ cert, key }, () => {});
    server.on("connection", () => setTimeout(resolve, 50));
    server.listen(0, "127.0.0.1", () => { keep.push(net.connect(server.address().port, "127.0.0.1")); });
    keep.push(server);
  });
}
function halfServer(helloHex) {
  // a server that answered a ClientHello (replayed from a stuck client) and waits for the client's next flight
  return new Promise((resolve) => {
    const server = tls.createServer({ cert, key }, () => {});
    server.on("tlsClientError", () => {});
    server.listen(0, "127.0.0.1", () => {
      const raw = net.connect(server.address().port, "127.0.0.1", () => raw.write(Buffer.from(helloHex, "hex")));
      raw.once("data", () => setTimeout(resolve, 50));
      keep.push(raw);
    });
    keep.push(server);
  });
}
process.stdin.once("data", async () => {
  for (const c of cases) await one(c);
  const hello = await stuckClient(undefined);
  const hello12 = await stuckClient("TLSv1.2");
  await stuckServer();
  await halfServer(hello);
  await halfServer(hello12);
  process.stdout.write(JSON.stringify({ truths, hello, openssl: process.versions.openssl }) + "\n");
  process.stdin.once("data", () => process.exit(0));
});
`;

/** IANA code points of the suites the script negotiates (from the IANA TLS registry). */
export const SCRIPT_CIPHER_CODES: Readonly<Record<string, number>> = {
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 0xc02c,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca9,
};

interface ProbedSsl {
  ptr: number;
  /** SSL_new's argument */
  ctx: number;
  role: "client" | "server" | null;
}

interface Truth {
  version: string;
  cipher: string;
  group: string | null;
}

/** Reads another process's memory (root): /proc/PID/mem at virtual addresses. */
class ProcessMemory {
  readonly #fd: number;
  constructor(pid: number) {
    this.#fd = openSync(`/proc/${pid}/mem`, "r");
  }
  read(address: number, length: number): DataView | null {
    if (address <= 0 || address > 2 ** 47) return null;
    const buf = new Uint8Array(length);
    try {
      if (readSync(this.#fd, buf, 0, length, address) !== length) return null;
    } catch {
      return null;
    }
    return new DataView(buf.buffer);
  }
  close(): void {
    closeSync(this.#fd);
  }
}

const VERSION_CODES: Readonly<Record<string, number>> = { "TLSv1.3": 0x304, "TLSv1.2": 0x303 };

export interface ExecutableCalibrationInput {
  executable: string;
  /** PEM text (the confined executable reads no file of carnot's) */
  cert: string;
  key: string;
  /** group name (as Node reports it) → IANA code point */
  groupCode: (name: string) => number | null;
  /** IANA cipher name → code (from a library's cipher table, or the handshakes themselves) */
  cipherCode: (name: string) => number | null;
}

/**
 * Runs the calibration script in `executable` under uprobes and returns its verified offsets, or throws
 * saying why (not a Node.js executable, no handshake completed, …).
 */
export async function calibrateExecutable(input: ExecutableCalibrationInput): Promise<Calibration> {
  // confined (sandbox.ts): same pid once it has executed the program, which the probes filter on
  const proc = Bun.spawn(sandboxed([input.executable, "-e", SCRIPT]), {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: sandboxEnv({ CARNOT_CAL_CERT: input.cert, CARNOT_CAL_KEY: input.key, NODE_OPTIONS: "" }),
  });
  const killer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  let probes: SslProbes | null = null;
  try {
    probes = SslProbes.open({ libraries: [input.executable], pid: proc.pid });
    const ssls: ProbedSsl[] = [];
    const byPtr = new Map<number, ProbedSsl>();
    const drain = () =>
      probes!.drain((ev) => {
        if (ev.kind === EventKind.SslNew) {
          const entry: ProbedSsl = { ptr: ev.ptr, ctx: ev.aux, role: null };
          ssls.push(entry);
          byPtr.set(ev.ptr, entry);
        } else if (ev.kind === EventKind.SetState) {
          const entry = byPtr.get(ev.ptr);
          if (entry)
            entry.role = ev.aux === Role.Client ? "client" : ev.aux === Role.Server ? "server" : null;
        }
      });
    proc.stdin.write("go\n");
    proc.stdin.flush();
    const reader = proc.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      drain();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    drain();
    if (!text.includes("\n")) {
      const err = await new Response(proc.stderr).text();
      throw new Error(`the calibration script did not run (${err.trim().split("\n")[0] ?? "no output"})`);
    }
    const report = JSON.parse(text.slice(0, text.indexOf("\n"))) as {
      truths: Truth[];
      hello: string;
      openssl: string;
    };
    const clients = ssls.filter((s) => s.role === "client");
    const servers = ssls.filter((s) => s.role === "server");
    // per completed case one client and one server SSL (in creation order), then the stuck ones
    if (clients.length !== report.truths.length + 2 || servers.length !== report.truths.length + 3) {
      throw new Error(
        `saw ${clients.length} client and ${servers.length} server connections for ${report.truths.length} handshakes`,
      );
    }
    const memory = new ProcessMemory(proc.pid);
    try {
      return searchOffsets(input, report, clients, servers, memory);
    } finally {
      memory.close();
    }
  } finally {
    clearTimeout(killer);
    probes?.close();
    try {
      proc.stdin.write("done\n");
      proc.stdin.end();
    } catch {}
    proc.kill();
    await proc.exited;
  }
}

function searchOffsets(
  input: ExecutableCalibrationInput,
  report: { truths: Truth[]; hello: string; openssl: string },
  clients: ProbedSsl[],
  servers: ProbedSsl[],
  memory: ProcessMemory,
): Calibration {
  let version: number[] | null = null;
  let group13: number[] | null = null;
  let handState: number[] | null = null;
  let sslCtx: number[] | null = null;
  let cipherPairs: [number, number][] | null = null;
  let sessionPairs: [number, number][] | null = null;
  const ciphers: Record<string, string> = {};
  const groupsTried: number[] = [];
  const scan = (limit: number, align: number, ok: (o: number) => boolean) => {
    const out: number[] = [];
    for (let o = 0; o + 8 <= limit; o += align) if (ok(o)) out.push(o);
    return out;
  };
  const narrow = (current: number[] | null, found: number[]) =>
    current === null ? found : current.filter((o) => found.includes(o));
  const narrowPairs = (current: [number, number][] | null, found: [number, number][]) =>
    current === null ? found : current.filter(([a, b]) => found.some(([c, d]) => a === c && b === d));
  /** (offset of a pointer in the SSL, offset inside what it points to) where `ok` holds */
  const pointerPairs = (
    ssl: DataView,
    size: number,
    align: number,
    ok: (v: DataView, k: number) => boolean,
  ) => {
    const out: [number, number][] = [];
    for (let o = 0; o + 8 <= SSL_SCAN; o += 8) {
      const target = Number(ssl.getBigUint64(o, true));
      if (target < 0x10000 || target % 8 !== 0) continue;
      const pointed = memory.read(target, size);
      if (!pointed) continue;
      for (let k = 0; k + 4 <= size; k += align) if (ok(pointed, k)) out.push([o, k]);
    }
    return out;
  };

  for (const [i, truth] of report.truths.entries()) {
    const code = truth.group === null ? null : input.groupCode(truth.group);
    const cipherCode = input.cipherCode(truth.cipher);
    const versionCode = VERSION_CODES[truth.version];
    if (code === null || cipherCode === null || versionCode === undefined) continue; // cannot check this one
    ciphers[String(cipherCode)] = truth.cipher;
    groupsTried.push(code);
    for (const s of [clients[i]!, servers[i]!]) {
      const ssl = memory.read(s.ptr, SSL_SCAN);
      if (!ssl) throw new Error("cannot read an SSL object");
      sslCtx = narrow(
        sslCtx,
        scan(SSL_SCAN, 8, (o) => Number(ssl.getBigUint64(o, true)) === s.ctx),
      );
      version = narrow(
        version,
        scan(SSL_SCAN, 4, (o) => ssl.getInt32(o, true) === versionCode),
      );
      handState = narrow(
        handState,
        scan(SSL_SCAN, 4, (o) => ssl.getInt32(o, true) === TLS_ST_OK),
      );
      if (versionCode === 0x304)
        group13 = narrow(
          group13,
          scan(SSL_SCAN, 2, (o) => ssl.getUint16(o, true) === code),
        );
      const cipherId = (0x03000000 | cipherCode) >>> 0;
      cipherPairs = narrowPairs(
        cipherPairs,
        pointerPairs(ssl, CIPHER_SCAN, 4, (v, k) => v.getUint32(k, true) === cipherId),
      );
      sessionPairs = narrowPairs(
        sessionPairs,
        pointerPairs(ssl, SESSION_SCAN, 2, (v, k) => v.getUint16(k, true) === code),
      );
    }
  }
  // Connections left before and mid-way pin the state and version offsets: a fresh SSL reports the method's
  // version (0x0304) and TLS_ST_BEFORE; a client that wrote its ClientHello reports TLS_ST_CW_CLNT_HELLO,
  // whose value is fixed by the ABI of each OpenSSL minor version (3.2 inserted TLS_ST_CR_COMP_CERT before it).
  const stuckClient = memory.read(clients[clients.length - 2]!.ptr, SSL_SCAN);
  const stuckClient12 = memory.read(clients[clients.length - 1]!.ptr, SSL_SCAN);
  const stuckServer = memory.read(servers[servers.length - 3]!.ptr, SSL_SCAN);
  const halfServer13 = memory.read(servers[servers.length - 2]!.ptr, SSL_SCAN);
  const halfServer12 = memory.read(servers[servers.length - 1]!.ptr, SSL_SCAN);
  const helloState = clientHelloState(report.openssl);
  if (stuckClient && stuckClient12 && stuckServer && halfServer13 && halfServer12 && helloState !== null) {
    handState = narrow(
      handState,
      scan(
        SSL_SCAN,
        4,
        (o) =>
          stuckServer.getInt32(o, true) === TLS_ST_BEFORE &&
          stuckClient.getInt32(o, true) === helloState &&
          stuckClient12.getInt32(o, true) === helloState,
      ),
    );
    version = narrow(
      version,
      // a client limited to TLS 1.2 has set its version to 0x0303 when it wrote its ClientHello
      scan(
        SSL_SCAN,
        4,
        (o) =>
          stuckServer.getInt32(o, true) === FRESH_VERSION &&
          stuckClient.getInt32(o, true) === FRESH_VERSION &&
          stuckClient12.getInt32(o, true) === 0x0303 &&
          // a server that has answered a ClientHello has chosen the version
          halfServer13.getInt32(o, true) === 0x0304 &&
          halfServer12.getInt32(o, true) === 0x0303,
      ),
    );
  } else {
    handState = null;
    version = null;
  }
  const only = (c: number[] | null) => (c !== null && c.length === 1 ? c[0]! : null);
  const onlyPair = (c: [number, number][] | null) => (c !== null && c.length === 1 ? c[0]! : null);
  const cipher = onlyPair(cipherPairs);
  const session = onlyPair(sessionPairs);
  const defaultGroups = clientHelloOfStream(Buffer.from(report.hello, "hex"))?.supportedGroups ?? null;
  return {
    library: input.executable,
    openssl: `OpenSSL ${report.openssl}`,
    handshakes: groupsTried.length,
    groupsTried,
    offsets: {
      version: only(version),
      cipher: cipher?.[0] ?? null,
      cipherId: cipher?.[1] ?? null,
      session: session?.[0] ?? null,
      kexGroup: session?.[1] ?? null,
      group13: only(group13),
      handState: only(handState),
      sslCtx: only(sslCtx),
    },
    handStateBefore: TLS_ST_BEFORE,
    handStateOk: TLS_ST_OK,
    candidates: {
      version,
      group13,
      handState,
      sslCtx,
      cipher: cipherPairs?.map(([o]) => o) ?? null,
      session: sessionPairs?.map(([o]) => o) ?? null,
    },
    ciphers: {
      ...Object.fromEntries(Object.entries(SCRIPT_CIPHER_CODES).map(([n, c]) => [String(c), n])),
      ...ciphers,
    },
    defaultGroups,
  };
}
