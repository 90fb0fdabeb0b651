/**
 * Fleet-wide BOM on files made from real trace records (test/support/fleet.ts): many hosts' runtime.jsonl by a
 * pattern, the document that lists its observations and the one that counts components instead, and every
 * later stage (policy, HNDL, risk, attestation metrics, CycloneDX, merge) giving the same figures from both.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type Attestation, buildAttestation } from "../../src/attest/attestation.ts";
import type { HndlParameters } from "../../src/attest/hndl.ts";
import { buildCryptoBom, type CryptoBom, CryptoBomSchema } from "../../src/bom/cryptobom.ts";
import { toCycloneDx } from "../../src/bom/cyclonedx.ts";
import { buildFleetBom } from "../../src/bom/fleet-pool.ts";
import { formatJson, parseCryptoBom, parseRuntimeJsonl } from "../../src/bom/read.ts";
import { expandInputs } from "../../src/io/input-files.ts";
import { mergeBoms } from "../../src/merge/merge.ts";
import { evaluatePolicy, type PolicyResult } from "../../src/policy/rules.ts";
import { DEMO_RECORDS, writeFleet } from "../support/fleet.ts";
import { runCarnot } from "./cli-run.ts";
import { compileCycloneDx16, describeErrors } from "./cyclonedx-schema.ts";

const HOSTS = 6;
const PER_HOST = 360;
const validateCdx = compileCycloneDx16();
const params: HndlParameters = { crqcYear: 2035, crqcSource: "test", migrationYears: 5, asOfYear: 2026 };

let dir = "";
let pattern = "";
const read = (path: string) => JSON.parse(readFileSync(path, "utf8"));

/** Records around a new year whose own secrecy (4 years) is exposed in 2027 and not in 2026 (z = 9 vs 8). */
function newYearRecords(): string {
  const [first] = readFileSync(DEMO_RECORDS, "utf8").split("\n");
  const base = { ...JSON.parse(first!), secrecy_lifetime_years: 4, host: "host-newyear", machine_id: null };
  const at = (time: string, hash: string) => JSON.stringify({ ...base, time, raw_hash: hash.repeat(64) });
  return `${at("2026-12-31T23:59:59.999999Z", "d")}\n${at("2027-01-01T00:00:00.000001Z", "e")}\n`;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "carnot-fleet-"));
  await writeFleet(dir, { hosts: HOSTS, perHost: PER_HOST });
  mkdirSync(join(dir, "hosts", "host-newyear"));
  writeFileSync(join(dir, "hosts", "host-newyear", "runtime.jsonl"), newYearRecords());
  pattern = join(dir, "hosts/*/runtime.jsonl");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOTAL = HOSTS * PER_HOST + 2;

describe("bom over many files", () => {
  test("a pattern: one document naming every file read, its counts adding up, components per host and container", () => {
    const out = join(dir, "listed.bom.json");
    const r = runCarnot(["bom", pattern, "-o", out]);
    expect(r.code).toBe(0);
    const bom: CryptoBom = read(out);
    expect(v.safeParse(CryptoBomSchema, bom).success).toBe(true);
    expect(bom.fleet?.inputs.map((i) => [i.file.slice(dir.length + 1), i.records])).toEqual([
      ...Array.from({ length: HOSTS }, (_, h) => [
        `hosts/host-${String(h).padStart(4, "0")}/runtime.jsonl`,
        PER_HOST,
      ]),
      ["hosts/host-newyear/runtime.jsonl", 2],
    ]);
    expect(bom.fleet).toMatchObject({ observations_listed: true, hosts: HOSTS + 1, containers: HOSTS });
    expect(bom.summary.observations).toBe(TOTAL);
    expect(bom.observations).toHaveLength(TOTAL);
    expect(bom.metrics.components.reduce((n, c) => n + c.count, 0)).toBe(TOTAL);
    // a component per host: the same endpoint on two hosts is two components
    const curl = bom.metrics.components.filter((c) => c.process === "curl" && c.sni?.startsWith("svc-"));
    expect(new Set(curl.map((c) => c.host)).size).toBe(HOSTS);
    expect(r.stderr).toContain(`bom: ${TOTAL} observations from ${HOSTS + 1} files → ${out}`);
  });

  test("past --max-observations: no observations, components carry every field and point at a real line", () => {
    const out = join(dir, "fleet.bom.json");
    const r = runCarnot(["bom", pattern, "--max-observations", "1000", "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`more than --max-observations 1000`);
    const bom: CryptoBom = read(out);
    expect(v.safeParse(CryptoBomSchema, bom).success).toBe(true);
    expect(bom.observations).toEqual([]);
    expect(bom.fleet).toMatchObject({ observations_listed: false, max_observations: 1000 });
    expect(bom.summary.observations).toBe(TOTAL);
    for (const c of bom.metrics.components) {
      const { file, line, bom_ref } = c.first_record!;
      const record = JSON.parse(readFileSync(file!, "utf8").split("\n")[line! - 1]!);
      expect(`obs-${record.raw_hash.slice(0, 24)}`).toBe(bom_ref);
      expect([record.host, record.container_id ?? null, record.comm]).toEqual([
        c.host,
        c.container_id,
        c.process,
      ]);
      expect(record.groups_offered).toEqual(c.groups_offered);
    }
    // a component never spans two years: the new year's two records are two components
    const newYear = bom.metrics.components.filter((c) => c.host === "host-newyear");
    expect(newYear.map((c) => [c.first_seen?.slice(0, 4), c.count])).toEqual([
      ["2026", 1],
      ["2027", 1],
    ]);
    const cdx = toCycloneDx(bom);
    if (!validateCdx(cdx)) throw new Error(describeErrors(validateCdx));
    // read back as it was written; a component that does not say all it stands for is refused
    expect(parseCryptoBom(out, readFileSync(out, "utf8"))).toEqual(bom);
    const { groups_offered: _g, ...short } = bom.metrics.components[3]!;
    const cut = {
      ...bom,
      metrics: { ...bom.metrics, components: [...bom.metrics.components.slice(0, 3), short] },
    };
    expect(() => parseCryptoBom("cut.json", JSON.stringify(cut))).toThrow(
      /cut\.json: invalid CryptoBOM: it lists no observations, and component 3 \(cmp-[0-9a-f]+\) has no 'groups_offered'/,
    );
  });

  test("several threads give the same bytes as one", () => {
    for (const max of ["0", "100000"]) {
      const one = join(dir, `jobs1-${max}.json`);
      const three = join(dir, `jobs3-${max}.json`);
      expect(runCarnot(["bom", pattern, "--jobs", "1", "--max-observations", max, "-o", one]).code).toBe(0);
      expect(runCarnot(["bom", pattern, "--jobs", "3", "--max-observations", max, "-o", three]).code).toBe(0);
      expect(readFileSync(three, "utf8")).toBe(readFileSync(one, "utf8"));
    }
  });

  test("one file gives the document it always gave", () => {
    const r = runCarnot(["bom", DEMO_RECORDS]);
    expect(r.code).toBe(0);
    const records = parseRuntimeJsonl("demo.jsonl", readFileSync(DEMO_RECORDS, "utf8")).records;
    expect(r.stdout).toBe(formatJson(buildCryptoBom(records, {})));
    expect(JSON.parse(r.stdout).fleet).toBeUndefined();
  });

  test("a bad line in the middle of a fleet: one line naming the first bad file and line, nothing written", () => {
    const broken = join(dir, "broken");
    for (const [host, line] of [
      ["host-0002", 17],
      ["host-0004", 3],
    ] as const) {
      mkdirSync(join(broken, host), { recursive: true });
      const lines = readFileSync(join(dir, "hosts", host, "runtime.jsonl"), "utf8").split("\n");
      lines[line - 1] = lines[line - 1]!.replace('"pid":', '"pid":"x",');
      writeFileSync(join(broken, host, "runtime.jsonl"), lines.join("\n"));
    }
    for (const h of [0, 1, 3, 5]) {
      const host = `host-000${h}`;
      mkdirSync(join(broken, host), { recursive: true });
      writeFileSync(
        join(broken, host, "runtime.jsonl"),
        readFileSync(join(dir, "hosts", host, "runtime.jsonl")),
      );
    }
    const out = join(dir, "broken.json");
    const r = runCarnot(["bom", join(broken, "*/runtime.jsonl"), "--jobs", "3", "-o", out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`${join(broken, "host-0002/runtime.jsonl")}:17: not JSON`);
    expect(Bun.file(out).size).toBe(0);
  });
});

/** What a policy result says, without the refs (records are observations in one form, components in the other). */
const policyFigures = (p: PolicyResult) => ({
  summary: p.summary,
  rules: p.rules,
  findings: p.findings.map((f) => [
    f.rule_id,
    f.subject.process,
    f.subject.sni,
    f.subject.detail,
    f.count,
    f.message,
  ]),
});

const attestationFigures = (a: Attestation) => ({
  metrics: a.metrics,
  hndl: { ...a.hndl, exposed_records: a.hndl.exposed_records.length > 0 },
  sankey: a.sankey,
  risk: a.risk.assets.map(({ worst_record: _w, ...r }) => r),
});

describe("every stage counts the fleet form as it counts the listed one", () => {
  let listed: CryptoBom;
  let counted: CryptoBom;
  beforeAll(async () => {
    const files = expandInputs([pattern]);
    const context = { exposure: "EXTERNAL_B2B" as const, secrecy_lifetime_years: 6 };
    listed = await buildFleetBom(files, { context, maxObservations: Number.POSITIVE_INFINITY, jobs: 1 });
    counted = await buildFleetBom(files, { context, maxObservations: 0, jobs: 2 });
  });

  test("the two forms", () => {
    expect(listed.observations).toHaveLength(TOTAL);
    expect(counted.observations).toHaveLength(0);
    expect(counted.summary).toEqual({ ...listed.summary, components: counted.metrics.components.length });
    expect(counted.metrics.sni_counts).toEqual(listed.metrics.sni_counts);
  });

  test("policy: the same findings with the same counts; a finding says on how many hosts", () => {
    const a = evaluatePolicy(listed, { input: "x", enforce: false });
    const b = evaluatePolicy(counted, { input: "x", enforce: false });
    expect(policyFigures(b)).toEqual(policyFigures(a));
    expect(a.summary.findings).toBeGreaterThan(0);
    // neighbouring hosts share a server name: curl's findings for it name both
    expect(a.findings.filter((f) => / handshakes on 2 hosts\)$/.test(f.message)).length).toBeGreaterThan(0);
    // the fleet form names components, fewer than the observations they stand for
    const refs = new Set(counted.metrics.components.map((c) => c.bom_ref));
    for (const f of b.findings) for (const r of f.records) expect(refs.has(r)).toBe(true);
  });

  test("attestation: metrics, HNDL (a record of 2027 exposed, its twin of 2026 not), Sankey and risk", () => {
    const attest = (bom: CryptoBom) =>
      buildAttestation({
        bom,
        file: "x",
        sha256: "0",
        policy: evaluatePolicy(bom, { input: "x", enforce: false }),
        policySource: "t",
        parameters: params,
      });
    const a = attest(listed);
    const b = attest(counted);
    expect(attestationFigures(b)).toEqual(attestationFigures(a));
    expect(a.metrics.observations).toBe(TOTAL);
    expect(a.hndl.classical_short).toBe(1);
  });

  test("CycloneDX: the same components and dependencies, both valid against the 1.6 schema", () => {
    const a = toCycloneDx(listed);
    const b = toCycloneDx(counted);
    for (const doc of [a, b]) if (!validateCdx(doc)) throw new Error(describeErrors(validateCdx));
    expect(b.components).toEqual(a.components);
    expect(b.dependencies).toEqual(a.dependencies);
    const curl = a.components.find((c) => c["bom-ref"] === "process/curl");
    expect(curl?.properties?.filter((p) => p.name === "carnot:host")).toHaveLength(HOSTS + 1);
  });
});

describe("fleet documents through merge, policy and attest", () => {
  const half = (name: string, hosts: string) => {
    const out = join(dir, name);
    const r = runCarnot([
      "bom",
      join(dir, `hosts/host-000[${hosts}]/runtime.jsonl`),
      "--max-observations",
      "0",
      "-o",
      out,
    ]);
    expect(r.code).toBe(0);
    return out;
  };

  test("merging halves gives the whole; the same document twice is counted once", () => {
    const a = half("a.bom.json", "0-2");
    const b = half("b.bom.json", "3-5");
    const whole = join(dir, "whole.bom.json");
    expect(
      runCarnot(["bom", join(dir, "hosts/host-000?/runtime.jsonl"), "--max-observations", "0", "-o", whole])
        .code,
    ).toBe(0);
    const merged = mergeBoms([
      { file: a, bom: read(a) },
      { file: b, bom: read(b) },
      { file: a, bom: read(a) },
    ]);
    expect(merged.metrics.components).toEqual(read(whole).metrics.components);
    expect(merged.merge?.duplicates_removed).toBe(3 * PER_HOST);
    expect(merged.summary.observations).toBe(HOSTS * PER_HOST);
    expect(v.safeParse(CryptoBomSchema, merged).success).toBe(true);
  });

  test("an inventory's service matched by SNI gives the components their context; rules see it", () => {
    const inventory = join(dir, "inventory.cryptobom.json");
    const asset = {
      asset_id: "svc-fleet",
      kind: "service",
      source: "static.inventory",
      domains: ["*.fleet.example"],
      owner: "platform",
      secrecy_lifetime_years: 25,
      exposure: "PUBLIC_INTERNET",
    };
    const doc = { ...buildCryptoBom([], {}), run_id: "inventory", assets: [asset] };
    writeFileSync(inventory, formatJson(doc));
    const merged = mergeBoms([
      { file: "a", bom: read(join(dir, "a.bom.json")) },
      { file: inventory, bom: parseCryptoBom(inventory, readFileSync(inventory, "utf8")) },
    ]);
    const named = merged.metrics.components.filter((c) => c.sni?.endsWith(".fleet.example"));
    expect(named.length).toBeGreaterThan(0);
    for (const c of named)
      expect([c.asset_id, c.owner, c.secrecy_lifetime_years]).toEqual(["svc-fleet", "platform", 25]);
    expect(merged.merge?.matched_by_domain).toBe(named.reduce((n, c) => n + c.count, 0));
    const risk = buildAttestation({
      bom: merged,
      file: "m",
      sha256: "0",
      policy: evaluatePolicy(merged, { input: "m", enforce: false }),
      policySource: "t",
      parameters: params,
    }).risk.assets.find((r) => r.asset === "svc-fleet");
    expect(risk).toMatchObject({ exposure: "PUBLIC_INTERNET", secrecy_lifetime_years: 25 });
  });

  test("listed documents merged past --max-observations are counted into the same components", () => {
    const boms = join(dir, "listed-boms");
    mkdirSync(boms);
    for (const h of ["0000", "0001"]) {
      const out = join(boms, `${h}.bom.json`);
      expect(runCarnot(["bom", join(dir, `hosts/host-${h}/runtime.jsonl`), "-o", out]).code).toBe(0);
      expect(read(out).observations).toHaveLength(PER_HOST);
    }
    const merged = join(dir, "merged-listed.json");
    const r = runCarnot(["merge", join(boms, "*.bom.json"), "--max-observations", "500", "-o", merged]);
    expect(r.code).toBe(0);
    const direct = join(dir, "direct.json");
    runCarnot([
      "bom",
      join(dir, "hosts/host-000[01]/runtime.jsonl"),
      "--max-observations",
      "0",
      "-o",
      direct,
    ]);
    const strip = (bom: CryptoBom) => bom.metrics.components.map(({ first_record: _f, ...c }) => c);
    expect(read(merged).fleet.observations_listed).toBe(false);
    expect(strip(read(merged))).toEqual(strip(read(direct)));
  });

  test("policy and attest over several BOMs: the merged document's verdict; the subject lists each file", () => {
    const a = join(dir, "a.bom.json");
    const b = join(dir, "b.bom.json");
    const merged = join(dir, "ab.json");
    expect(runCarnot(["merge", a, b, "-o", merged]).code).toBe(0);
    const many = runCarnot(["policy", join(dir, "[ab].bom.json")]);
    const one = runCarnot(["policy", merged]);
    expect(many.code).toBe(0);
    const [pm, po] = [JSON.parse(many.stdout), JSON.parse(one.stdout)];
    expect(pm.run_id).toBe(po.run_id);
    expect(pm.findings).toEqual(po.findings);
    expect(pm.input).toBe(join(dir, "[ab].bom.json"));

    const sarif = runCarnot(["policy", a, b, "--format", "sarif"]);
    expect(sarif.code).toBe(2);
    expect(sarif.stderr.trim()).toMatch(/^carnot: --format sarif points at lines of one BOM file/);

    const prefix = join(dir, "fleet-attestation");
    expect(runCarnot(["attest", a, b, "-o", prefix]).code).toBe(0);
    const att: Attestation = read(`${prefix}.json`);
    const sums = Bun.spawnSync(["sh", "-c", 'sha256sum "$1" "$2"', "sh", a, b]).stdout.toString();
    expect(att.subject.inputs).toEqual(
      sums
        .trim()
        .split("\n")
        .map((l) => ({ sha256: l.slice(0, 64), file: l.slice(66) }))
        .map(({ file, sha256 }) => ({ file, sha256 })),
    );
    const digest = Bun.spawnSync([
      "sh",
      "-c",
      'sha256sum "$1" "$2" | sha256sum',
      "sh",
      a,
      b,
    ]).stdout.toString();
    expect(att.subject.sha256).toBe(digest.slice(0, 64));
    expect(att.subject.run_id).toBe(po.run_id);
    expect(att.metrics.observations).toBe(HOSTS * PER_HOST);
  });
});
