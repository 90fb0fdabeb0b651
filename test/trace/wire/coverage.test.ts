/**
 * Client coverage of `carnot trace` with its default sources (issue 12): ten everyday TLS clients — two
 * libssl users (curl, python3), GnuTLS (wget, git, gnutls-cli), Java's JSSE, Go, Node.js 26 (OpenSSL linked
 * in, not probed), Bun and headless Chromium (BoringSSL) — each with its own SNI to nginx (OpenSSL 3.0) and
 * OpenSSL 3.5's s_server, over IPv4 and IPv6 on loopback, while tshark captures. Every handshake gives exactly
 * one client line and one server line, each field equal to tshark's dissection of the same run and to what the
 * client reports itself; the libssl users' and both servers' lines are joined (libssl + wire). Needs root.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { makeSelfSignedCert } from "../../../src/lab/loopback.ts";
import type { ChainedObservation } from "../../../src/trace/observation.ts";
import { nodeBinary, openssl35 } from "../../support/kex-matrix.ts";
import { type ClientRun, type LabClient, prepareClients } from "../../support/lab/clients.ts";
import { linesOfConnection, lineSummary } from "../../support/lab/lines.ts";
import {
  LAB_ADDRESSES,
  type LabServer,
  startLabNginx,
  startLabSServer35,
} from "../../support/lab/servers.ts";
import {
  type ConnectionFacts,
  connectionsOfRun,
  dissectCapture,
  startCapture,
  summarize,
  tsharkSkipReason,
} from "../../support/lab/tshark.ts";
import { readObservations, startTracer, traceSkipReason } from "../../support/tracer.ts";

const CLIENTS = ["curl", "python3", "wget", "git", "gnutls-cli", "java", "go", "node", "bun", "chromium"];
/** the clients that use the system libssl, which the tracer probes by default */
const LIBSSL_CLIENTS = ["curl", "python3"];
/** the clients whose own TLS offers X25519MLKEM768 first */
const HYBRID = ["node", "bun", "chromium"];
const SYSTEM_LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const BUN = Bun.which("bun") ?? process.execPath;

/**
 * The comm of the thread that sends each client's ClientHello (the kernel's task name, at most 15 bytes):
 * git's handshakes run in its git-remote-https child, Chromium's on its network service's IO thread, and
 * Node.js 26 names its main thread.
 */
const COMM: Record<string, string> = {
  curl: "curl",
  python3: "python3",
  wget: "wget",
  git: "git-remote-http",
  "gnutls-cli": "gnutls-cli",
  java: "java",
  go: "go-client",
  node: "node-MainThread",
  bun: basename(BUN).slice(0, 15),
  chromium: "Chrome_ChildIOT",
};

const skip =
  traceSkipReason() ??
  tsharkSkipReason() ??
  (openssl35() ? null : ".cache/openssl35 missing (make openssl35)") ??
  (nodeBinary() ? null : ".cache/node missing (make node26)");
if (skip) console.warn(`skipping the wire coverage tests: ${skip}`);

describe.skipIf(skip !== null)("carnot trace sees every client's handshake once, as tshark does", () => {
  let dir = "";
  let servers: LabServer[] = [];
  let clients: LabClient[] = [];
  const runs = new Map<string, ClientRun>();
  let wire: ConnectionFacts[] = [];
  let lines: ChainedObservation[] = [];
  let tracerStderr = "";
  const key = (client: string, server: string, address: string) => `${client} → ${server} @ ${address}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-wire-coverage-"));
    const cert = await makeSelfSignedCert(dir);
    const prepared = await prepareClients(dir);
    if (prepared.missing.length > 0)
      throw new Error(`lab clients missing: ${prepared.missing.map((m) => m.reason).join("; ")}`);
    clients = prepared.clients;
    servers = [await startLabNginx(dir, cert), (await startLabSServer35(cert))!];
    const out = join(dir, "runtime.jsonl");
    // default sources; s_server's OpenSSL 3.5 is probed too, so that its side is joined as nginx's is
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--libssl",
      SYSTEM_LIBSSL,
      "--libssl",
      openssl35()!.libssl,
    ]);
    const ports = servers.map((s) => s.port);
    try {
      const capture = await startCapture({ dir, ports });
      try {
        for (const server of servers)
          for (const address of LAB_ADDRESSES)
            for (const client of clients)
              runs.set(
                key(client.name, server.name, address),
                await client.run({ address, port: server.port }),
              );
      } finally {
        await capture.stop();
      }
      wire = await dissectCapture(capture.file, ports);
    } finally {
      tracerStderr = (await tracer.stop()).stderr;
    }
    lines = readObservations(out);
  }, 300_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const name of CLIENTS)
    for (const serverName of ["nginx (OpenSSL 3.0)", "s_server (OpenSSL 3.5)"])
      for (const address of LAB_ADDRESSES)
        test(key(name, serverName, address), () => {
          const client = clients.find((c) => c.name === name)!;
          const server = servers.find((s) => s.name === serverName)!;
          const run = runs.get(key(name, serverName, address))!;
          expect({ exit: run.exitCode, pid: run.pid !== null }).toEqual({
            exit: name === "git" ? 128 : 0, // git is refused after its request: these are no git servers
            pid: true,
          });
          const seen = connectionsOfRun(wire, server.port, address, client.sni);
          // one handshake each; Chromium preconnects, and its net log says how many it made
          expect(seen.length).toBe(name === "chromium" ? run.handshakes.length : 1);
          for (const conn of seen) {
            const truth = summarize(conn);
            const { client: mine, server: theirs } = linesOfConnection(lines, conn);
            expect({ clientLines: mine.length, serverLines: theirs.length }).toEqual({
              clientLines: 1,
              serverLines: 1,
            });
            const c = mine[0]!;
            const s = theirs[0]!;
            // every handshake fact, both sides, as tshark dissected it
            expect(lineSummary(c)).toEqual(truth);
            expect(lineSummary(s)).toEqual(truth);
            expect(truth.serverName).toBe(client.sni);
            // the process that made it, as the client itself (or its parent) says
            expect({ pid: c.pid, comm: c.comm, sni: c.sni }).toEqual({
              pid: run.pid,
              comm: COMM[name]!,
              sni: client.sni,
            });
            expect(c.tid).toBeGreaterThan(0);
            expect(server.pids).toContain(s.pid!);
            expect({
              client: [c.observed_by, c.handshake_success, c.error],
              server: [s.observed_by, s.handshake_success, s.error, s.ssl_ptr !== null, s.sni],
            }).toEqual({
              client: [LIBSSL_CLIENTS.includes(name) ? ["libssl", "wire"] : ["wire"], true, null],
              server: [["libssl", "wire"], true, null, true, null],
            });
            expect(c.kex_class).toBe(c.negotiated_group === "X25519MLKEM768" ? "hybrid-pq" : "classical");
            // the client's own report of this connection, where it gives one
            const report =
              run.handshakes.find((h) => h.localPort === conn.client.port) ??
              (run.handshakes.length === 1 && run.handshakes[0]!.localPort === null
                ? run.handshakes[0]
                : null);
            expect(report).toBeDefined();
            for (const field of ["version", "cipher", "group"] as const) {
              const said = report?.[field] ?? null;
              if (said !== null) expect(`${field} ${said}`).toBe(`${field} ${truth[field]}`);
            }
          }
        });

  test("the hybrid clients negotiate X25519MLKEM768 with OpenSSL 3.5, on both lines", () => {
    const v35 = servers.find((s) => s.name.includes("3.5"))!;
    for (const name of HYBRID) {
      const client = clients.find((c) => c.name === name)!;
      const mine = lines.filter(
        (l) => l.server_name === client.sni && (l.remote_port === v35.port || l.local_port === v35.port),
      );
      // one client and one server line per handshake, over both addresses
      expect(mine.length).toBeGreaterThanOrEqual(4);
      for (const l of mine)
        expect([
          name,
          l.role,
          l.negotiated_group,
          l.negotiated_group_id,
          l.kex_class,
          l.key_shares_offered?.[0],
        ]).toEqual([name, l.role, "X25519MLKEM768", 4588, "hybrid-pq", "X25519MLKEM768"]);
    }
  });

  test("no line for the servers' ports but those of the handshakes tshark saw", () => {
    const ports = new Set(servers.map((s) => s.port));
    const ours = lines.filter((l) => ports.has(l.remote_port ?? -1) || ports.has(l.local_port ?? -1));
    expect(ours.length).toBe(2 * wire.length);
    // no value of a joined line left null because the two sources disagreed
    expect(tracerStderr).not.toContain("warning");
  });
});
