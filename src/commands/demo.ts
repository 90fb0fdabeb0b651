import { defineCommand } from "citty";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ClientResult,
  childPids,
  curl,
  makeSelfSignedCert,
  openSslClient,
  pythonClient,
  type RunningServer,
  runClient,
  startNginx,
  startOpenSslServer,
} from "../lab/loopback.ts";
import { bunTlsPair } from "../lab/bun-tls.ts";
import type { Observation } from "../trace/observation.ts";
import { runTrace } from "../trace/run.ts";
import { CarnotError } from "../errors.ts";
import { writeStdout } from "../io/output.ts";
import { commonArgs } from "./shared.ts";

interface DemoClient {
  label: string;
  pid: number;
}

/** The observations as an aligned text table (one row per handshake). */
export function observationTable(rows: { who: string; obs: Observation }[]): string {
  const header = [
    "ROLE",
    "PROCESS",
    "SEEN BY",
    "SERVER NAME",
    "GROUPS OFFERED",
    "KEY SHARES",
    "OK",
    "ERROR",
    "µs",
    "GROUP",
    "KEX",
    "VERSION",
    "CIPHER",
  ];
  // a library's default list is long: its first names say enough
  const offered = (groups: string[]) =>
    groups.length > 4 ? `${groups.slice(0, 4).join(",")},…` : groups.join(",");
  const cells = rows.map(({ who, obs }) => [
    obs.role ?? "?",
    who,
    obs.observed_by.join("+"),
    obs.server_name ?? obs.sni ?? "-",
    obs.groups_offered.length ? offered(obs.groups_offered) : "-",
    obs.key_shares_offered?.length ? offered(obs.key_shares_offered) : "-",
    obs.handshake_success === null ? "?" : obs.handshake_success ? "yes" : "no",
    obs.error ?? "",
    obs.duration_us === null ? "-" : String(obs.duration_us),
    obs.negotiated_group ?? "-",
    obs.kex_class ?? "-",
    obs.tls_version ?? "-",
    obs.cipher ?? "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((s, i) => s.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), ...cells.map(line)].join("\n");
}

/** One GnuTLS handshake to 127.0.0.1:port with its own SNI (certificate not checked), then it quits. */
function gnutlsCli(port: number, sni: string): string[] {
  return [
    "gnutls-cli",
    "--insecure",
    "--logfile=/dev/null",
    `--sni-hostname=${sni}`,
    "-p",
    String(port),
    "127.0.0.1",
  ];
}

/** The demo's traffic carries no real data; a secrecy lifetime makes the harvest-now-decrypt-later verdict concrete. */
const DEMO_SECRECY_YEARS = 10;

/** One line on what the point is: which handshakes resist a quantum adversary and which do not. */
export function kexSummary(observations: Observation[]): string {
  const done = observations.filter((o) => o.handshake_success);
  const count = (k: Observation["kex_class"]) => done.filter((o) => o.kex_class === k).length;
  const unknown = done.filter((o) => o.kex_class === null).length;
  return (
    `key exchange of ${done.length} successful handshakes: ${count("hybrid-pq")} hybrid post-quantum, ` +
    `${count("pq")} post-quantum, ${count("classical")} classical (harvest now, decrypt later), ${unknown} unknown`
  );
}

export default defineCommand({
  meta: {
    name: "demo",
    description:
      "Start local TLS servers (nginx, openssl s_server, Bun), trace real handshakes of curl, python3, openssl, GnuTLS and Bun, show them",
  },
  args: { ...commonArgs },
  async run({ args }) {
    const say = (s: string) => writeStdout(`${s}\n`);
    const dir = mkdtempSync(join(tmpdir(), "carnot-demo-"));
    const out = join(dir, "runtime.jsonl");
    const servers: RunningServer[] = [];
    const stop = new AbortController();
    try {
      const cert = await makeSelfSignedCert(dir);
      const nginx = await startNginx(join(dir, "nginx"), cert);
      servers.push(nginx);
      const strict = await startNginx(join(dir, "nginx-tls13-x448"), cert, {
        protocols: "TLSv1.3",
        groups: "X448",
      });
      servers.push(strict);
      const sServer = await startOpenSslServer(cert);
      servers.push(sServer);
      say(
        `servers on 127.0.0.1: nginx :${nginx.port}, nginx (TLS 1.3 + X448 only) :${strict.port}, openssl s_server :${sServer.port}`,
      );

      const ready = Promise.withResolvers<void>();
      const tracing = runTrace({
        out,
        libraries: [],
        windowMs: 2000,
        maxPending: 65_536,
        metricsIntervalS: 0,
        verbose: args.verbose,
        signal: stop.signal,
        status: (line) => {
          process.stderr.write(`${line}\n`);
          if (line.includes("ready")) ready.resolve();
        },
      });
      await Promise.race([ready.promise, tracing]);

      const clients: DemoClient[] = [];
      const ran = (label: string, r: ClientResult) => clients.push({ label, pid: r.pid });
      ran("curl", await curl(nginx.port, "api.demo.example", { groups: "X25519:P-256" }));
      ran("curl", await curl(sServer.port, "legacy.demo.example", { groups: "P-384" }));
      const py = await pythonClient(nginx.port, [
        { sni: "py-a.demo.example", groups: "X25519", on: "connection", count: 1 },
        { sni: "py-b.demo.example", groups: "P-521:P-384", on: "context", count: 1 },
        { sni: "py-c.demo.example", groups: null, on: "context", count: 1 },
      ]);
      clients.push({ label: "python3", pid: py.pid });
      const sc = await openSslClient(sServer.port, "s-client.demo.example", "X448");
      ran("openssl", sc);
      const refused = await pythonClient(strict.port, [
        { sni: "refused.demo.example", groups: "P-256", on: "connection", count: 1, maxVersion: "TLSv1_2" },
      ]);
      clients.push({ label: "python3", pid: refused.pid });
      // Bun's own TLS (BoringSSL inside this very executable): a hybrid post-quantum key exchange, seen on the wire
      const bun = await bunTlsPair(cert, "bun.demo.example");
      clients.push({ label: "bun", pid: bun.pid });
      // GnuTLS (wget, git and apt use it): no libssl, the wire alone sees it
      if (Bun.which("gnutls-cli")) {
        ran("gnutls-cli", await runClient(gnutlsCli(nginx.port, "gnutls.demo.example")));
      }
      const workers = [...(await childPids(nginx.pid)), ...(await childPids(strict.pid))];
      await Bun.sleep(300); // the clients' last SSL_free calls reach the ring buffer

      stop.abort();
      const summary = await tracing;
      const text = await Bun.file(out).text();
      const rows: { who: string; obs: Observation }[] = [];
      for (const line of text.split("\n")) {
        if (line === "") continue;
        const obs = JSON.parse(line) as Observation;
        const client = clients.find((c) => c.pid === obs.pid);
        if (client) rows.push({ who: `${client.label}[${obs.pid}]`, obs });
        else if (obs.pid !== null && workers.includes(obs.pid)) rows.push({ who: `nginx[${obs.pid}]`, obs });
        else if (obs.pid === sServer.pid) rows.push({ who: `s_server[${obs.pid}]`, obs });
      }
      say("");
      say(observationTable(rows));
      say("");
      say(`${summary.records} observations (all processes) in ${out}`);
      say(`seal: ${out}.seal.json — check with: carnot verify ${out}`);
      say(kexSummary(rows.map((r) => r.obs)));

      // the rest of the pipeline on what was just traced: CBOM, post-quantum policy, attestation
      const bom = join(dir, "runtime.bom.json");
      const cdx = join(dir, "runtime.cdx.json");
      const policy = join(dir, "policy.json");
      const report = join(dir, "attestation");
      const stages = [
        ["bom", out, "--secrecy-years", String(DEMO_SECRECY_YEARS), "-o", bom],
        ["bom", out, "--secrecy-years", String(DEMO_SECRECY_YEARS), "--format", "cyclonedx", "-o", cdx],
        ["policy", bom, "-o", policy],
        ["attest", bom, "--policy", policy, "-o", report],
      ];
      say(
        `asset context assumed for the reports: data kept secret for ${DEMO_SECRECY_YEARS} years (bom --secrecy-years)`,
      );
      const { runCli } = await import("../program.ts");
      for (const argv of stages) {
        const code = await runCli(argv);
        if (code !== 0) throw new CarnotError(`demo: \`carnot ${argv.join(" ")}\` failed (exit ${code})`);
      }
      say(`reports: ${bom}, ${cdx}, ${policy}, ${report}.{json,md,html}`);
      return 0;
    } finally {
      stop.abort();
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});
