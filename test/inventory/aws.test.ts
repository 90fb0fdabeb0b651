/**
 * `carnot inventory aws` through the real AWS SDK against a local server that speaks the KMS and ACM JSON 1.1
 * protocols and checks every SigV4 signature (test/support/aws-server.ts): pagination, throttling retried by
 * the SDK, a region that denies access, wrong credentials, profiles; then merge and policy on the output.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Asset, type CryptoBom, buildCryptoBom } from "../../src/bom/cryptobom.ts";
import { parseRuntimeJsonl, readCryptoBom } from "../../src/bom/read.ts";
import { type FakeAws, type FakeAwsOptions, startFakeAws } from "../support/aws-server.ts";
import { FIXTURES, REPO } from "../bom/cli-run.ts";

const ACCESS_KEY = "AKIDCARNOTTEST000001";
const SECRET = "carnot/test+secret/0123456789abcdefABCDEF";
const DAY = 86_400;
const NOW = Math.floor(Date.now() / 1000);

/** Without throttling: the adaptive strategy slows every later call down after one. */
function calmWorld(): FakeAwsOptions {
  const w = world();
  for (const r of Object.values(w.regions)) delete r.throttle;
  return w;
}

function world(): FakeAwsOptions {
  return {
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET,
    pageSize: 2,
    regions: {
      "eu-west-1": {
        keys: [
          {
            keyId: "k-rsa2048",
            keySpec: "RSA_2048",
            keyUsage: "SIGN_VERIFY",
            aliases: ["alias/legacy-signing"],
          },
          {
            keyId: "k-p256",
            keySpec: "ECC_NIST_P256",
            keyUsage: "SIGN_VERIFY",
            tags: { Owner: "payments", "data-class": "cardholder", exposure: "public-internet", team: "x" },
          },
          {
            keyId: "k-aes",
            keySpec: "SYMMETRIC_DEFAULT",
            keyUsage: "ENCRYPT_DECRYPT",
            rotation: { enabled: true, periodDays: 180 },
            aliases: ["alias/data", "alias/backup"],
            tags: { owner: "data", secrecy_lifetime_years: "25", exposure: "dmz" },
          },
          {
            keyId: "k-aws",
            keySpec: "SYMMETRIC_DEFAULT",
            keyUsage: "ENCRYPT_DECRYPT",
            keyManager: "AWS",
            aliases: ["alias/aws/s3"],
            rotation: { enabled: true },
          },
          { keyId: "k-mldsa", keySpec: "ML_DSA_65", keyUsage: "SIGN_VERIFY", tags: { owner: "pq" } },
        ],
        certificates: [
          {
            id: "c-ec",
            domainName: "api.example.org",
            sans: ["api.example.org", "www.example.org"],
            keyAlgorithm: "EC-prime256v1",
            signatureAlgorithm: "SHA256WITHECDSA",
            notBefore: NOW - 10 * DAY,
            notAfter: NOW + 80 * DAY,
            inUseBy: ["arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/1"],
            tags: { owner: "web" },
          },
          {
            id: "c-rsa-sha1",
            domainName: "old.example.org",
            keyAlgorithm: "RSA-2048",
            signatureAlgorithm: "SHA1WITHRSA",
            notBefore: NOW - 400 * DAY,
            notAfter: NOW + 5 * DAY,
            type: "IMPORTED",
          },
          {
            id: "c-rsa4096",
            domainName: "vault.example.org",
            keyAlgorithm: "RSA-4096",
            signatureAlgorithm: "SHA384WITHRSA",
            notBefore: NOW - DAY,
            notAfter: NOW + 300 * DAY,
          },
        ],
        throttle: { "kms:ListKeys": 2, "acm:DescribeCertificate": 1 },
      },
      "us-east-1": {
        denied: true,
        keys: [{ keyId: "k-hidden", keySpec: "RSA_2048", keyUsage: "SIGN_VERIFY" }],
      },
    },
  };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "carnot-inventory-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The SDK finds credentials here and only here: no real config, no instance metadata service. */
function awsEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("AWS_")) env[k] = v;
  return {
    ...env,
    NO_COLOR: "1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: join(dir, "no-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, "no-credentials"),
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET,
    ...extra,
  };
}

/** Runs carnot without blocking this process: the server it talks to lives here. */
async function carnot(args: string[], env: Record<string, string>, binary?: string) {
  const cmd = binary ? [binary, ...args] : ["bun", join(REPO, "src/cli.ts"), ...args];
  const p = Bun.spawn(cmd, { cwd: dir, env, stdout: "pipe", stderr: "pipe", timeout: 90_000 });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}

const assetById = (bom: CryptoBom, suffix: string): Asset => {
  const a = bom.assets?.find((x) => x.asset_id.endsWith(suffix));
  if (!a) throw new Error(`no asset ${suffix}`);
  return a;
};

describe("carnot inventory aws against a local KMS/ACM endpoint", () => {
  let server: FakeAws;
  let out: string;
  let run: Awaited<ReturnType<typeof carnot>>;
  let bom: CryptoBom;

  beforeAll(async () => {
    server = startFakeAws(world());
    out = join(dir, "cloud.cryptobom.json");
    run = await carnot(
      [
        "inventory",
        "aws",
        "--region",
        "eu-west-1",
        "--region=us-east-1",
        "--endpoint-url",
        server.url,
        "--owner",
        "platform",
        "--secrecy-years",
        "10",
        "--exposure",
        "INTERNAL",
        "-o",
        out,
      ],
      awsEnv(),
    );
    if (run.code === 0) bom = await readCryptoBom(out);
  });
  afterAll(() => server.stop());

  test("reads every key and certificate of the region it may read, across pages, into a valid CryptoBOM", async () => {
    expect(run.stderr).not.toContain("    at ");
    expect(run.code).toBe(0);
    const ids = bom.assets!.map((a) => a.asset_id);
    expect(ids).toEqual([
      "arn:aws:acm:eu-west-1:111122223333:certificate/c-ec",
      "arn:aws:acm:eu-west-1:111122223333:certificate/c-rsa-sha1",
      "arn:aws:acm:eu-west-1:111122223333:certificate/c-rsa4096",
      "arn:aws:kms:eu-west-1:111122223333:key/k-aes",
      "arn:aws:kms:eu-west-1:111122223333:key/k-aws",
      "arn:aws:kms:eu-west-1:111122223333:key/k-mldsa",
      "arn:aws:kms:eu-west-1:111122223333:key/k-p256",
      "arn:aws:kms:eu-west-1:111122223333:key/k-rsa2048",
    ]);
    expect(bom.observations).toEqual([]);
    expect(bom.inventory).toMatchObject({
      provider: "aws",
      regions: ["eu-west-1", "us-east-1"],
      keys: 5,
      certificates: 3,
    });
    // 5 keys at 2 a page: 3 pages of ListKeys, each asked with the previous page's marker
    const ok = (op: string) =>
      server.calls.filter((c) => c.operation === op && c.status === 200 && c.region === "eu-west-1");
    expect(ok("ListKeys").length).toBe(3);
    expect(ok("ListAliases").length).toBe(2);
    expect(ok("ListCertificates").length).toBe(2);
  });

  test("KMS keys: spec, usage, origin, rotation, tags and aliases", async () => {
    const rsa = assetById(bom, "key/k-rsa2048");
    expect(rsa).toMatchObject({
      kind: "key",
      source: "cloud.aws.kms",
      name: "alias/legacy-signing",
      algorithm: "RSA",
      key_size: 2048,
      spec: "RSA_2048",
      usage: ["SIGN_VERIFY"],
      origin: "AWS_KMS",
      managed_by: "customer",
      state: "Enabled",
      rotation_enabled: null,
      tags: {},
      region: "eu-west-1",
    });
    const aes = assetById(bom, "key/k-aes");
    expect(aes).toMatchObject({
      algorithm: "AES-256-GCM",
      key_size: 256,
      rotation_enabled: true,
      rotation_period_days: 180,
      aliases: ["alias/backup", "alias/data"],
      owner: "data",
      secrecy_lifetime_years: 25,
    });
    expect(assetById(bom, "key/k-aws").managed_by).toBe("provider");
    expect(assetById(bom, "key/k-mldsa")).toMatchObject({ algorithm: "ML-DSA-65", key_size: null });
    expect(assetById(bom, "key/k-p256")).toMatchObject({
      algorithm: "EC P-256",
      key_size: 256,
      owner: "payments",
      data_class: "cardholder",
      exposure: "PUBLIC_INTERNET",
    });
  });

  test("ACM certificates: every key type listed, key size, signature hash, domains, expiry, in-use-by", async () => {
    const ec = assetById(bom, "certificate/c-ec");
    expect(ec).toMatchObject({
      kind: "certificate",
      source: "cloud.aws.acm",
      name: "api.example.org",
      domains: ["api.example.org", "www.example.org"],
      algorithm: "EC P-256",
      key_size: 256,
      hash: "SHA-256",
      signature_algorithm: "SHA256WITHECDSA",
      in_use_by: ["arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/1"],
      not_after: new Date((NOW + 80 * DAY) * 1000).toISOString(),
    });
    expect(assetById(bom, "certificate/c-rsa-sha1")).toMatchObject({
      key_size: 2048,
      hash: "SHA-1",
      origin: "IMPORTED",
    });
    expect(assetById(bom, "certificate/c-rsa4096")).toMatchObject({ algorithm: "RSA", key_size: 4096 });
  });

  test("untagged resources take the defaults given, and say so; tags win; a bad tag value is named", async () => {
    const rsa = assetById(bom, "key/k-rsa2048");
    expect(rsa).toMatchObject({
      owner: "platform",
      secrecy_lifetime_years: 10,
      exposure: "INTERNAL",
      data_class: null,
    });
    expect(rsa.assumptions).toEqual([
      'owner: no tag; default "platform" used',
      "secrecy_lifetime_years: no tag; default 10 used",
      'exposure: no tag; default "INTERNAL" used',
    ]);
    const aes = assetById(bom, "key/k-aes");
    expect(aes.exposure).toBe("INTERNAL");
    expect(aes.assumptions).toEqual([
      'exposure: tag exposure="dmz" is not one of PUBLIC_INTERNET, EXTERNAL_B2B, INTERNAL; default "INTERNAL" used',
    ]);
    expect(bom.inventory?.defaults).toEqual({
      owner: "platform",
      secrecy_lifetime_years: 10,
      exposure: "INTERNAL",
    });
  });

  test("throttling is retried by the SDK's strategy, with the attempt counted in each request", async () => {
    const listKeys = server.calls.filter((c) => c.operation === "ListKeys" && c.region === "eu-west-1");
    expect(listKeys.slice(0, 3).map((c) => [c.error, c.attempt])).toEqual([
      ["ThrottlingException", "attempt=1; max=8"],
      ["ThrottlingException", "attempt=2; max=8"],
      [null, "attempt=3; max=8"],
    ]);
    const describeCert = server.calls.filter((c) => c.operation === "DescribeCertificate");
    expect(describeCert.filter((c) => c.error === "ThrottlingException").length).toBe(1);
    expect(bom.inventory!.errors.filter((e) => e.region === "eu-west-1")).toEqual([]);
  });

  test("a region that denies access is listed in the output and on stderr, the rest is written", async () => {
    expect(bom.inventory!.errors.map((e) => [e.region, e.service, e.operation, e.error])).toEqual([
      ["us-east-1", "kms", "ListKeys", "AccessDeniedException"],
      ["us-east-1", "acm", "ListCertificates", "AccessDeniedException"],
    ]);
    expect(run.stderr).toContain(
      "not read: us-east-1 kms ListKeys: AccessDeniedException: User: arn:aws:iam::",
    );
    expect(bom.assets!.some((a) => a.asset_id.includes("k-hidden"))).toBe(false);
  });

  test("the output merges with a runtime BOM and feeds rsa_min_key_size, untagged_cloud_key and legacy hashes", async () => {
    const runtime = buildCryptoBom(
      parseRuntimeJsonl("mixed.jsonl", readFileSync(join(FIXTURES, "mixed.jsonl"), "utf8")).records,
      {},
    );
    const runtimePath = join(dir, "runtime.bom.json");
    writeFileSync(runtimePath, JSON.stringify(runtime));
    const merged = join(dir, "merged.json");
    expect((await carnot(["merge", runtimePath, out, "-o", merged], awsEnv())).code).toBe(0);
    const policy = await carnot(["policy", merged], awsEnv());
    expect(policy.code).toBe(0);
    const findings = JSON.parse(policy.stdout).findings as { rule_id: string; subject: { ref: string } }[];
    const refs = (rule: string) =>
      findings
        .filter((f) => f.rule_id === rule)
        .map((f) => f.subject.ref.replace(/^.*[/]/, ""))
        .sort();
    expect(refs("rsa_min_key_size")).toEqual(["c-rsa-sha1", "k-rsa2048"]);
    // the AWS managed key cannot be tagged by the account: not a finding
    expect(refs("untagged_cloud_key")).toEqual(["k-rsa2048"]);
    expect(refs("legacy_hash_function")).toContain("c-rsa-sha1");
  });
});

describe("carnot inventory aws: credentials, strictness, bad input", () => {
  let server: FakeAws;
  beforeAll(() => {
    server = startFakeAws(calmWorld());
  });
  afterAll(() => server.stop());

  test("a wrong secret key: the server's InvalidSignatureException in one line, exit 1, nothing written", async () => {
    const out = join(dir, "wrong.json");
    const r = await carnot(
      ["inventory", "aws", "--region", "eu-west-1", "--endpoint-url", server.url, "-o", out],
      awsEnv({ AWS_SECRET_ACCESS_KEY: `${SECRET}x` }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^carnot: inventory aws: nothing could be read: eu-west-1 kms ListKeys: InvalidSignatureException: The request signature we calculated does not match/,
    );
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  test("--profile: credentials and region from the shared files, the SDK's usual way", async () => {
    const creds = join(dir, "credentials");
    const config = join(dir, "config");
    writeFileSync(creds, `[audit]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET}\n`);
    writeFileSync(config, "[profile audit]\nregion = eu-west-1\n");
    const env = awsEnv({ AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: config });
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const r = await carnot(["inventory", "aws", "--profile", "audit", "--endpoint-url", server.url], env);
    expect(r.stderr).not.toContain("    at ");
    expect(r.code).toBe(0);
    const bom = JSON.parse(r.stdout) as CryptoBom;
    expect(bom.inventory?.regions).toEqual(["eu-west-1"]);
    expect(bom.assets?.length).toBe(8);
  });

  test("no credentials anywhere: one line naming the SDK's error", async () => {
    const env = awsEnv();
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const r = await carnot(["inventory", "aws", "--region", "eu-west-1", "--endpoint-url", server.url], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^carnot: inventory aws: nothing could be read: eu-west-1 kms ListKeys: CredentialsProviderError/,
    );
    expect(r.stdout).toBe("");
  });

  test("--strict: a denied region fails the run and nothing is written", async () => {
    const out = join(dir, "strict.json");
    const r = await carnot(
      [
        "inventory",
        "aws",
        "--region",
        "eu-west-1,us-east-1",
        "--endpoint-url",
        server.url,
        "--strict",
        "-o",
        out,
      ],
      awsEnv(),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "2 error(s) with --strict, nothing written; first: us-east-1 kms ListKeys: AccessDeniedException",
    );
    expect(existsSync(out)).toBe(false);
  });

  test("throttled past --max-attempts: the error is recorded after exactly that many attempts", async () => {
    const throttled = startFakeAws({
      ...world(),
      regions: { "eu-west-1": { keys: [], throttle: { "kms:ListKeys": 100 } } },
    });
    try {
      const r = await carnot(
        [
          "inventory",
          "aws",
          "--region",
          "eu-west-1",
          "--endpoint-url",
          throttled.url,
          "--max-attempts",
          "3",
          "--retry-mode",
          "standard",
        ],
        awsEnv(),
      );
      expect(r.code).toBe(0);
      const bom = JSON.parse(r.stdout) as CryptoBom;
      expect(bom.inventory?.errors.map((e) => [e.service, e.operation, e.error])).toEqual([
        ["kms", "ListKeys", "ThrottlingException"],
      ]);
      expect(throttled.calls.filter((c) => c.operation === "ListKeys").map((c) => c.attempt)).toEqual([
        "attempt=1; max=3",
        "attempt=2; max=3",
        "attempt=3; max=3",
      ]);
    } finally {
      await throttled.stop();
    }
  });

  test.each([
    [["--region", "eu-west-1;rm"], "--region: 'eu-west-1;rm' is not an AWS region name"],
    [
      ["--region", "eu-west-1", "--max-attempts", "0"],
      "--max-attempts must be a whole number from 1 to 20, not '0'",
    ],
    [
      ["--region", "eu-west-1", "--retry-mode", "legacy"],
      "--retry-mode must be standard or adaptive, not 'legacy'",
    ],
    [["--region", "eu-west-1", "--endpoint-url", "file:///etc/passwd"], "must be an http:// or https:// URL"],
    [["--region", "eu-west-1", "--exposure", "moon"], "exposure must be one of PUBLIC_INTERNET"],
  ])("bad input %p: one line, exit 2", async (extra, message) => {
    const r = await carnot(["inventory", "aws", ...extra], awsEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split("\n").length).toBe(1);
  });
});

describe("the compiled binary", () => {
  const binary = join(REPO, "carnot");
  test.skipIf(!existsSync(binary))(
    "carries the SDK: --help and a real inventory run from ./carnot",
    async () => {
      const help = await carnot(["inventory", "aws", "--help"], awsEnv(), binary);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("USAGE carnot inventory aws");
      const server = startFakeAws(calmWorld());
      try {
        const r = await carnot(
          ["inventory", "aws", "--region", "eu-west-1", "--endpoint-url", server.url],
          awsEnv(),
          binary,
        );
        expect(r.stderr).not.toContain("    at ");
        expect(r.code).toBe(0);
        expect((JSON.parse(r.stdout) as CryptoBom).assets?.length).toBe(8);
      } finally {
        await server.stop();
      }
    },
  );
});
