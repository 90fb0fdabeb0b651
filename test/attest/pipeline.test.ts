/**
 * The whole pipeline on real handshakes traced here: nginx and `openssl s_server` on 127.0.0.1, curl,
 * python3 and `openssl s_client` clients, `carnot trace` → bom → merge → policy → attest → attest verify,
 * and each policy rule checked on records `bom` made from that real trace output.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Attestation } from "../../src/attest/attestation.ts";
import type { CryptoBom } from "../../src/bom/cryptobom.ts";
import type { CycloneDxBom } from "../../src/bom/cyclonedx.ts";
import type { PolicyResult } from "../../src/policy/rules.ts";
import {
  childPids,
  curl,
  makeSelfSignedCert,
  pythonClient,
  type RunningServer,
  startNginx,
  startOpenSslServer,
} from "../../src/lab/loopback.ts";
import { runCarnot } from "../bom/cli-run.ts";
import { compileCycloneDx16, describeErrors } from "../bom/cyclonedx-schema.ts";
import { startTracer, traceSkipReason } from "../support/tracer.ts";
import { CHROMIUM, dumpDom } from "../support/chromium.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping the trace → attest pipeline test: ${skip}`);

/** What each client was for: the SNI it used and the pid that made the handshake. */
interface Client {
  purpose: "classical" | "ffdhe2048" | "sha1_suite" | "tls1_0" | "python" | "refused";
  sni: string;
  pid: number;
  exitCode: number;
}

async function openSslClient(
  port: number,
  sni: string,
  args: string[],
): Promise<{ pid: number; exitCode: number }> {
  const proc = Bun.spawn(
    ["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", sni, ...args],
    {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
    },
  );
  proc.stdin.end();
  return { pid: proc.pid, exitCode: await proc.exited };
}

describe.skipIf(skip !== null)("pipeline on real traced handshakes", () => {
  let dir = "";
  let nginx: RunningServer | undefined;
  let legacy: RunningServer | undefined;
  const clients: Client[] = [];
  let pids = new Set<number>();
  let runtime = "";
  let bom: CryptoBom;
  let merged: CryptoBom;
  let policy: PolicyResult;
  let lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-pipeline-"));
    const cert = await makeSelfSignedCert(dir);
    nginx = await startNginx(join(dir, "nginx"), cert);
    // TLS 1.0 needs security level 0 on OpenSSL 3 (and on Debian, which raises the minimum to TLS 1.2).
    legacy = await startOpenSslServer(cert, { args: ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"] });
    const traced = join(dir, "runtime.all.jsonl");
    const tracer = await startTracer(["-out", traced, "--metrics-interval", "0"]);
    const viaCurl = async (purpose: Client["purpose"], sni: string, port: number, opts = {}) => {
      const r = await curl(port, sni, opts);
      clients.push({ purpose, sni, pid: r.pid, exitCode: r.exitCode });
    };
    await viaCurl("classical", "api.pipeline.example", nginx.port);
    await viaCurl("classical", "api.pipeline.example", nginx.port);
    await viaCurl("ffdhe2048", "ffdhe.pipeline.example", nginx.port, { groups: "ffdhe2048" });
    await viaCurl("sha1_suite", "sha1.pipeline.example", nginx.port, {
      args: ["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-SHA"],
    });
    await viaCurl("refused", "refused.pipeline.example", legacy.port);
    const old = await openSslClient(legacy.port, "old.pipeline.example", [
      "-tls1",
      "-cipher",
      "DEFAULT:@SECLEVEL=0",
    ]);
    clients.push({ purpose: "tls1_0", sni: "old.pipeline.example", ...old });
    const py = await pythonClient(nginx.port, [
      { sni: "py.pipeline.example", groups: null, on: "context", count: 2 },
    ]);
    clients.push({
      purpose: "python",
      sni: "py.pipeline.example",
      pid: py.pid,
      exitCode: py.handshakes.every((h) => h.ok) ? 0 : 1,
    });
    const workers = await childPids(nginx.pid);
    await Bun.sleep(300);
    const exit = await tracer.stop("SIGINT");
    if (exit.exitCode !== 0) throw new Error(`trace exited ${exit.exitCode}: ${exit.stderr}`);
    // Other work on this host is traced too: keep the lines of this test's own processes.
    pids = new Set([...clients.map((c) => c.pid), ...workers, nginx.pid, legacy.pid]);
    const kept = readFileSync(traced, "utf8")
      .split("\n")
      .filter((l) => l !== "" && pids.has((JSON.parse(l) as { pid: number }).pid));
    runtime = join(dir, "runtime.jsonl");
    writeFileSync(runtime, kept.map((l) => `${l}\n`).join(""));
    lines = kept.map((l) => JSON.parse(l));
  }, 90_000);

  afterAll(async () => {
    await nginx?.stop();
    await legacy?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the clients did what they were meant to", () => {
    const code = (p: Client["purpose"]) => clients.filter((c) => c.purpose === p).map((c) => c.exitCode);
    expect(code("classical")).toEqual([0, 0]);
    expect(code("ffdhe2048")).toEqual([0]);
    expect(code("sha1_suite")).toEqual([0]);
    expect(code("refused")).not.toEqual([0]);
    expect(code("python")).toEqual([0]);
    const curlLines = lines.filter((l) => clients.some((c) => c.pid === l.pid && c.purpose === "classical"));
    expect(curlLines.map((l) => l.sni)).toEqual(["api.pipeline.example", "api.pipeline.example"]);
  });

  test("trace → bom: one observation per traced line, refs from the chain, CycloneDX valid", () => {
    const out = join(dir, "runtime.bom.json");
    const r = runCarnot([
      "bom",
      runtime,
      "-o",
      out,
      "--owner",
      "pipeline",
      "--secrecy-years",
      "20",
      "--exposure",
      "PUBLIC_INTERNET",
    ]);
    expect(r.code).toBe(0);
    bom = JSON.parse(readFileSync(out, "utf8"));
    expect(bom.summary.observations).toBe(lines.length);
    const refs = new Set(bom.observations.map((o) => o.bom_ref));
    for (const l of lines) expect(refs.has(`obs-${String(l.raw_hash).slice(0, 24)}`)).toBe(true);
    // each handshake twice: the client's line and, with the name the wire saw the client ask for, nginx's
    expect(bom.metrics.sni_counts["api.pipeline.example"]).toBe(4);
    expect(bom.metrics.sni_counts["py.pipeline.example"]).toBe(4);
    expect(bom.observations.every((o) => o.owner === "pipeline" && o.secrecy_lifetime_years === 20)).toBe(
      true,
    );
    const cdxOut = join(dir, "runtime.cdx.json");
    expect(runCarnot(["bom", runtime, "--format", "cyclonedx", "-o", cdxOut]).code).toBe(0);
    const validate = compileCycloneDx16();
    const cdx: CycloneDxBom = JSON.parse(readFileSync(cdxOut, "utf8"));
    expect(validate(cdx) || describeErrors(validate)).toBe(true);
    const names = cdx.components.map((c) => c.name);
    expect(names).toContain("curl");
    expect(names).toContain("python3");
  });

  test("merge with a static inventory: SNIs matched to the service by wildcard, nothing lost", () => {
    const inventory = join(dir, "inventory.cryptobom.json");
    writeFileSync(
      inventory,
      JSON.stringify({
        schema: "carnot.v2.1.cryptobom",
        run_id: "inventory",
        summary: { components: 0, observations: 0, unique_snis: 0 },
        observations: [],
        metrics: { sni_counts: {}, components: [] },
        assets: [
          {
            asset_id: "svc-pipeline",
            kind: "service",
            source: "static.inventory",
            domains: ["*.pipeline.example"],
            data_class: "secret",
          },
          { asset_id: "kms-pipeline", kind: "key", source: "cloud.kms", algorithm: "RSA", key_size: 2048 },
        ],
      }),
    );
    const out = join(dir, "merged.json");
    const r = runCarnot(["merge", join(dir, "runtime.bom.json"), inventory, "-o", out]);
    expect(r.code).toBe(0);
    merged = JSON.parse(readFileSync(out, "utf8"));
    expect(merged.summary.observations).toBe(bom.summary.observations);
    expect(merged.assets?.map((a) => a.asset_id)).toEqual(["kms-pipeline", "svc-pipeline"]);
    const withSni = merged.observations.filter((o) => o.sni?.endsWith(".pipeline.example"));
    expect(merged.merge?.matched_by_domain).toBe(withSni.length);
    expect(withSni.every((o) => o.asset_id === "svc-pipeline" && o.data_class === "secret")).toBe(true);
  });

  test("policy: JSON and SARIF over the merged BOM; --enforce fails on the findings", () => {
    const out = join(dir, "policy.json");
    expect(runCarnot(["policy", join(dir, "merged.json"), "-o", out]).code).toBe(0);
    policy = JSON.parse(readFileSync(out, "utf8"));
    expect(policy.status).toBe("violations");
    const sarifOut = join(dir, "policy.sarif");
    expect(
      runCarnot(["policy", join(dir, "merged.json"), "--format", "sarif", "--enforce", "-o", sarifOut]).code,
    ).toBe(1);
    expect(JSON.parse(readFileSync(sarifOut, "utf8")).runs[0].results).toHaveLength(policy.findings.length);
  });

  /** The bom_refs of the observations made by the clients with this purpose. */
  const refsOf = (purpose: Client["purpose"]): string[] => {
    const mine = new Set(clients.filter((c) => c.purpose === purpose).map((c) => c.pid));
    return bom.observations.filter((o) => o.pid !== null && mine.has(o.pid)).map((o) => o.bom_ref);
  };
  const flagged = (ruleId: string): Set<string> =>
    new Set(policy.findings.filter((f) => f.rule_id === ruleId).flatMap((f) => f.records));
  /** A rule can only fire once the trace reports its field: say so instead of passing silently. */
  /** The trace fills the key-exchange facts, so the rule is proven on real records, never skipped. */
  const expectField = (purpose: Client["purpose"], field: keyof CryptoBom["observations"][number]): void => {
    const obs = bom.observations.filter((o) => refsOf(purpose).includes(o.bom_ref));
    expect(obs.length).toBeGreaterThan(0);
    for (const o of obs) expect(o[field]).not.toBeNull();
  };

  test("rule legacy_group fires on the ffdhe2048 client's real records", () => {
    const refs = refsOf("ffdhe2048");
    expect(refs.length).toBe(1);
    const offered = bom.observations.find((o) => o.bom_ref === refs[0])?.groups_offered;
    expect(offered).toEqual(["ffdhe2048"]);
    for (const r of refs) expect(flagged("legacy_group").has(r)).toBe(true);
    for (const r of refsOf("classical")) expect(flagged("legacy_group").has(r)).toBe(false);
  });

  test("rule missing_hybrid_support fires on real classical handshakes", () => {
    expectField("classical", "kex_class");
    for (const r of refsOf("classical")) expect(flagged("missing_hybrid_support").has(r)).toBe(true);
  });

  test("rule legacy_hash_function fires on the real SHA-1 suite handshake", () => {
    expectField("sha1_suite", "cipher");
    for (const r of refsOf("sha1_suite")) expect(flagged("legacy_hash_function").has(r)).toBe(true);
    for (const r of refsOf("classical")) expect(flagged("legacy_hash_function").has(r)).toBe(false);
  });

  test("rule legacy_tls_version fires on the real TLS 1.0 handshake", () => {
    expectField("tls1_0", "tls_version");
    for (const r of refsOf("tls1_0")) expect(flagged("legacy_tls_version").has(r)).toBe(true);
  });

  test("rules rsa_min_key_size and untagged_cloud_key: their fields come from inventories, not traces", () => {
    // The trace cannot see key sizes or cloud tags; the inventory merged above carries them.
    expect([...flagged("rsa_min_key_size")]).toEqual(["kms-pipeline"]);
    expect([...flagged("untagged_cloud_key")]).toEqual(["kms-pipeline"]);
  });

  test("attest: signed reports, verify passes, the page in Chromium shows the JSON's numbers", () => {
    const key = join(dir, "ed25519.pem");
    expect(Bun.spawnSync(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key]).exitCode).toBe(0);
    const prefix = join(dir, "attestation");
    const r = runCarnot([
      "attest",
      join(dir, "merged.json"),
      "--policy",
      join(dir, "policy.json"),
      "--key",
      key,
      "-o",
      prefix,
    ]);
    expect(r.code).toBe(0);
    const a: Attestation = JSON.parse(readFileSync(`${prefix}.json`, "utf8"));
    const successful = merged.observations.filter((o) => o.success === true).length;
    expect(a.metrics.handshakes_successful).toBe(successful);
    expect(a.sankey.nodes.find((n) => n.id === "handshakes")?.value ?? 0).toBe(successful);
    expect(a.policy.findings).toBe(policy.findings.length);
    expect(runCarnot(["attest", "verify", `${prefix}.json`]).code).toBe(0);
    if (!CHROMIUM) {
      console.warn("HTML not rendered: chromium not installed (make setup installs it)");
      return;
    }
    const dom = dumpDom(`${prefix}.html`);
    expect(dom).toContain('data-rendered="ok"');
    const shown = (path: string) => new RegExp(`data-metric="${path}"[^>]*>([^<]*)<`).exec(dom)?.[1];
    expect(shown("metrics.handshakes_successful")).toBe(String(a.metrics.handshakes_successful));
    expect(shown("metrics.hndl_exposed")).toBe(String(a.metrics.hndl_exposed));
    expect(shown("policy.findings")).toBe(String(a.policy.findings));
  });
});
