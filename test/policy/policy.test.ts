import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { buildCryptoBom, type CryptoBom } from "../../src/bom/cryptobom.ts";
import { parseRuntimeJsonl, readCryptoBom } from "../../src/bom/read.ts";
import { mergeBoms } from "../../src/merge/merge.ts";
import { evaluatePolicy, legacyHashName, PolicyResultSchema, RULES } from "../../src/policy/rules.ts";
import { lineOf, toSarif } from "../../src/policy/sarif.ts";
import { FIXTURES, runCarnot } from "../bom/cli-run.ts";

const fixture = (name: string) => join(FIXTURES, name);

async function mergedFixture(): Promise<CryptoBom> {
  const runtime = buildCryptoBom(
    parseRuntimeJsonl("mixed.jsonl", readFileSync(fixture("mixed.jsonl"), "utf8")).records,
    {},
  );
  return mergeBoms([
    { file: "runtime.bom.json", bom: runtime },
    { file: "static.json", bom: await readCryptoBom(fixture("static.cryptobom.json")) },
    { file: "cloud.json", bom: await readCryptoBom(fixture("cloud.cryptobom.json")) },
  ]);
}

const ruleFindings = (bom: CryptoBom, id: string) =>
  evaluatePolicy(bom, { input: "m.json", enforce: false }).findings.filter((f) => f.rule_id === id);

describe("policy rules on hand-made records (fields a local trace cannot produce)", () => {
  test("every rule fires on the merged fixture, and names its records", async () => {
    const bom = await mergedFixture();
    const result = evaluatePolicy(bom, { input: "m.json", enforce: false });
    expect(v.safeParse(PolicyResultSchema, result).success).toBe(true);
    for (const rule of RULES) expect(result.rules.find((r) => r.id === rule.id)?.findings).toBeGreaterThan(0);
    const refs = new Set([
      ...bom.observations.map((o) => o.bom_ref),
      ...(bom.assets ?? []).map((a) => a.asset_id),
    ]);
    for (const f of result.findings) for (const r of f.records) expect(refs.has(r)).toBe(true);
  });

  test("missing_hybrid_support: successful classical handshakes only", async () => {
    const bom = await mergedFixture();
    const flagged = new Set(ruleFindings(bom, "missing_hybrid_support").flatMap((f) => f.records));
    for (const o of bom.observations) {
      expect(flagged.has(o.bom_ref)).toBe(o.success === true && o.kex_class === "classical");
    }
  });

  test("legacy_group: ffdhe2048 and secp224r1, not X25519, not an unknown group", async () => {
    const bom = await mergedFixture();
    const details = ruleFindings(bom, "legacy_group")
      .map((f) => f.subject.detail)
      .sort();
    expect(details).toEqual(["negotiated ffdhe2048", "negotiated secp224r1"]);
  });

  test("legacy_group on offered groups: only those preferred to the negotiated one, or with none known", async () => {
    const bom = await mergedFixture();
    const base = bom.observations.find((o) => o.group_selected === "X25519");
    if (!base) throw new Error("fixture has no X25519 observation");
    const variant = (groups_offered: string[], group_selected: string | null) => ({
      ...bom,
      observations: [{ ...base, bom_ref: "obs-variant", groups_offered, group_selected }],
    });
    const details = (b: CryptoBom) => ruleFindings(b, "legacy_group").map((f) => f.subject.detail);
    // a library default list (weak groups after the negotiated one) is not a finding
    expect(details(variant(["X25519", "secp256r1", "ffdhe2048"], "X25519"))).toEqual([]);
    expect(details(variant(["ffdhe2048", "X25519"], "X25519"))).toEqual(["offered ffdhe2048"]);
    expect(details(variant(["X25519", "ffdhe2048"], null))).toEqual(["offered ffdhe2048"]);
  });

  test("legacy_tls_version, legacy_hash_function, rsa_min_key_size, untagged_cloud_key", async () => {
    const bom = await mergedFixture();
    expect(ruleFindings(bom, "legacy_tls_version").map((f) => f.subject.detail)).toEqual(["TLSv1.1"]);
    const hashes = ruleFindings(bom, "legacy_hash_function")
      .map((f) => f.subject.detail)
      .sort();
    expect(hashes).toEqual([
      "SHA-1",
      "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
      "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    ]);
    expect(ruleFindings(bom, "rsa_min_key_size").map((f) => f.subject.ref)).toEqual([
      "cert-api-example-org",
      "kms-key-0001",
    ]);
    expect(ruleFindings(bom, "untagged_cloud_key").map((f) => f.subject.ref)).toEqual(["kms-key-0001"]);
  });

  test("a clean BOM passes; an empty one too", () => {
    const pqOnly = buildCryptoBom(
      parseRuntimeJsonl("mixed.jsonl", readFileSync(fixture("mixed.jsonl"), "utf8")).records.filter(
        (r) => r.kex_class === "hybrid-pq" || r.kex_class === "pq",
      ),
      {},
    );
    expect(pqOnly.summary.observations).toBe(2);
    expect(evaluatePolicy(pqOnly, { input: "x", enforce: true }).status).toBe("pass");
    expect(evaluatePolicy(buildCryptoBom([], {}), { input: "x", enforce: true }).summary.findings).toBe(0);
  });

  test("hash names", () => {
    expect(["SHA-1", "sha1", "sha1WithRSAEncryption", "MD5"].map(legacyHashName)).toEqual([
      "SHA1",
      "SHA1",
      "SHA1",
      "MD5",
    ]);
    expect(["SHA-256", "sha256", "SHA-128x"].map(legacyHashName)).toEqual([null, null, null]);
  });
});

describe("policy output", () => {
  test("SARIF 2.1.0: rules, levels, locations pointing at the offending record's line", async () => {
    const bom = await mergedFixture();
    const text = `${JSON.stringify(bom, null, 2)}\n`;
    const result = evaluatePolicy(bom, { input: "merged.json", enforce: false });
    const sarif = toSarif(result, text, "merged.json");
    expect(sarif.version).toBe("2.1.0");
    const run = sarif.runs[0]!;
    expect(run.tool.driver.rules?.map((r) => r.id)).toEqual(RULES.map((r) => r.id));
    expect(run.results).toHaveLength(result.findings.length);
    const lines = text.split("\n");
    for (const [i, r] of (run.results ?? []).entries()) {
      const f = result.findings[i]!;
      expect(r.ruleId).toBe(f.rule_id);
      expect(run.tool.driver.rules?.[r.ruleIndex!]?.id).toBe(f.rule_id);
      expect(r.level).toBe(f.severity === "low" ? "note" : f.severity === "medium" ? "warning" : "error");
      const line = r.locations?.[0]?.physicalLocation?.region?.startLine ?? 0;
      expect(line).toBe(lineOf(text, f));
      const wanted = f.subject.kind === "asset" ? f.subject.ref : f.records[0]!;
      expect(lines[line - 1]).toContain(JSON.stringify(wanted));
    }
  });

  const dir = mkdtempSync(join(tmpdir(), "carnot-policy-"));
  test("warn by default (exit 0), --enforce exits 1 with violations, 0 without", async () => {
    const merged = join(dir, "merged.json");
    await Bun.write(merged, `${JSON.stringify(await mergedFixture(), null, 2)}\n`);
    const warn = runCarnot(["policy", merged, "-o", join(dir, "p.json")]);
    expect(warn.code).toBe(0);
    expect(warn.stderr).toContain("warning only");
    const written = JSON.parse(readFileSync(join(dir, "p.json"), "utf8"));
    expect(written.status).toBe("violations");
    const enforced = runCarnot([
      "policy",
      merged,
      "--enforce",
      "--format",
      "sarif",
      "-o",
      join(dir, "p.sarif"),
    ]);
    expect(enforced.code).toBe(1);
    expect(JSON.parse(readFileSync(join(dir, "p.sarif"), "utf8")).runs[0].results.length).toBe(
      written.findings.length,
    );
    const empty = join(dir, "empty.bom.json");
    expect(runCarnot(["bom", fixture("empty.jsonl"), "-o", empty]).code).toBe(0);
    expect(runCarnot(["policy", empty, "--enforce"]).code).toBe(0);
    const text = runCarnot(["policy", merged, "--format", "text"]);
    expect(text.stdout).toMatch(/^VIOLATIONS: \d+ finding/m);
  });

  test("bad input: one line naming the file", () => {
    const r = runCarnot(["policy", fixture("mixed.jsonl")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^carnot: .*mixed\.jsonl: is handshake JSONL, not a BOM/);
    expect(runCarnot(["policy", fixture("context.json"), "--format", "yaml"]).code).toBe(2);
  });
});
