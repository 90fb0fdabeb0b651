import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { cipherSuiteFacts, groupFacts, indexGroups } from "../../src/bom/algorithms.ts";
import { resolveAssetContext } from "../../src/bom/context.ts";
import { buildCryptoBom, CryptoBomSchema } from "../../src/bom/cryptobom.ts";
import { toCycloneDx } from "../../src/bom/cyclonedx.ts";
import { parseRuntimeJsonl } from "../../src/bom/read.ts";
import { FIXTURES, runCarnot } from "./cli-run.ts";
import { compileCycloneDx16, describeErrors } from "./cyclonedx-schema.ts";

const OBSERVATION_KEYS = [
  "bom_ref",
  "source",
  "observation_time",
  "asset_id",
  "owner",
  "data_class",
  "secrecy_lifetime_years",
  "exposure",
  "process",
  "pid",
  "tid",
  "sni",
  "groups_offered",
  "group_selected",
  "kex_class",
  "tls_version",
  "cipher",
  "success",
  "confidence",
];

const fixture = (name: string) => join(FIXTURES, name);
const mixed = () => parseRuntimeJsonl("mixed.jsonl", readFileSync(fixture("mixed.jsonl"), "utf8")).records;
const validateCdx = compileCycloneDx16();

describe("bom: CryptoBOM v2.1 (hand-made fixtures)", () => {
  test("top level and observation fields are exactly the published ones", () => {
    const bom = buildCryptoBom(mixed(), {});
    expect(Object.keys(bom)).toEqual(["schema", "run_id", "summary", "observations", "metrics"]);
    expect(bom.schema).toBe("carnot.v2.1.cryptobom");
    expect(Object.keys(bom.summary)).toEqual(["components", "observations", "unique_snis"]);
    for (const o of bom.observations) expect(Object.keys(o)).toEqual(OBSERVATION_KEYS);
    expect(v.safeParse(CryptoBomSchema, bom).success).toBe(true);
  });

  test("counts, groups as lists, no-SNI and unknown-group records kept as they are", () => {
    const records = mixed();
    const bom = buildCryptoBom(records, {});
    expect(bom.summary.observations).toBe(records.length);
    const withSni = records.filter((r) => r.sni !== null);
    expect(Object.values(bom.metrics.sni_counts).reduce((a, b) => a + b, 0)).toBe(withSni.length);
    expect(bom.summary.unique_snis).toBe(new Set(withSni.map((r) => r.sni)).size);
    const noSni = bom.observations.find((o) => o.sni === null);
    expect(noSni?.process).toBe("nginx");
    const odd = bom.observations.find((o) => o.sni === "odd.example.org");
    expect(odd?.group_selected).toBe("FutureKEM9000");
    expect(odd?.kex_class).toBeNull();
    const pq = bom.observations.find((o) => o.sni === "pq.example.org");
    expect(pq?.groups_offered).toEqual(["X25519MLKEM768", "X25519"]);
    const failed = bom.observations.find((o) => o.sni === "down.example.org");
    expect(failed?.success).toBe(false);
    // components: distinct (process, sni, group, version, cipher); counts add up to the observations
    expect(bom.metrics.components.reduce((n, c) => n + c.count, 0)).toBe(records.length);
    const curlApi = bom.metrics.components.find((c) => c.process === "curl" && c.sni === "api.example.org");
    expect(curlApi?.count).toBe(2);
    expect(String(curlApi?.first_seen) < String(curlApi?.last_seen)).toBe(true);
  });

  test("bom_ref is unique and stable; identical records still get distinct refs", () => {
    const records = mixed();
    const a = buildCryptoBom(records, {});
    const b = buildCryptoBom(mixed(), {});
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const refs = a.observations.map((o) => o.bom_ref);
    expect(new Set(refs).size).toBe(refs.length);
    const doubled = buildCryptoBom([records[0]!, records[0]!], {});
    expect(new Set(doubled.observations.map((o) => o.bom_ref)).size).toBe(2);
    // a ref follows the record's chain hash, not its position
    const shifted = buildCryptoBom(records.slice(1), {});
    const ref1 = a.observations.find((o) => o.observation_time === records[1]!.time)?.bom_ref;
    expect(shifted.observations.find((o) => o.observation_time === records[1]!.time)?.bom_ref).toBe(ref1);
  });

  test("context fills what capture left null; flags win over the file; bad values are refused", () => {
    const ctx = resolveAssetContext(
      { owner: "payments", secrecy_lifetime_years: 15, exposure: "INTERNAL" },
      { exposure: "public-internet", "secrecy-years": "30" },
    );
    expect(ctx).toEqual({ owner: "payments", secrecy_lifetime_years: 30, exposure: "PUBLIC_INTERNET" });
    const bom = buildCryptoBom(mixed(), ctx);
    for (const o of bom.observations) {
      expect(o.owner).toBe("payments");
      expect(o.secrecy_lifetime_years).toBe(30);
    }
    expect(() => resolveAssetContext({}, { "secrecy-years": "forever" })).toThrow(/secrecy_lifetime_years/);
    expect(() => resolveAssetContext({}, { exposure: "moon" })).toThrow(/exposure/);
    expect(() => resolveAssetContext({ owner: "" }, {})).toThrow(/owner/);
    expect(() => resolveAssetContext({ colour: "red" }, {})).toThrow();
  });

  test("empty input gives an empty, valid BOM", () => {
    const bom = buildCryptoBom([], {});
    expect(bom.summary).toEqual({ components: 0, observations: 0, unique_snis: 0 });
    expect(v.safeParse(CryptoBomSchema, bom).success).toBe(true);
    expect(validateCdx(toCycloneDx(bom))).toBe(true);
  });
});

describe("bom: algorithm facts", () => {
  const index = indexGroups();
  test("groups: families, parts of hybrids, unknown names kept", () => {
    expect(groupFacts("x25519", index).name).toBe("X25519");
    expect(groupFacts("X25519MLKEM768", index).algorithms.map((a) => a.name)).toEqual([
      "X25519",
      "ML-KEM-768",
    ]);
    expect(groupFacts("ffdhe2048", index).bits).toBe(2048);
    expect(groupFacts("P-224", index)).toMatchObject({ name: "secp224r1", family: "ecdh", bits: 224 });
    expect(groupFacts("FutureKEM9000", index)).toMatchObject({ family: "unknown", kexClass: null });
  });
  test("cipher suites: IANA and OpenSSL spellings", () => {
    expect(cipherSuiteFacts("TLS_AES_256_GCM_SHA384")).toMatchObject({ keyExchange: null });
    expect(cipherSuiteFacts("TLS_AES_256_GCM_SHA384").bulk?.name).toBe("AES-256-GCM");
    expect(cipherSuiteFacts("TLS_AES_256_GCM_SHA384").hash?.name).toBe("SHA-384");
    const cbc = cipherSuiteFacts("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
    expect([cbc.keyExchange, cbc.bulk?.name, cbc.hash?.name]).toEqual(["ECDHE_RSA", "AES-128-CBC", "SHA-1"]);
    const ossl = cipherSuiteFacts("ECDHE-RSA-AES128-GCM-SHA256");
    expect([ossl.keyExchange, ossl.bulk?.name, ossl.hash?.name]).toEqual([
      "ECDHE_RSA",
      "AES-128-GCM",
      "SHA-256",
    ]);
    expect(cipherSuiteFacts("AES128-SHA").keyExchange).toBe("RSA");
    expect(cipherSuiteFacts("TLS_RSA_WITH_RC4_128_MD5").hash?.name).toBe("MD5");
  });
});

describe("bom: CycloneDX 1.6", () => {
  test("valid against the official 1.6 schema, sorted, refs unique and resolvable", () => {
    const cdx = toCycloneDx(buildCryptoBom(mixed(), {}));
    const ok = validateCdx(cdx);
    if (!ok) throw new Error(describeErrors(validateCdx));
    const refs = cdx.components.map((c) => c["bom-ref"]);
    expect(new Set(refs).size).toBe(refs.length);
    expect([...refs].sort()).toEqual(refs);
    for (const d of cdx.dependencies) for (const r of d.dependsOn) expect(refs).toContain(r);
    expect(JSON.stringify(toCycloneDx(buildCryptoBom(mixed(), {})))).toBe(JSON.stringify(cdx));
  });

  test("the schema check can fail: a wrong primitive is rejected", () => {
    const cdx = toCycloneDx(buildCryptoBom(mixed(), {}));
    const broken = structuredClone(cdx);
    const algo = broken.components.find((c) => c["bom-ref"] === "crypto/algorithm/X25519");
    (algo!.cryptoProperties!.algorithmProperties as { primitive: string }).primitive = "key-exchange";
    expect(validateCdx(broken)).toBe(false);
  });

  test("assets: key-agree, kem, combiner depending on its two parts, protocol per version, process", () => {
    const cdx = toCycloneDx(buildCryptoBom(mixed(), {}));
    const byRef = new Map(cdx.components.map((c) => [c["bom-ref"], c]));
    const primitive = (ref: string) =>
      (byRef.get(ref)?.cryptoProperties?.algorithmProperties as { primitive?: string } | undefined)
        ?.primitive;
    expect(primitive("crypto/algorithm/X25519")).toBe("key-agree");
    expect(primitive("crypto/algorithm/ML-KEM-768")).toBe("kem");
    expect(primitive("crypto/algorithm/X25519MLKEM768")).toBe("combiner");
    expect(primitive("crypto/algorithm/FutureKEM9000")).toBe("unknown");
    const hybridDeps = cdx.dependencies.find((d) => d.ref === "crypto/algorithm/X25519MLKEM768")?.dependsOn;
    expect(hybridDeps).toEqual(["crypto/algorithm/ML-KEM-768", "crypto/algorithm/X25519"]);
    expect(byRef.get("crypto/algorithm/ML-KEM-768")?.cryptoProperties?.oid).toBe("2.16.840.1.101.3.4.4.2");
    const tls13 = byRef.get("crypto/protocol/tls@1.3")?.cryptoProperties as {
      protocolProperties: { cipherSuites: { name: string }[] };
    };
    expect(tls13.protocolProperties.cipherSuites.map((s) => s.name)).toContain("TLS_AES_256_GCM_SHA384");
    const curl = cdx.components.find((c) => c["bom-ref"] === "process/curl");
    expect(curl?.type).toBe("application");
    expect(curl?.properties).toContainEqual({ name: "carnot:sni", value: "api.example.org=2" });
    const curlDeps = cdx.dependencies.find((d) => d.ref === "process/curl")?.dependsOn;
    expect(curlDeps).toContain("crypto/algorithm/X25519");
    expect(curlDeps).toContain("crypto/protocol/tls@1.3");
  });
});

describe("bom: command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-bom-"));

  test("writes CryptoBOM and CycloneDX files; flags become observation context", () => {
    const out = join(dir, "rt.bom.json");
    const r = runCarnot([
      "bom",
      fixture("mixed.jsonl"),
      "-o",
      out,
      "--owner",
      "web",
      "--exposure",
      "INTERNAL",
    ]);
    expect(r.code).toBe(0);
    const bom = JSON.parse(readFileSync(out, "utf8"));
    expect(bom.observations[0].owner).toBe("web");
    const cdxOut = join(dir, "rt.cdx.json");
    expect(runCarnot(["bom", fixture("mixed.jsonl"), "--format", "cyclonedx", "-o", cdxOut]).code).toBe(0);
    expect(validateCdx(JSON.parse(readFileSync(cdxOut, "utf8")))).toBe(true);
  });

  test("empty input: exit 0, empty BOM", () => {
    const r = runCarnot(["bom", fixture("empty.jsonl")]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).summary.observations).toBe(0);
  });

  test.each([
    ["not-json.jsonl", /not-json\.jsonl:2: not JSON/],
    ["bad-field.jsonl", /bad-field\.jsonl:3: not a handshake observation: field 'pid'/],
    ["missing.jsonl", /missing\.jsonl: cannot read: no such file/],
    ["not-observation.jsonl", /not-observation\.jsonl:1: not a handshake observation: field .asset_id./],
  ])("bad input %s: one line naming the file and problem, non-zero exit, no output file", (name, pattern) => {
    const out = join(dir, `${name}.out.json`);
    const r = runCarnot(["bom", fixture(name), "-o", out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
    expect(Bun.file(out).size).toBe(0);
  });

  test("bad context: refused before reading the input", () => {
    const r = runCarnot(["bom", fixture("mixed.jsonl"), "--secrecy-years", "-3"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/secrecy_lifetime_years must be ≥ 0/);
    const bad = runCarnot(["bom", fixture("mixed.jsonl"), "--format", "xml"]);
    expect(bad.code).toBe(2);
  });
});
