/**
 * `carnot serve` as a user runs it: a real process on loopback, real HTTP clients (curl, fetch), the HTML
 * answer rendered by headless Chromium under the Content-Security-Policy the server sends.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type Attestation, AttestationSchema } from "../../src/attest/attestation.ts";
import { verifyAttestation } from "../../src/attest/sign.ts";
import { buildCryptoBom, type CryptoBom } from "../../src/bom/cryptobom.ts";
import { toCycloneDx } from "../../src/bom/cyclonedx.ts";
import { formatJson, parseRuntimeJsonl, readCryptoBom } from "../../src/bom/read.ts";
import { mergeBoms } from "../../src/merge/merge.ts";
import { FIXTURES, REPO } from "../bom/cli-run.ts";
import { CHROMIUM, dumpDom } from "../support/chromium.ts";

const sha256 = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");

let dir: string;
let merged: CryptoBom;
let mergedText: string;

/** A running `carnot serve`: its URL from the one line it prints, stopped by SIGTERM. */
async function startServe(args: string[]) {
  const proc = Bun.spawn(["bun", join(REPO, "src/cli.ts"), "serve", ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stderr.getReader();
  let err = "";
  const deadline = Date.now() + 20_000;
  while (!/listening on (\S+)\n/.test(err) && Date.now() < deadline) {
    const { done, value } = await reader.read();
    if (done) break;
    err += new TextDecoder().decode(value);
  }
  const url = /listening on (\S+)\n/.exec(err)?.[1];
  if (!url) throw new Error(`carnot serve did not start: ${err}`);
  const rest = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return err;
      err += new TextDecoder().decode(value);
    }
  })();
  return { proc, url, stderr: () => rest };
}

function curl(args: string[]) {
  const p = Bun.spawnSync(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  const out = p.stdout.toString();
  const cut = out.lastIndexOf("\n");
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut), stderr: p.stderr.toString() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "carnot-serve-"));
  const runtime = buildCryptoBom(
    parseRuntimeJsonl("mixed.jsonl", readFileSync(join(FIXTURES, "mixed.jsonl"), "utf8")).records,
    { secrecy_lifetime_years: 15, exposure: "INTERNAL" },
  );
  merged = mergeBoms([
    { file: "runtime.bom.json", bom: runtime },
    { file: "static.json", bom: await readCryptoBom(join(FIXTURES, "static.cryptobom.json")) },
    { file: "cloud.json", bom: await readCryptoBom(join(FIXTURES, "cloud.cryptobom.json")) },
  ]);
  mergedText = formatJson(merged);
  writeFileSync(join(dir, "merged.json"), mergedText);
  const keygen = Bun.spawnSync([
    "openssl",
    "genpkey",
    "-algorithm",
    "ed25519",
    "-out",
    join(dir, "ed25519.pem"),
  ]);
  expect(keygen.exitCode).toBe(0);
  Bun.spawnSync([
    "openssl",
    "pkey",
    "-in",
    join(dir, "ed25519.pem"),
    "-pubout",
    "-out",
    join(dir, "ed25519.pub.pem"),
  ]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("carnot serve", () => {
  let server: Awaited<ReturnType<typeof startServe>>;
  beforeAll(async () => {
    server = await startServe([
      "--addr",
      "127.0.0.1:0",
      "--key",
      join(dir, "ed25519.pem"),
      "--max-body",
      "256KiB",
    ]);
  });
  afterAll(() => server.proc.kill("SIGTERM"));

  const json = ["-H", "Content-Type: application/json"];

  test("GET /healthz: ok, the version and the signing key's id", () => {
    const r = curl([`${server.url}/healthz`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({
      status: "ok",
      version: expect.any(String),
      signing: expect.stringMatching(/^ed25519:/),
    });
  });

  test("POST /attest: the signed attestation; its Markdown and HTML answers are the files it signed", () => {
    const body = ["--data-binary", `@${join(dir, "merged.json")}`];
    const r = curl([...json, ...body, `${server.url}/attest`]);
    expect(r.status).toBe(200);
    const a = v.parse(AttestationSchema, JSON.parse(r.body)) as Attestation;
    expect(a.subject).toEqual({ file: "request body", sha256: sha256(mergedText), run_id: merged.run_id });
    expect(a.metrics.assets).toBe(merged.assets!.length);
    const md = curl([...json, ...body, "-H", "Accept: text/markdown", `${server.url}/attest`]);
    const html = curl([...json, ...body, "-H", "Accept: text/html", `${server.url}/attest`]);
    expect(md.status).toBe(200);
    expect(html.status).toBe(200);
    const pub = readFileSync(join(dir, "ed25519.pub.pem"), "utf8");
    const outcome = verifyAttestation(
      a,
      { "attestation.md": sha256(md.body), "attestation.html": sha256(html.body) },
      pub,
    );
    expect(outcome).toEqual({ ok: true, keyId: a.signature!.key_id });
    // a tampered page does not verify
    expect(
      verifyAttestation(
        a,
        { "attestation.md": sha256(md.body), "attestation.html": sha256(`${html.body} `) },
        pub,
      ).ok,
    ).toBe(false);
  });

  test("query parameters set the HNDL parameters; bad or unknown ones are a 400", () => {
    const body = ["--data-binary", `@${join(dir, "merged.json")}`];
    const r = curl([...json, ...body, `${server.url}/attest?crqc_year=2040&migration_years=3&as_of=2026`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).parameters).toMatchObject({
      crqc_year: 2040,
      migration_years: 3,
      as_of_year: 2026,
      crqc_year_source: "set with crqc_year",
    });
    const bad = curl([...json, ...body, `${server.url}/attest?crqc_year=soon`]);
    expect([bad.status, JSON.parse(bad.body)]).toEqual([
      400,
      { error: "crqc_year must be a whole number from 2000 to 2200, not 'soon'" },
    ]);
    const unknown = curl([...json, ...body, `${server.url}/attest?crqc=2040`]);
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).error).toContain("unknown query parameter crqc");
  });

  test.skipIf(!CHROMIUM)(
    "the HTML answer renders in headless Chromium under the CSP the server sends",
    () => {
      const p = Bun.spawnSync(
        [
          "curl",
          "-sS",
          "-D",
          join(dir, "headers.txt"),
          "-o",
          join(dir, "served.html"),
          ...json,
          "-H",
          "Accept: text/html",
          "--data-binary",
          `@${join(dir, "merged.json")}`,
          `${server.url}/attest`,
        ],
        { stderr: "pipe" },
      );
      expect(p.exitCode).toBe(0);
      const headers = readFileSync(join(dir, "headers.txt"), "utf8");
      const csp = /^content-security-policy: (.*)\r$/im.exec(headers)?.[1];
      expect(csp).toContain("default-src 'none'");
      const html = readFileSync(join(dir, "served.html"), "utf8");
      // the page under the server's policy (as a meta element: a file:// page has no headers)
      const page = join(dir, "served-csp.html");
      writeFileSync(
        page,
        html.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="${csp}">`),
      );
      const dom = dumpDom(page);
      expect(dom).toContain('data-rendered="ok"');
      const a = JSON.parse(
        curl([...json, "--data-binary", `@${join(dir, "merged.json")}`, `${server.url}/attest`]).body,
      ) as Attestation;
      expect(dom).toContain(`data-metric="metrics.observations">${a.metrics.observations}<`);
      expect(dom).toContain(`data-metric="metrics.hndl_exposed">${a.metrics.hndl_exposed}<`);
    },
  );

  test("POST /policy: JSON, SARIF or text by Accept", () => {
    const body = [...json, "--data-binary", `@${join(dir, "merged.json")}`];
    const r = curl([...body, `${server.url}/policy?enforce=true`]);
    expect(r.status).toBe(200);
    const result = JSON.parse(r.body);
    expect(result).toMatchObject({
      schema: "carnot.policy.v1",
      run_id: merged.run_id,
      enforce: true,
      status: "violations",
    });
    const sarif = curl([...body, "-H", "Accept: application/sarif+json", `${server.url}/policy`]);
    expect(JSON.parse(sarif.body).version).toBe("2.1.0");
    expect(JSON.parse(sarif.body).runs[0].results.length).toBe(result.findings.length);
    const text = curl([...body, "-H", "Accept: text/plain", `${server.url}/policy`]);
    expect(text.body).toContain("rsa_min_key_size");
  });

  test("a CycloneDX 1.6 CBOM: its keys and certificates are assets the rules read", () => {
    const cdx = {
      bomFormat: "CycloneDX",
      specVersion: "1.6",
      serialNumber: "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
      version: 1,
      components: [
        {
          type: "cryptographic-asset",
          "bom-ref": "alg/rsa-2048",
          name: "RSA-2048",
          cryptoProperties: { assetType: "algorithm", algorithmProperties: { primitive: "pke" } },
        },
        {
          type: "cryptographic-asset",
          "bom-ref": "alg/sha1rsa",
          name: "sha1WithRSAEncryption",
          cryptoProperties: { assetType: "algorithm", algorithmProperties: { primitive: "signature" } },
        },
        {
          type: "cryptographic-asset",
          "bom-ref": "key/web",
          name: "web public key",
          cryptoProperties: {
            assetType: "related-crypto-material",
            relatedCryptoMaterialProperties: { type: "public-key", algorithmRef: "alg/rsa-2048", size: 2048 },
          },
        },
        {
          type: "cryptographic-asset",
          "bom-ref": "cert/web",
          name: "web certificate",
          cryptoProperties: {
            assetType: "certificate",
            certificateProperties: {
              subjectName: "CN=web.example.org",
              notValidAfter: "2027-01-01T00:00:00Z",
              signatureAlgorithmRef: "alg/sha1rsa",
              subjectPublicKeyRef: "key/web",
            },
          },
        },
      ],
    };
    writeFileSync(join(dir, "static.cdx.json"), JSON.stringify(cdx));
    const r = curl([...json, "--data-binary", `@${join(dir, "static.cdx.json")}`, `${server.url}/policy`]);
    expect(r.status).toBe(200);
    const findings = JSON.parse(r.body).findings.map(
      (f: { rule_id: string; subject: { ref: string } }) => `${f.rule_id} ${f.subject.ref}`,
    );
    expect(findings.sort()).toEqual([
      "legacy_hash_function cert/web",
      "rsa_min_key_size cert/web",
      "rsa_min_key_size key/web",
    ]);
    // carnot's own CycloneDX output: read, no handshakes in it to attest
    writeFileSync(join(dir, "runtime.cdx.json"), JSON.stringify(toCycloneDx(merged)));
    const own = curl([...json, "--data-binary", `@${join(dir, "runtime.cdx.json")}`, `${server.url}/attest`]);
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body).metrics.observations).toBe(0);
  });

  test.each([
    ["not JSON", ["--data-binary", "{oops"], 400, "request body: not valid JSON"],
    ["not a BOM", ["--data-binary", '{"schema":"x"}'], 400, "request body: not a CryptoBOM: schema is 'x'"],
    ["an empty body", ["--data-binary", ""], 400, "request body: empty file"],
    ["not UTF-8", ["--data-binary", "@latin1.json"], 400, "request body: not UTF-8 text"],
  ])("POST /attest with %s: 400 and one line", (_what, data, status, message) => {
    writeFileSync(join(dir, "latin1.json"), Buffer.from('{"schema":"caf\xe9"}', "latin1"));
    const r = curl([...json, ...(data as string[]), `${server.url}/attest`]);
    expect(r.status).toBe(status as number);
    expect(r.body.trim().split("\n").length).toBe(1);
    expect(JSON.parse(r.body).error).toContain(message as string);
  });

  test("the wrong method, path, media type or Accept: 405 with Allow, 404, 415, 406", () => {
    const get = Bun.spawnSync(["curl", "-sS", "-i", `${server.url}/attest`], {
      stdout: "pipe",
    }).stdout.toString();
    expect(get).toMatch(/^HTTP\/1.1 405/);
    expect(get).toMatch(/^allow: POST\r$/im);
    expect(curl([`${server.url}/metrics`]).status).toBe(404);
    const form = curl(["--data-binary", `@${join(dir, "merged.json")}`, `${server.url}/attest`]);
    expect([form.status, JSON.parse(form.body).error]).toEqual([
      415,
      "Content-Type application/x-www-form-urlencoded is not JSON: send the document as application/json (curl: -H 'Content-Type: application/json')",
    ]);
    const png = curl([
      ...json,
      "-H",
      "Accept: image/png",
      "--data-binary",
      `@${join(dir, "merged.json")}`,
      `${server.url}/attest`,
    ]);
    expect(png.status).toBe(406);
  });

  test("a body over the limit is refused by its Content-Length before it is sent, or as it streams", async () => {
    const big = join(dir, "big.json");
    writeFileSync(big, `{"schema":"${"x".repeat(300 * 1024)}"}`);
    const declared = curl([...json, "--data-binary", `@${big}`, `${server.url}/attest`]);
    expect([declared.status, JSON.parse(declared.body).error]).toEqual([
      413,
      "request body larger than the limit of 262144 bytes",
    ]);
    const chunked = curl([
      ...json,
      "-H",
      "Transfer-Encoding: chunked",
      "--data-binary",
      `@${big}`,
      `${server.url}/policy`,
    ]);
    expect(chunked.status).toBe(413);
    // a client announcing 1 GB, then sending one byte: its 413 comes at once, and /healthz is not held up
    const t0 = performance.now();
    const answered = Promise.withResolvers<string>();
    let got = "";
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: Number(new URL(server.url).port),
      socket: {
        data(_s, chunk) {
          got += chunk.toString();
          if (got.includes("\r\n\r\n")) answered.resolve(got);
        },
        close() {
          answered.resolve(got);
        },
      },
    });
    sock.write(
      "POST /attest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{",
    );
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await answered.promise).toMatch(/^HTTP\/1.1 413/);
    sock.end();
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  test("concurrent requests: each answer is its own document's, nothing carried between them", async () => {
    const variants = Array.from({ length: 8 }, (_, i) => {
      const bom = structuredClone(merged);
      bom.assets = bom.assets!.slice(0, i + 1);
      return formatJson(bom);
    });
    const answers = await Promise.all(
      Array.from({ length: 48 }, async (_, n) => {
        const text = variants[n % variants.length]!;
        const res = await fetch(`${server.url}/attest`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
        });
        return { text, status: res.status, body: (await res.json()) as Attestation };
      }),
    );
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.subject.sha256).toBe(sha256(a.text));
      expect(a.body.metrics.assets).toBe((JSON.parse(a.text) as CryptoBom).assets!.length);
    }
  });

  test("a document over 256 KiB is answered in a worker thread, the same as inline", async () => {
    const s = await startServe(["--addr", "127.0.0.1:0", "--key", join(dir, "ed25519.pem"), "--verbose"]);
    try {
      const records = parseRuntimeJsonl(
        "mixed.jsonl",
        readFileSync(join(FIXTURES, "mixed.jsonl"), "utf8"),
      ).records;
      const many = Array.from({ length: 120 }, (_, i) =>
        records.map((r) => ({ ...r, raw_hash: undefined, pid: i })),
      ).flat();
      const large = formatJson(buildCryptoBom(many, { secrecy_lifetime_years: 15 }));
      expect(large.length).toBeGreaterThan(256 * 1024);
      const res = await fetch(`${s.url}/attest`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: large,
      });
      expect(res.status).toBe(200);
      const a = (await res.json()) as Attestation;
      expect(a.subject.sha256).toBe(sha256(large));
      expect(a.metrics.observations).toBe(many.length);
      expect(a.signature?.algorithm).toBe("Ed25519");
      const health = await fetch(`${s.url}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      s.proc.kill("SIGTERM");
      await s.proc.exited;
    }
    expect(await s.stderr()).toContain("serve: /attest answered in a worker thread");
  });

  test("SIGTERM: stops, exit 0", async () => {
    const s = await startServe(["--addr", "127.0.0.1:0"]);
    s.proc.kill("SIGTERM");
    expect(await s.proc.exited).toBe(0);
    expect(await s.stderr()).toContain("carnot serve: stopped");
  });
});

describe("carnot serve: bad flags", () => {
  const run = (args: string[]) => {
    const p = Bun.spawnSync(["bun", join(REPO, "src/cli.ts"), "serve", ...args], {
      env: { ...process.env, NO_COLOR: "1" },
      stderr: "pipe",
      timeout: 20_000,
    });
    return { code: p.exitCode, stderr: p.stderr.toString() };
  };
  test.each([
    [["--addr", "localhost"], 2, "--addr must be HOST:PORT"],
    [["--addr", "127.0.0.1:0", "--max-body", "lots"], 2, "--max-body must be a size"],
    [["--addr", "127.0.0.1:0", "--key", "/nonexistent.pem"], 2, "/nonexistent.pem: cannot read signing key"],
  ])("%p: one line, exit %p", (args, code, message) => {
    const r = run(args as string[]);
    expect(r.code).toBe(code as number);
    expect(r.stderr).toContain(message as string);
    expect(r.stderr.trim().split("\n").length).toBe(1);
  });

  test("an address in use: one line, exit 1", async () => {
    const holder = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    try {
      const p = Bun.spawn(["bun", join(REPO, "src/cli.ts"), "serve", "--addr", `127.0.0.1:${holder.port}`], {
        env: { ...process.env, NO_COLOR: "1" },
        stderr: "pipe",
      });
      const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      expect(code).toBe(1);
      expect(stderr).toMatch(new RegExp(`^carnot: cannot listen on 127.0.0.1:${holder.port}: `));
    } finally {
      holder.stop(true);
    }
  });
});
