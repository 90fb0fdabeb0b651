/**
 * The compiled single binary (`make build` → ./carnot, BPF object embedded) traces real handshakes the same
 * way the sources do. When ./carnot is missing it is compiled into a temporary directory first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ClientResult,
  childPids,
  curl,
  makeSelfSignedCert,
  type PythonHandshake,
  pythonClient,
  type RunningServer,
  startNginx,
} from "../../src/lab/loopback.ts";
import type { ChainedObservation } from "../../src/trace/observation.ts";
import { COMPILED, readObservations, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping compiled carnot trace tests: ${skip}`);

describe.skipIf(skip !== null)("compiled ./carnot trace", () => {
  let dir = "";
  let binary = COMPILED;
  let nginx: RunningServer;
  let records: ChainedObservation[] = [];
  let exit = { exitCode: -1, exitMs: 0, stderr: "" };
  let client: ClientResult;
  let py: { pid: number; handshakes: PythonHandshake[] };
  let workers: number[] = [];
  let out = "";
  /** the tracer's pid, environment and command line while it ran */
  let started = { pid: 0, environ: [] as string[], cmdline: [] as string[] };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-bin-"));
    if (!existsSync(COMPILED)) {
      binary = join(dir, "carnot");
      const build = Bun.spawnSync(
        ["bun", "build", "--compile", join(REPO, "src", "cli.ts"), "--outfile", binary],
        { cwd: REPO, stdout: "ignore", stderr: "pipe" },
      );
      if (build.exitCode !== 0) throw new Error(`bun build --compile failed: ${build.stderr.toString()}`);
    }
    const cert = await makeSelfSignedCert(dir);
    nginx = await startNginx(join(dir, "nginx"), cert);
    out = join(dir, "runtime.jsonl");
    const tracer = await startTracer(["-out", out, "--metrics-interval", "0"], { binary });
    const proc = `/proc/${tracer.proc.pid}`;
    started = {
      pid: tracer.proc.pid,
      environ: readFileSync(`${proc}/environ`, "utf8").split("\0"),
      cmdline: readFileSync(`${proc}/cmdline`, "utf8").split("\0").slice(0, -1),
    };
    client = await curl(nginx.port, "bin.example", { groups: "P-384:X25519" });
    py = await pythonClient(
      nginx.port,
      Array.from({ length: 8 }, (_, i) => ({
        sni: `bin${i}.example`,
        groups: i % 2 ? "X448:P-256" : "P-521",
        on: i % 3 ? ("connection" as const) : ("context" as const),
        count: 3,
      })),
    );
    workers = await childPids(nginx.pid);
    await Bun.sleep(200);
    exit = await tracer.stop("SIGINT");
    records = readObservations(out);
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("exits 0 within 3 s of SIGINT with a sealed log its own verify accepts", () => {
    expect(exit.exitCode).toBe(0);
    expect(exit.exitMs).toBeLessThan(3000);
    const verify = Bun.spawnSync([binary, "verify", out]);
    expect(verify.stdout.toString()).toStartWith("ok:");
    expect(verify.exitCode).toBe(0);
  });

  test("runs re-executed with its engine options: same pid and arguments, no warm-up record in the output", () => {
    // the process that printed "ready" is the one spawned (execve keeps the pid), with the FTL allowlist
    expect(started.environ.filter((e) => e.startsWith("BUN_JSC_") || e.startsWith("MIMALLOC_"))).toEqual([
      expect.stringMatching(/^BUN_JSC_ftlAllowlist=\/.+\/ftl-allowlist$/),
      "MIMALLOC_PURGE_DELAY=-1",
    ]);
    expect(started.cmdline).toEqual([binary, "trace", "-out", out, "--metrics-interval", "0"]);
    expect(records.length).toBeGreaterThan(0);
    expect(records.filter((r) => r.comm?.startsWith("warm-up") || r.sni === "warm-up.invalid")).toEqual([]);
  });

  test("curl, python and nginx lines carry the right SNI, groups, role and outcome", () => {
    const curlLines = records.filter((r) => r.pid === client.pid);
    // both sources saw each handshake: one line, the offered groups as the ClientHello carried them
    expect(
      curlLines.map((r) => [r.sni, r.groups_offered, r.groups_source, r.handshake_success, r.observed_by]),
    ).toEqual([["bin.example", ["secp384r1", "X25519"], "client-hello", true, ["libssl", "wire"]]]);
    const pyLines = records.filter((r) => r.pid === py.pid);
    expect(pyLines).toHaveLength(24);
    for (const r of pyLines) {
      const i = Number(/^bin(\d)\.example$/.exec(r.sni ?? "")?.[1]);
      expect(r.groups_offered).toEqual(i % 2 ? ["X448", "secp256r1"] : ["secp521r1"]);
      expect(r.server_name).toBe(r.sni);
      expect(r.observed_by).toEqual(["libssl", "wire"]);
      expect(r.handshake_success).toBe(true);
    }
    const server = records.filter((r) => r.pid !== null && workers.includes(r.pid));
    expect(server).toHaveLength(25);
    expect(server.every((r) => r.role === "server" && r.handshake_success)).toBe(true);
  });

  test("demo: starts its servers, traces real handshakes, shows them and stops by itself", () => {
    const t0 = performance.now();
    const res = Bun.spawnSync([binary, "demo"], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    const stdout = res.stdout.toString();
    expect(res.exitCode).toBe(0);
    expect(performance.now() - t0).toBeLessThan(30_000);
    // server lines carry the name their client asked for too: a row is found by role and name
    const row = (sni: string, role = "client") =>
      stdout.split("\n").find((l) => l.startsWith(`${role} `) && l.includes(` ${sni} `)) ?? "";
    // seen by both sources: the groups as the ClientHello carried them, the key shares it sent
    expect(row("api.demo.example")).toMatch(
      /^client\s+curl\[\d+\]\s+libssl\+wire\s+api\.demo\.example\s+X25519,secp256r1\s+X25519\s+yes/,
    );
    expect(row("py-a.demo.example")).toMatch(/X25519\s+X25519\s+yes/);
    // the key exchange python's only group allows, with the version and suite OpenSSL 3.0 picks for it
    expect(row("py-a.demo.example")).toMatch(/\s\d+\s+X25519\s+classical\s+TLSv1\.[23]\s+TLS_\w+$/);
    expect(row("refused.demo.example")).toMatch(/\s+no\s+fatal\s/);
    expect(stdout).toMatch(/^server\s+nginx\[\d+\]/m);
    // implicit handshakes (inside SSL_read/SSL_write) on both sides of openssl s_client ↔ s_server
    expect(row("s-client.demo.example")).toMatch(/^client\s+openssl\[\d+\].*\s+yes\s.*\sX448\s+classical\s/);
    expect(stdout).toMatch(/^server\s+s_server\[\d+\].*\s+yes\s.*\sX448\s+classical\s/m);
    // Bun's own TLS in this very executable, seen on the wire alone, both ends: the hybrid post-quantum group
    const bun = stdout.split("\n").filter((l) => l.includes(" bun.demo.example "));
    expect(bun.map((l) => l.split(/\s+/)[0]).sort()).toEqual(["client", "server"]);
    for (const l of bun)
      expect(l).toMatch(
        /\sbun\[\d+\]\s+wire\s+bun\.demo\.example\s.*\sX25519MLKEM768\s+hybrid-pq\s+TLSv1\.3\s/,
      );
    // GnuTLS, which no uprobe sees: its client line from the wire, nginx's joined
    expect(row("gnutls.demo.example")).toMatch(/^client\s+gnutls-cli\[\d+\]\s+wire\s/);
    expect(stdout).toMatch(/^server\s+nginx\[\d+\]\s+libssl\+wire\s+gnutls\.demo\.example\s/m);
    expect(stdout).toMatch(/key exchange of \d+ successful handshakes: [1-9]\d* hybrid post-quantum/);
    const path = /seal: (\S+)\.seal\.json/.exec(stdout)?.[1];
    expect(path).toBeDefined();
    expect(Bun.spawnSync([binary, "verify", path!]).exitCode).toBe(0);
    // the point of it: which successful handshakes are post-quantum, counted from the lines themselves
    const lines = readFileSync(path!, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    // a process only the wire saw still has its executable, announced by the kernel (gnutls-cli is gone by now)
    expect(lines.find((l) => l.comm === "gnutls-cli" && l.role === "client")?.exe).toBe(
      "/usr/bin/gnutls-cli",
    );
    const ok = lines.filter((l) => l.handshake_success);
    const classical = ok.filter((l) => l.kex_class === "classical").length;
    expect(stdout).toContain(`key exchange of ${ok.length} successful handshakes:`);
    expect(stdout).toContain(`${classical} classical`);
    // and the rest of the pipeline ran on them: CBOMs, policy, attestation, where the line says
    const dir = join(path!, "..");
    expect(stdout).toContain(`reports: ${join(dir, "runtime.bom.json")}`);
    const bom = JSON.parse(readFileSync(join(dir, "runtime.bom.json"), "utf8"));
    expect(bom.observations.length).toBe(lines.length);
    expect(JSON.parse(readFileSync(join(dir, "runtime.cdx.json"), "utf8")).specVersion).toBe("1.6");
    const policy = JSON.parse(readFileSync(join(dir, "policy.json"), "utf8"));
    expect(policy.findings.some((f: { rule_id: string }) => f.rule_id === "missing_hybrid_support")).toBe(
      classical > 0,
    );
    for (const ext of ["json", "md", "html"]) expect(existsSync(join(dir, `attestation.${ext}`))).toBe(true);
    // 10 years of secrecy + 5 of migration outlast the years to the default CRQC year: classical = exposed
    const attestation = JSON.parse(readFileSync(join(dir, "attestation.json"), "utf8"));
    expect(attestation.metrics.hndl_exposed).toBe(classical);
    rmSync(dir, { recursive: true, force: true });
  });
});
