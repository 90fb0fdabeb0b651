/**
 * The tracer's cache directory is hostile input: a symlink planted as the allowlist never makes root write
 * through it; a calibration record planted where another user could write it, or owned by another user (one
 * the test creates and removes), is ignored and calibrated again, so the records carry the library's real
 * cipher names and default groups; an empty or corrupt record is calibrated again instead of stopping the trace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { curl, makeSelfSignedCert, type RunningServer, startOpenSslServer } from "../../src/lab/loopback.ts";
import { tracerEngineEnv } from "../../src/trace/engine.ts";
import { CALIBRATION_FORMAT, calibrate, fileIdentity } from "../../src/trace/libssl/calibration/calibrate.ts";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";
import { createTestUser, type TestUser } from "../support/users.ts";

const dir = mkdtempSync(join(tmpdir(), "carnot-cache-"));
const user = createTestUser();
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (typeof user !== "string") user.remove();
});
if (typeof user === "string") console.warn(`skipping the foreign-owner cache cases: ${user}`);

const lib = findSystemLibssl()!;
const recordName = () => `offsets-v${CALIBRATION_FORMAT}-${fileIdentity(lib)}.json`;

/** A fresh cache directory (0700, root's) under the test's directory. */
function cacheDir(name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { mode: 0o700 });
  return path;
}

describe("the engine's allowlist in the cache directory", () => {
  const target = join(dir, "precious.txt");
  const cases: [string, (d: string) => void][] = [
    ["root's own directory", () => {}],
    ["a group-writable directory", (d) => chmodSync(d, 0o770)],
    ...(typeof user === "string"
      ? []
      : ([["a directory another user owns", (d) => chownSync(d, user.uid, user.gid)]] as [
          string,
          (d: string) => void,
        ][])),
  ];
  for (const [i, [label, prepare]] of cases.entries()) {
    test(`a symlink planted as ftl-allowlist in ${label}: its target is not written`, () => {
      writeFileSync(target, "precious\n");
      const d = cacheDir(`allowlist-${i}`);
      symlinkSync(target, join(d, "ftl-allowlist"));
      prepare(d);
      expect(tracerEngineEnv(d)).toEqual({ BUN_JSC_useFTLJIT: "0" });
      expect(readFileSync(target, "utf8")).toBe("precious\n");
    });
  }
});

describe("calibration records in the cache directory", () => {
  test("an empty or corrupt record is calibrated again, and replaced", async () => {
    for (const [i, content] of ["", '{"library":', "\u0000\u0001 not json"].entries()) {
      const d = cacheDir(`corrupt-${i}`);
      writeFileSync(join(d, recordName()), content, { mode: 0o600 });
      const result = await calibrate(lib, { cacheDir: d });
      expect({ content, problem: result.problem, cached: result.cached }).toEqual({
        content,
        problem: null,
        cached: false,
      });
      expect((await calibrate(lib, { cacheDir: d })).cached).toBe(true);
    }
  }, 60_000);
});

const skip = traceSkipReason();
if (skip) console.warn(`skipping the traced cache cases: ${skip}`);

describe.skipIf(skip !== null)("carnot trace with a hostile cache directory", () => {
  let server: RunningServer;
  /** the real record, as carnot wrote it, and a forged copy (cipher names and default groups) */
  let real: Record<string, unknown>;
  let forged = "";
  beforeAll(async () => {
    server = await startOpenSslServer(await makeSelfSignedCert(dir));
    const scratch = cacheDir("scratch");
    await calibrate(lib, { cacheDir: scratch });
    const [file] = readdirSync(scratch).filter((f) => f.startsWith("offsets-"));
    real = JSON.parse(readFileSync(join(scratch, file!), "utf8"));
    const ciphers = Object.fromEntries(
      Object.keys(real.ciphers as Record<string, string>).map((code) => [code, "TLS_FORGED_CIPHER"]),
    );
    forged = JSON.stringify({ ...real, ciphers, defaultGroups: [4588] });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  /**
   * One curl handshake under a tracer using `cache`; its record, and the tracer's stderr. The libssl source
   * alone: what is checked is what the cached record says (the wire would show the ClientHello's own groups).
   */
  async function traceOneHandshake(cache: string, name: string) {
    const out = join(dir, `${name}.jsonl`);
    const args = ["-o", out, "--comm", "curl", "--metrics-interval", "0", "--source", "libssl"];
    const tracer = await startTracer(args, {
      env: { CARNOT_CACHE_DIR: cache },
    });
    const client = await curl(server.port, `${name}.example`);
    await Bun.sleep(200);
    const stopped = await tracer.stop();
    expect(stopped.exitCode).toBe(0);
    const mine = readObservations(out).filter((r) => r.pid === client.pid);
    expect(mine).toHaveLength(1);
    return { record: mine[0]!, stderr: stopped.stderr };
  }

  const realCipher = () => (real.ciphers as Record<string, string>)["4866"] ?? "none";

  test("a forged record in a group-writable directory is ignored, and said so once", async () => {
    const d = cacheDir("group-writable");
    writeFileSync(join(d, recordName()), forged, { mode: 0o600 });
    chmodSync(d, 0o770);
    const { record, stderr } = await traceOneHandshake(d, "group-writable");
    expect(record.cipher).toBe(realCipher());
    expect(record.cipher).not.toBe("TLS_FORGED_CIPHER");
    expect(record.groups_offered[0]).toBe("X25519");
    expect(record.groups_source).toBe("library-default");
    const warnings = stderr.split("\n").filter((l) => l.includes("cache directory"));
    expect(warnings).toEqual([
      `carnot: warning: cache directory not used: ${d} is writable by group (mode 0770)`,
    ]);
    // nothing was written into it either
    expect(JSON.parse(readFileSync(join(d, recordName()), "utf8")).ciphers["4866"]).toBe("TLS_FORGED_CIPHER");
  }, 60_000);

  test.skipIf(typeof user === "string")(
    "a forged record owned by another user is ignored and replaced by root's own",
    async () => {
      const d = cacheDir("foreign-file");
      const path = join(d, recordName());
      writeFileSync(path, forged, { mode: 0o600 });
      chownSync(path, (user as TestUser).uid, (user as TestUser).gid);
      const { record } = await traceOneHandshake(d, "foreign-file");
      expect(record.cipher).toBe(realCipher());
      expect(record.groups_offered[0]).toBe("X25519");
      expect(statSync(path).uid).toBe(0);
      expect(JSON.parse(readFileSync(path, "utf8")).ciphers["4866"]).toBe(realCipher());
    },
    60_000,
  );

  test("an empty record does not stop the trace: it is calibrated again", async () => {
    const d = cacheDir("empty");
    writeFileSync(join(d, recordName()), "", { mode: 0o600 });
    const { record } = await traceOneHandshake(d, "empty");
    expect(record.cipher).toBe(realCipher());
  }, 60_000);
});
