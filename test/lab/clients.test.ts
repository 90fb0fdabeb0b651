/**
 * The client-coverage baseline of the wire source: ten everyday TLS clients, each against nginx (OpenSSL 3.0)
 * and OpenSSL 3.5's s_server, over IPv4 and IPv6, with tshark capturing. For every run the wire shows exactly
 * the handshakes the client says it made, each with the client's own SNI, and what the client reports
 * (version, cipher, group where it says) is what tshark dissected. Needs root (capture).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCert } from "../../src/lab/loopback.ts";
import { openssl35 } from "../support/kex-matrix.ts";
import { type ClientRun, type LabClient, prepareClients } from "../support/lab/clients.ts";
import { LAB_ADDRESSES, type LabServer, startLabNginx, startLabSServer35 } from "../support/lab/servers.ts";
import {
  type ConnectionFacts,
  connectionsOfRun,
  dissectCapture,
  startCapture,
  summarize,
  tsharkSkipReason,
} from "../support/lab/tshark.ts";

const CLIENTS = ["curl", "python3", "wget", "git", "gnutls-cli", "java", "go", "node", "bun", "chromium"];
const SERVERS = ["nginx (OpenSSL 3.0)", "s_server (OpenSSL 3.5)"];
/** the clients whose own TLS offers X25519MLKEM768 first */
const HYBRID = ["node", "bun", "chromium"];

const skip = tsharkSkipReason() ?? (openssl35() ? null : ".cache/openssl35 missing (make openssl35)");
if (skip) console.warn(`skipping the lab client tests: ${skip}`);

describe.skipIf(skip !== null)("lab clients against both servers, tshark as the truth", () => {
  let dir = "";
  let servers: LabServer[] = [];
  let clients: LabClient[] = [];
  let missing: { name: string; reason: string }[] = [];
  const runs = new Map<string, ClientRun>();
  let wire: ConnectionFacts[] = [];
  const key = (client: string, server: string, address: string) => `${client} → ${server} @ ${address}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-lab-clients-"));
    const cert = await makeSelfSignedCert(dir);
    ({ clients, missing } = await prepareClients(dir));
    for (const m of missing) console.warn(`lab client ${m.name} skipped: ${m.reason}`);
    servers = [await startLabNginx(dir, cert), (await startLabSServer35(cert))!];
    const ports = servers.map((s) => s.port);
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
  }, 300_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const name of CLIENTS)
    for (const serverName of SERVERS)
      for (const address of LAB_ADDRESSES)
        test(key(name, serverName, address), () => {
          const client = clients.find((c) => c.name === name);
          if (!client) {
            console.warn(`${name}: ${missing.find((m) => m.name === name)?.reason ?? "not prepared"}`);
            return;
          }
          const server = servers.find((s) => s.name === serverName)!;
          const run = runs.get(key(name, serverName, address))!;
          // git is refused after its request (the servers are no git servers): the handshake happened first
          expect({
            exit: run.exitCode,
            output: run.exitCode === (name === "git" ? 128 : 0) ? "" : run.output,
          }).toEqual({
            exit: name === "git" ? 128 : 0,
            output: "",
          });
          expect(run.pid).toBeGreaterThan(0);
          const seen = connectionsOfRun(wire, server.port, address, client.sni);
          // one handshake each; Chromium preconnects, and its net log says how many it made
          expect(run.handshakes.length).toBe(name === "chromium" ? seen.length : 1);
          expect(seen.length).toBe(name === "chromium" ? run.handshakes.length : 1);
          expect(seen.length).toBeGreaterThanOrEqual(1);
          for (const [i, report] of run.handshakes.entries()) {
            const conn =
              report.localPort === null ? seen[i]! : seen.find((c) => c.client.port === report.localPort);
            expect(conn).toBeDefined();
            const truth = summarize(conn!);
            expect(truth.version).toBe("TLSv1.3");
            for (const field of ["version", "cipher", "group"] as const) {
              const said: string | null = report[field];
              if (said !== null) expect(`${field} ${said}`).toBe(`${field} ${truth[field]}`);
            }
          }
        });

  for (const name of HYBRID)
    test(`${name} negotiates X25519MLKEM768 with OpenSSL 3.5 and X25519 with OpenSSL 3.0`, () => {
      const client = clients.find((c) => c.name === name);
      if (!client) return;
      for (const server of servers)
        for (const address of LAB_ADDRESSES) {
          const seen = connectionsOfRun(wire, server.port, address, client.sni);
          expect(seen.length).toBeGreaterThanOrEqual(1);
          for (const conn of seen) {
            const truth = summarize(conn);
            expect(truth.keySharesOffered[0]).toBe("X25519MLKEM768");
            // 4588 in the ServerHello's key_share from 3.5; 3.0 has no ML-KEM and takes the X25519 share
            expect({ server: server.name, group: truth.group }).toEqual({
              server: server.name,
              group: server.name.includes("3.5") ? "X25519MLKEM768" : "X25519",
            });
          }
        }
    });
});
