/**
 * `make release` as a maintainer runs it, then the bundle as a user gets it: copied into an empty directory,
 * every hash and the minisign signature checked (and a tampered copy refused), the tarball unpacked, and
 * `./carnot --version` and `./carnot demo` run from it with nothing of the source tree around.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { REPO } from "../bom/cli-run.ts";
import { compileCycloneDx16, describeErrors } from "../bom/cyclonedx-schema.ts";

const MINISIGN = Bun.which("minisign");
const version = pkg.version;
const name = `carnot-${version}-linux-x86_64`;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

let dir: string;
let dist: string;
let keys: string;
let make: { code: number | null; out: string };

function run(
  cmd: string[],
  cwd: string,
  env: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
) {
  const p = Bun.spawnSync(cmd, { cwd, env, stdout: "pipe", stderr: "pipe", timeout: 240_000 });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "carnot-release-"));
  dist = join(dir, "dist");
  keys = join(dir, "keys");
  if (!MINISIGN) return;
  const p = Bun.spawnSync(
    [
      "make",
      "--no-print-directory",
      "release",
      `DIST=${dist}`,
      `RELEASE_KEY=${keys}/release.key`,
      `RELEASE_PUB=${keys}/release.pub`,
    ],
    { cwd: REPO, stdout: "pipe", stderr: "pipe", timeout: 600_000 },
  );
  make = { code: p.exitCode, out: p.stdout.toString() + p.stderr.toString() };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!MINISIGN)("make release", () => {
  let clean: string;
  beforeAll(() => {
    // a user's empty directory with what was published, and the public key they got separately
    clean = join(dir, "download");
    mkdirSync(clean);
    for (const f of readdirSync(dist))
      if (f !== "carnot-release.pub") copyFileSync(join(dist, f), join(clean, f));
  });

  test("writes the executable, tarball, SBOM, release notes, SHA256SUMS and its signature", () => {
    expect(make.code).toBe(0);
    expect(readdirSync(dist).sort()).toEqual(
      [
        name,
        `${name}.tar.gz`,
        `carnot-${version}.cdx.json`,
        `RELEASE-NOTES-${version}.md`,
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "carnot-release.pub",
      ].sort(),
    );
    const sums = readFileSync(join(dist, "SHA256SUMS"), "utf8").trim().split("\n");
    expect(sums.map((l) => l.split(/\s+/)[1]).sort()).toEqual(
      [name, `${name}.tar.gz`, `carnot-${version}.cdx.json`, `RELEASE-NOTES-${version}.md`].sort(),
    );
  });

  test("every hash and the signature check out in a clean directory; a changed byte or list is refused", () => {
    const sums = run(["sha256sum", "-c", "SHA256SUMS"], clean);
    expect(sums.code).toBe(0);
    expect(
      sums.stdout
        .trim()
        .split("\n")
        .every((l) => l.endsWith(": OK")),
    ).toBe(true);
    const pub = join(keys, "release.pub");
    const sig = run(["minisign", "-V", "-p", pub, "-m", "SHA256SUMS"], clean);
    expect(sig.code).toBe(0);
    expect(sig.stdout).toContain("Trusted comment: carnot");

    const tampered = join(dir, "tampered");
    mkdirSync(tampered);
    for (const f of readdirSync(clean)) copyFileSync(join(clean, f), join(tampered, f));
    const notes = join(tampered, `RELEASE-NOTES-${version}.md`);
    writeFileSync(notes, `${readFileSync(notes, "utf8")} `);
    expect(run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], tampered).code).not.toBe(0);
    // recomputing the list to match does not help: the signature is over the list
    const list = readFileSync(join(tampered, "SHA256SUMS"), "utf8").replace(
      /^[0-9a-f]{64}(\s+RELEASE-NOTES)/m,
      `${sha256(notes)}$1`,
    );
    writeFileSync(join(tampered, "SHA256SUMS"), list);
    expect(run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], tampered).code).toBe(0);
    expect(run(["minisign", "-V", "-p", pub, "-m", "SHA256SUMS"], tampered).code).not.toBe(0);
  });

  test("the SBOM is valid CycloneDX 1.6 and lists what the executable carries, with the lock's hashes", () => {
    const sbom = JSON.parse(readFileSync(join(clean, `carnot-${version}.cdx.json`), "utf8")) as {
      components: { name: string; hashes?: unknown }[];
      metadata: { component: unknown };
    };
    const validate = compileCycloneDx16();
    if (!validate(sbom)) throw new Error(describeErrors(validate));
    const names = sbom.components.map((c) => c.name);
    for (const dep of Object.keys(pkg.dependencies)) expect(names).toContain(dep);
    expect(names).toContain("bun");
    expect(names).toContain("@smithy/core");
    // dev tools are not inside the executable
    expect(names).not.toContain("typescript");
    const lock = Bun.JSONC.parse(readFileSync(join(REPO, "bun.lock"), "utf8")) as {
      packages: Record<string, unknown[]>;
    };
    const integrity = lock.packages["@aws-sdk/client-kms"]![3] as string;
    const kms = sbom.components.find((c) => c.name === "@aws-sdk/client-kms");
    expect(kms?.hashes).toEqual([
      { alg: "SHA-512", content: Buffer.from(integrity.slice(7), "base64").toString("hex") },
    ]);
    expect(sbom.metadata.component).toMatchObject({ name: "carnot", version });
  });

  test("the release notes are generated from every WORKLOG entry", () => {
    const notes = readFileSync(join(clean, `RELEASE-NOTES-${version}.md`), "utf8");
    const titles = [
      ...readFileSync(join(REPO, "WORKLOG.md"), "utf8").matchAll(/^## \d{4}-\d{2}-\d{2} — (.+)$/gm),
    ].map((m) => m[1]!);
    expect(titles.length).toBeGreaterThan(10);
    for (const t of titles) expect(notes).toContain(`**${t}**`);
    expect(notes).toContain("minisign -Vm SHA256SUMS");
  });

  test("unpacked in a clean directory: the binary is the one listed, --version runs with nothing else around", () => {
    const unpack = join(dir, "unpack");
    mkdirSync(unpack);
    expect(run(["tar", "xzf", join(clean, `${name}.tar.gz`)], unpack).code).toBe(0);
    const home = join(unpack, name);
    expect(readdirSync(home).sort()).toEqual(
      ["README.md", `RELEASE-NOTES-${version}.md`, "carnot", `carnot-${version}.cdx.json`].sort(),
    );
    expect(sha256(join(home, "carnot"))).toBe(sha256(join(clean, name)));
    const v = run(["./carnot", "--version"], home);
    expect([v.code, v.stdout]).toEqual([0, `${version}\n`]);
    const help = run(["./carnot", "inventory", "aws", "--help"], home);
    expect(help.code).toBe(0);
  });

  const notRoot = process.getuid?.() !== 0;
  test.skipIf(notRoot)(
    "./carnot demo runs from the unpacked bundle (root: it traces real handshakes)",
    () => {
      const home = join(dir, "unpack", name);
      const tmp = join(dir, "demo-tmp");
      mkdirSync(tmp);
      const demo = run(["./carnot", "demo"], home, {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        TMPDIR: tmp,
        HOME: tmp,
      });
      expect(demo.stderr).not.toContain("    at ");
      expect(demo.code).toBe(0);
      expect(demo.stdout).toMatch(/key exchange of \d+ successful handshakes/);
      expect(demo.stdout).toContain("attestation.html");
    },
  );
  if (notRoot) console.log("skip: ./carnot demo from the bundle needs root (eBPF)");
});
if (!MINISIGN)
  console.log("skip: make release needs minisign (Debian package minisign; make setup installs it)");
