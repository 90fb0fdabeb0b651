/**
 * A library whose offsets are not verified (here: a cached calibration in which nothing was unique, as for an
 * OpenSSL build carnot cannot pin down): the tracer says so once, at start, naming the library and its
 * version, and still writes each handshake — with the key exchange, version and cipher null, never guessed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CALIBRATION_FORMAT,
  calibrate,
  fileDigest,
  fileIdentity,
} from "../../src/trace/libssl/calibration/calibrate.ts";
import type { Calibration } from "../../src/trace/libssl/calibration/types.ts";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { curl, makeSelfSignedCert, type RunningServer, startNginx } from "../../src/lab/loopback.ts";
import { readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();

describe.skipIf(skip !== null)("a library carnot cannot verify", () => {
  let dir = "";
  let nginx: RunningServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-unverified-"));
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir), { workers: 1 });
  });
  afterAll(async () => {
    await nginx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("one warning naming it; lines without group, version or cipher; nothing invented", async () => {
    const lib = findSystemLibssl()!;
    const real = (await calibrate(lib, { cacheDir: join(dir, "real") })).calibration!;
    const unverified: Calibration = {
      ...real,
      offsets: Object.fromEntries(Object.keys(real.offsets).map((k) => [k, null])) as Calibration["offsets"],
    };
    const cache = join(dir, "cache");
    mkdirSync(cache);
    writeFileSync(
      join(cache, `offsets-v${CALIBRATION_FORMAT}-${fileIdentity(lib)}.json`),
      // a record of the very same bytes, as carnot writes it
      JSON.stringify({ ...unverified, libraryDigest: fileDigest(lib) }),
    );
    const out = join(dir, "out.jsonl");
    const tracer = await startTracer(["--out", out, "--metrics-interval", "0", "--source", "libssl"], {
      env: { CARNOT_CACHE_DIR: cache },
    });
    const first = await curl(nginx.port, "one.example");
    const second = await curl(nginx.port, "two.example", { groups: "P-384" });
    await Bun.sleep(200);
    const stopped = await tracer.stop();
    expect(stopped.exitCode).toBe(0);
    const warnings = stopped.stderr.split("\n").filter((l) => l.includes("warning"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /libssl\.so\.3 \(OpenSSL 3\.\d+\.\d+\).*no verified offset for version, cipher/,
    );
    const lines = readObservations(out).filter((r) => r.pid === first.pid || r.pid === second.pid);
    expect(lines.map((l) => [l.sni, l.handshake_success, l.role])).toEqual([
      ["one.example", true, "client"],
      ["two.example", true, "client"],
    ]);
    for (const l of lines) {
      expect([l.negotiated_group, l.negotiated_group_id, l.kex_class, l.tls_version, l.cipher]).toEqual([
        null,
        null,
        null,
        null,
        null,
      ]);
    }
    expect(lines[1]!.groups_offered).toEqual(["secp384r1"]);
  }, 60_000);
});
