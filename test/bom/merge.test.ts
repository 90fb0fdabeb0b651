import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { buildCryptoBom, CryptoBomSchema } from "../../src/bom/cryptobom.ts";
import { parseRuntimeJsonl, readCryptoBom } from "../../src/bom/read.ts";
import { assetForSni, matchDomain, mergeBoms } from "../../src/merge/merge.ts";
import { FIXTURES, runCarnot } from "./cli-run.ts";

const fixture = (name: string) => join(FIXTURES, name);
const runtimeBom = (context = {}) =>
  buildCryptoBom(
    parseRuntimeJsonl("mixed.jsonl", readFileSync(fixture("mixed.jsonl"), "utf8")).records,
    context,
  );

describe("merge: identity rules", () => {
  test.each([
    ["api.example.org", "api.example.org", "exact"],
    ["API.Example.org.", "api.example.org", "exact"],
    ["api.example.org", "*.example.org", "wildcard"],
    ["a.b.example.org", "*.example.org", null],
    ["example.org", "*.example.org", null],
    ["api.example.org", "example.org", "suffix"],
    ["badexample.org", "example.org", null],
    ["example.org.evil.net", "example.org", null],
  ])("%s vs %s → %s", (sni, pattern, expected) => {
    expect(matchDomain(sni, pattern)).toBe(expected as ReturnType<typeof matchDomain>);
  });

  test("the most specific asset wins; equal matches are ambiguous", () => {
    const assets = [
      { asset_id: "suffix", kind: "domain" as const, source: "t", domains: ["example.org"] },
      { asset_id: "wild", kind: "service" as const, source: "t", domains: ["*.example.org"] },
      { asset_id: "exact", kind: "service" as const, source: "t", domains: ["api.example.org"] },
      { asset_id: "key", kind: "key" as const, source: "t", domains: ["api.example.org"] },
    ];
    expect(assetForSni("api.example.org", assets).asset?.asset_id).toBe("exact");
    expect(assetForSni("www.example.org", assets).asset?.asset_id).toBe("wild");
    expect(assetForSni("a.www.example.org", assets).asset?.asset_id).toBe("suffix");
    expect(assetForSni("example.net", assets).asset).toBeNull();
    const twin = [
      ...assets,
      { asset_id: "exact2", kind: "service" as const, source: "t", domains: ["api.example.org"] },
    ];
    expect(
      assetForSni("api.example.org", twin)
        .ambiguous.map((a) => a.asset_id)
        .sort(),
    ).toEqual(["exact", "exact2"]);
  });
});

describe("merge: documents", () => {
  test("runtime + static + cloud: dedup, assets kept, context from identity, conflicts reported", async () => {
    const runtime = runtimeBom();
    const stat = await readCryptoBom(fixture("static.cryptobom.json"));
    const cloud = await readCryptoBom(fixture("cloud.cryptobom.json"));
    const merged = mergeBoms([
      { file: "runtime.bom.json", bom: runtime },
      { file: "static.json", bom: stat },
      { file: "cloud.json", bom: cloud },
      { file: "runtime-again.bom.json", bom: runtimeBom() },
    ]);
    expect(v.safeParse(CryptoBomSchema, merged).success).toBe(true);
    expect(merged.summary.observations).toBe(runtime.observations.length + stat.observations.length);
    expect(merged.merge?.duplicates_removed).toBe(runtime.observations.length);
    // the cloud assets are not lost
    expect(merged.assets?.map((a) => a.asset_id)).toEqual([
      "cert-api-example-org",
      "dom-example-org",
      "kms-key-0001",
      "kms-key-0002",
      "svc-payments-api",
    ]);
    const svc = merged.assets?.find((a) => a.asset_id === "svc-payments-api");
    expect(svc?.domains).toEqual(["*.pay.example.org", "api.example.org", "payments-lb.example.org"]);
    expect(svc?.source).toBe("static.inventory,cloud.load-balancer");
    const api = merged.observations.filter((o) => o.sni === "api.example.org");
    for (const o of api)
      expect(o).toMatchObject({
        asset_id: "svc-payments-api",
        owner: "payments",
        secrecy_lifetime_years: 50,
      });
    const pq = merged.observations.find((o) => o.sni === "pq.example.org");
    expect(pq).toMatchObject({ asset_id: "dom-example-org", exposure: "EXTERNAL_B2B" });
    expect(merged.observations.find((o) => o.sni === null)?.asset_id).toBeNull();
    expect(merged.merge?.conflicts).toContainEqual({
      kind: "asset",
      ref: "svc-payments-api",
      field: "owner",
      values: [
        { file: "static.json", value: "payments" },
        { file: "cloud.json", value: "payments-platform" },
      ],
      resolution: "kept the value from static.json",
    });
    expect(merged.merge?.inputs.map((i) => i.file)).toEqual([
      "runtime.bom.json",
      "static.json",
      "cloud.json",
      "runtime-again.bom.json",
    ]);
  });

  test("the same observation with different context is one record and a reported conflict", () => {
    const a = runtimeBom({ owner: "web" });
    const b = runtimeBom({ owner: "payments" });
    const merged = mergeBoms([
      { file: "a.json", bom: a },
      { file: "b.json", bom: b },
    ]);
    expect(merged.summary.observations).toBe(a.observations.length);
    const ownerConflicts = merged.merge?.conflicts.filter(
      (c) => c.kind === "observation" && c.field === "owner",
    );
    expect(ownerConflicts).toHaveLength(a.observations.length);
    expect(merged.observations.every((o) => o.owner === "web")).toBe(true);
  });

  test("an observation's own context is kept against an asset's, and the disagreement reported", () => {
    const merged = mergeBoms([
      { file: "rt.json", bom: runtimeBom({ owner: "web" }) },
      {
        file: "static.json",
        bom: {
          ...runtimeBom(),
          observations: [],
          assets: [
            {
              asset_id: "svc",
              kind: "service",
              source: "static",
              domains: ["api.example.org"],
              owner: "payments",
            },
          ],
        },
      },
    ]);
    const api = merged.observations.filter((o) => o.sni === "api.example.org");
    expect(api.every((o) => o.owner === "web" && o.asset_id === "svc")).toBe(true);
    expect(merged.merge?.conflicts.filter((c) => c.kind === "identity" && c.field === "owner")).toHaveLength(
      api.length,
    );
  });

  test("merging is stable", () => {
    const inputs = [{ file: "rt.json", bom: runtimeBom() }];
    expect(JSON.stringify(mergeBoms(inputs))).toBe(JSON.stringify(mergeBoms(inputs)));
  });
});

describe("merge: command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-merge-"));
  const rt = join(dir, "rt.bom.json");

  test("merges files into one BOM that policy-ready stages can read back", async () => {
    expect(runCarnot(["bom", fixture("mixed.jsonl"), "-o", rt]).code).toBe(0);
    const out = join(dir, "merged.json");
    const r = runCarnot([
      "merge",
      rt,
      fixture("static.cryptobom.json"),
      fixture("cloud.cryptobom.json"),
      "-o",
      out,
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("conflict: asset svc-payments-api owner");
    const merged = await readCryptoBom(out);
    expect(merged.merge?.inputs).toHaveLength(3);
    expect(merged.assets).toHaveLength(5);
  });

  test.each([
    ["missing.json", "", /missing\.json: cannot read: no such file/],
    ["garbage.json", "{not json", /garbage\.json: not valid JSON/],
    [
      "runtime.jsonl",
      readFileSync(fixture("mixed.jsonl"), "utf8"),
      /runtime\.jsonl: is handshake JSONL, not a BOM/,
    ],
    ["cdx.json", '{"bomFormat":"CycloneDX","specVersion":"1.6"}', /cdx\.json: is a CycloneDX document/],
    [
      "other.json",
      '{"schema":"something.else"}',
      /other\.json: not a CryptoBOM: schema is 'something\.else'/,
    ],
    ["broken.json", '{"schema":"carnot.v2.1.cryptobom","run_id":"x"}', /broken\.json: invalid CryptoBOM: /],
  ])("bad input %s: the whole merge fails naming it, no output", (name, content, pattern) => {
    const path = join(dir, name);
    if (content) writeFileSync(path, content);
    const out = join(dir, `out-${name}`);
    const r = runCarnot(["merge", rt, path, "-o", out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
    expect(Bun.file(out).size).toBe(0);
  });
});
