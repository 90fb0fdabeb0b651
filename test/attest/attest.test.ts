import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type Attestation, AttestationSchema, buildAttestation } from "../../src/attest/attestation.ts";
import {
  assessHndl,
  DEFAULT_CRQC_SOURCE,
  type HndlParameters,
  summariseHndl,
} from "../../src/attest/hndl.ts";
import { lifetimeWeight, riskScore, riskSeverity } from "../../src/attest/risk.ts";
import { buildCryptoBom, type CryptoBom, type CryptoBomObservation } from "../../src/bom/cryptobom.ts";
import { parseRuntimeJsonl, readCryptoBom } from "../../src/bom/read.ts";
import { mergeBoms } from "../../src/merge/merge.ts";
import { evaluatePolicy } from "../../src/policy/rules.ts";
import { FIXTURES, runCarnot } from "../bom/cli-run.ts";
import { CHROMIUM, dumpDom } from "../support/chromium.ts";

const fixture = (name: string) => join(FIXTURES, name);
const params: HndlParameters = {
  crqcYear: 2035,
  crqcSource: DEFAULT_CRQC_SOURCE,
  migrationYears: 5,
  asOfYear: 2026,
};

async function mergedFixture(): Promise<CryptoBom> {
  const runtime = buildCryptoBom(
    parseRuntimeJsonl("mixed.jsonl", readFileSync(fixture("mixed.jsonl"), "utf8")).records,
    { secrecy_lifetime_years: 15, exposure: "INTERNAL" },
  );
  return mergeBoms([
    { file: "runtime.bom.json", bom: runtime },
    { file: "static.json", bom: await readCryptoBom(fixture("static.cryptobom.json")) },
    { file: "cloud.json", bom: await readCryptoBom(fixture("cloud.cryptobom.json")) },
  ]);
}

const obs = (over: Partial<CryptoBomObservation>): CryptoBomObservation => ({
  bom_ref: "obs-1",
  source: "runtime.ebpf",
  observation_time: "2026-03-01T00:00:00Z",
  asset_id: null,
  owner: null,
  data_class: null,
  secrecy_lifetime_years: null,
  exposure: null,
  process: "curl",
  pid: 1,
  tid: 1,
  sni: null,
  groups_offered: [],
  group_selected: "X25519",
  kex_class: "classical",
  tls_version: "TLSv1.3",
  cipher: "TLS_AES_256_GCM_SHA384",
  success: true,
  confidence: 1,
  ...over,
});

describe("risk score (weights and test vectors of the older tool)", () => {
  test("the three vectors", () => {
    const base = { algorithmClass: "RSA-2048", standardsStatus: "NON_COMPLIANT" } as const;
    expect(riskScore({ ...base, exposure: "PUBLIC_INTERNET", lifetimeYears: 50 })).toEqual({
      score: 550,
      severity: "CRITICAL",
    });
    expect(riskScore({ ...base, exposure: "INTERNAL", lifetimeYears: 15 })).toEqual({
      score: 55,
      severity: "MEDIUM",
    });
    expect(
      riskScore({
        algorithmClass: "PQC_NIST",
        standardsStatus: "COMPLIANT",
        exposure: "PUBLIC_INTERNET",
        lifetimeYears: 50,
      }),
    ).toEqual({ score: 0, severity: "LOW" });
  });
  test("boundaries", () => {
    expect([31, 30, 11, 10, 1, 0.5].map(lifetimeWeight)).toEqual([10, 5, 5, 2, 2, 1]);
    expect([501, 500, 250, 249, 50, 49].map(riskSeverity)).toEqual([
      "CRITICAL",
      "HIGH",
      "HIGH",
      "MEDIUM",
      "MEDIUM",
      "LOW",
    ]);
  });
});

describe("HNDL (Mosca)", () => {
  test("x + y > z, classical only; configurable CRQC year", () => {
    expect(assessHndl(obs({ secrecy_lifetime_years: 15 }), params).outcome).toBe("hndl_exposed");
    // z = 2035 - 2026 = 9; 4 + 5 = 9 is not > 9
    expect(assessHndl(obs({ secrecy_lifetime_years: 4 }), params)).toMatchObject({
      longSecrecy: false,
      outcome: "classical_short",
    });
    expect(assessHndl(obs({ secrecy_lifetime_years: 4.5 }), params).outcome).toBe("hndl_exposed");
    expect(assessHndl(obs({ secrecy_lifetime_years: 50, kex_class: "hybrid-pq" }), params)).toMatchObject({
      longSecrecy: true,
      outcome: "protected",
    });
    expect(assessHndl(obs({ secrecy_lifetime_years: 15 }), { ...params, crqcYear: 2060 }).outcome).toBe(
      "classical_short",
    );
    expect(assessHndl(obs({ secrecy_lifetime_years: null }), params)).toMatchObject({
      secrecyKnown: false,
      longSecrecy: false,
    });
    expect(assessHndl(obs({ kex_class: null, secrecy_lifetime_years: 30 }), params).outcome).toBe(
      "unknown_kex",
    );
  });

  test("the Sankey is drawn from the counts: flows balance at every node", async () => {
    const bom = await mergedFixture();
    const { summary, sankey } = summariseHndl(bom.observations, params);
    const successful = bom.observations.filter((o) => o.success === true).length;
    expect(summary.handshakes).toBe(successful);
    const value = new Map(sankey.nodes.map((n) => [n.id, n.value]));
    const into = (id: string) => sankey.links.filter((l) => l.target === id).reduce((s, l) => s + l.value, 0);
    const outOf = (id: string) =>
      sankey.links.filter((l) => l.source === id).reduce((s, l) => s + l.value, 0);
    expect(outOf("handshakes")).toBe(successful);
    for (const n of sankey.nodes) {
      if (n.column === 1) expect(into(n.id)).toBe(outOf(n.id));
      if (n.column > 0) expect(into(n.id)).toBe(value.get(n.id)!);
    }
    expect(value.get("hndl_exposed")).toBe(summary.exposed_records.length);
    // context says 15 years: every successful classical runtime handshake without its own context is exposed
    expect(summary.hndl_exposed).toBeGreaterThan(0);
  });
});

describe("attestation document", () => {
  test("matches its schema; policy and metrics agree with the stages that made them", async () => {
    const bom = await mergedFixture();
    const policy = evaluatePolicy(bom, { input: "m.json", enforce: false });
    const a = buildAttestation({
      bom,
      file: "m.json",
      sha256: "0".repeat(64),
      policy,
      policySource: "test",
      parameters: params,
    });
    expect(v.safeParse(AttestationSchema, a).success).toBe(true);
    expect(a.policy.findings).toBe(policy.summary.findings);
    expect(a.metrics.classical + a.metrics.hybrid_pq + a.metrics.pq + a.metrics.unknown_kex).toBe(
      a.metrics.handshakes_successful,
    );
    expect(a.risk.assets.map((r) => r.asset)).toContain("kms-key-0001");
  });
});

/** Every `data-metric` figure on the page, compared with the JSON value it names. */
function pageFigures(dom: string): Map<string, string> {
  const figures = new Map<string, string>();
  for (const m of dom.matchAll(/data-metric="([^"]+)"[^>]*>([^<]*)</g))
    figures.set(m[1]!.replace(/&gt;/g, ">"), m[2]!.trim());
  return figures;
}

function jsonFigure(a: Attestation, path: string): string {
  const [head, ...rest] = path.split(".");
  const tail = rest.join(".");
  if (head === "metrics") return String(a.metrics[tail as keyof Attestation["metrics"]]);
  if (head === "sankey") return String(a.sankey.nodes.find((n) => n.id === tail)?.value);
  if (path === "policy.status") return a.policy.status;
  if (path === "policy.findings") return String(a.policy.findings);
  if (tail.startsWith("by_severity.") && head === "policy") {
    return String(a.policy.by_severity[tail.slice(12) as keyof Attestation["policy"]["by_severity"]]);
  }
  if (tail.startsWith("rules.")) return String(a.policy.rules.find((r) => r.id === tail.slice(6))?.findings);
  if (tail.startsWith("score.")) return String(a.risk.assets.find((r) => r.asset === tail.slice(6))?.score);
  if (head === "risk" && tail.startsWith("by_severity.")) {
    return String(a.risk.by_severity[tail.slice(12) as keyof Attestation["risk"]["by_severity"]]);
  }
  if (head === "parameters") return String(a.parameters[tail as keyof Attestation["parameters"]]);
  throw new Error(`no JSON value for ${path}`);
}

describe("attest: command line, signing, HTML in headless Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-attest-"));
  const merged = join(dir, "merged.json");
  const key = join(dir, "ed25519.pem");
  const pub = join(dir, "ed25519.pub.pem");
  const prefix = join(dir, "attestation");

  test("writes json/md/html, signed; verify passes", async () => {
    await Bun.write(merged, `${JSON.stringify(await mergedFixture(), null, 2)}\n`);
    expect(Bun.spawnSync(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key]).exitCode).toBe(0);
    expect(Bun.spawnSync(["openssl", "pkey", "-in", key, "-pubout", "-out", pub]).exitCode).toBe(0);
    const policyFile = join(dir, "policy.json");
    expect(runCarnot(["policy", merged, "-o", policyFile]).code).toBe(0);
    const r = runCarnot([
      "attest",
      merged,
      "--policy",
      policyFile,
      "--key",
      key,
      "-o",
      prefix,
      "--crqc-year",
      "2040",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([`${prefix}.json`, `${prefix}.md`, `${prefix}.html`]);
    const a: Attestation = JSON.parse(readFileSync(`${prefix}.json`, "utf8"));
    expect(a.parameters.crqc_year).toBe(2040);
    expect(a.signature?.algorithm).toBe("Ed25519");
    expect(a.policy.source).toBe(policyFile);
    const md = readFileSync(`${prefix}.md`, "utf8");
    expect(md).toContain(`| HNDL-exposed handshakes | ${a.metrics.hndl_exposed} |`);
    const ok = runCarnot(["attest", "verify", `${prefix}.json`, "--public-key", pub]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("signature valid");
  });

  test("the HTML is self-contained, renders, and shows the JSON's numbers", () => {
    const html = readFileSync(`${prefix}.html`, "utf8");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    if (!CHROMIUM) {
      console.warn("skipped: chromium not installed (make setup installs it)");
      return;
    }
    const dom = dumpDom(`${prefix}.html`);
    const a: Attestation = JSON.parse(readFileSync(`${prefix}.json`, "utf8"));
    expect(dom).toContain('data-rendered="ok"');
    expect(dom).toContain(`data-sankey-paths="${a.sankey.links.length}"`);
    const figures = pageFigures(dom);
    const expected =
      13 + a.sankey.nodes.length + 4 + a.policy.rules.length + a.risk.assets.length + 4 + 2 + 2;
    expect(figures.size).toBe(expected);
    for (const [path, shown] of figures) expect(`${path}=${shown}`).toBe(`${path}=${jsonFigure(a, path)}`);
  });

  test("tampering with any file, or the wrong key, fails verification", async () => {
    const pristine = {
      json: readFileSync(`${prefix}.json`, "utf8"),
      md: readFileSync(`${prefix}.md`, "utf8"),
    };
    writeFileSync(
      `${prefix}.md`,
      pristine.md.replace("HNDL-exposed handshakes |", "HNDL-exposed handshakes | 0 |"),
    );
    const md = runCarnot(["attest", "verify", `${prefix}.json`]);
    expect(md.code).toBe(1);
    expect(md.stderr).toMatch(
      /attestation\.json: verification failed: attestation\.md was modified after signing/,
    );
    writeFileSync(`${prefix}.md`, pristine.md);
    const a = JSON.parse(pristine.json);
    a.metrics.hndl_exposed = 0;
    writeFileSync(`${prefix}.json`, JSON.stringify(a, null, 2));
    expect(runCarnot(["attest", "verify", `${prefix}.json`]).stderr).toMatch(/signature does not match/);
    writeFileSync(`${prefix}.json`, pristine.json);
    const other = join(dir, "other.pem");
    Bun.spawnSync(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other]);
    const otherPub = join(dir, "other.pub.pem");
    Bun.spawnSync(["openssl", "pkey", "-in", other, "-pubout", "-out", otherPub]);
    expect(runCarnot(["attest", "verify", `${prefix}.json`, "--public-key", otherPub]).stderr).toMatch(
      /not by the expected key/,
    );
    expect(runCarnot(["attest", "verify", `${prefix}.json`, "--public-key", pub]).code).toBe(0);
  });

  test("unsigned attestation, bad key, mismatched policy, bad input: one clear line, non-zero exit", () => {
    const unsigned = join(dir, "unsigned");
    expect(runCarnot(["attest", merged, "-o", unsigned]).code).toBe(0);
    expect(runCarnot(["attest", "verify", `${unsigned}.json`]).stderr).toMatch(/not signed/);
    const rsa = join(dir, "rsa.pem");
    Bun.spawnSync([
      "openssl",
      "genpkey",
      "-algorithm",
      "rsa",
      "-pkeyopt",
      "rsa_keygen_bits:1024",
      "-out",
      rsa,
    ]);
    const bad = runCarnot(["attest", merged, "--key", rsa, "-o", join(dir, "x")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/rsa\.pem: an Ed25519 key is needed, this is rsa$/);
    const emptyBom = join(dir, "empty.bom.json");
    runCarnot(["bom", fixture("empty.jsonl"), "-o", emptyBom]);
    const emptyPolicy = join(dir, "empty.policy.json");
    runCarnot(["policy", emptyBom, "-o", emptyPolicy]);
    const mismatch = runCarnot(["attest", merged, "--policy", emptyPolicy, "-o", join(dir, "y")]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/empty\.policy\.json: policy result is for run run-/);
    expect(Bun.file(join(dir, "y.json")).size).toBe(0);
    const notBom = runCarnot(["attest", fixture("mixed.jsonl"), "-o", join(dir, "z")]);
    expect(notBom.code).toBe(1);
    expect(notBom.stderr.trim().split("\n")).toHaveLength(1);
    expect(runCarnot(["attest", merged, "--crqc-year", "soon"]).stderr).toMatch(
      /--crqc-year must be a whole number/,
    );
    // an empty BOM still gives a complete report
    const emptyOut = join(dir, "empty-attestation");
    expect(runCarnot(["attest", emptyBom, "-o", emptyOut]).code).toBe(0);
    expect(JSON.parse(readFileSync(`${emptyOut}.json`, "utf8")).metrics.handshakes_successful).toBe(0);
  });
});
