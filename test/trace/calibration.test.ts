/**
 * Offset calibration from scratch (a fresh cache directory): the system libssl in a child process, Debian 13's
 * OpenSSL 3.5 through its own loader, and the node executable driven under uprobes (root). Every offset the
 * BPF side reads must come out verified (unique), and the second call must come from the cache.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clientHelloState } from "../../src/trace/libssl/calibration/node.ts";
import { calibrate } from "../../src/trace/libssl/calibration/calibrate.ts";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { clientHelloOfStream } from "../../src/trace/wire/tls/hello.ts";
import { nodeBinary, openssl35 } from "../support/kex-matrix.ts";
import { traceSkipReason } from "../support/tracer.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "carnot-calibration-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

function expectAllVerified(offsets: Record<string, number | null>): void {
  for (const [name, value] of Object.entries(offsets))
    expect({ name, verified: value !== null }).toEqual({ name, verified: true });
}

describe("offset calibration", () => {
  test("the system libssl: every offset verified, its version from the library, then cached", async () => {
    const lib = findSystemLibssl()!;
    const first = await calibrate(lib, { cacheDir });
    expect(first.problem).toBeNull();
    expect(first.cached).toBe(false);
    expectAllVerified(first.calibration!.offsets);
    expect(first.calibration!.openssl).toMatch(/^OpenSSL 3\.\d+\.\d+/);
    // the library's default list as its ClientHello carries it: X25519 first on OpenSSL 3.0
    expect(first.calibration!.defaultGroups?.[0]).toBe(29);
    expect(first.calibration!.ciphers["4866"]).toBe("TLS_AES_256_GCM_SHA384");
    const second = await calibrate(lib, { cacheDir });
    expect(second.cached).toBe(true);
    expect(second.calibration!.offsets).toEqual(first.calibration!.offsets);
  }, 30_000);

  test.skipIf(openssl35() === null)(
    "OpenSSL 3.5 needing a newer glibc: calibrated through its own loader",
    async () => {
      const first = await calibrate(openssl35()!.libssl, { cacheDir });
      expect(first.problem).toBeNull();
      expectAllVerified(first.calibration!.offsets);
      expect(first.calibration!.openssl).toMatch(/^OpenSSL 3\.5\./);
      expect(first.calibration!.groupsTried).toContain(4588); // X25519MLKEM768 took part
      expect(first.calibration!.defaultGroups?.[0]).toBe(4588);
    },
    30_000,
  );

  test.skipIf(nodeBinary() === null || traceSkipReason() !== null)(
    "the node executable: driven under uprobes, its SSL objects read from its memory",
    async () => {
      const first = await calibrate(nodeBinary()!, { cacheDir });
      expect(first.problem).toBeNull();
      expectAllVerified(first.calibration!.offsets);
      expect(first.calibration!.openssl).toMatch(/^OpenSSL 3\.5\./);
      expect(first.calibration!.defaultGroups?.[0]).toBe(4588);
    },
    60_000,
  );

  test("an executable that is not Node.js gets no offsets, and says why", async () => {
    const result = await calibrate("/usr/bin/curl", { cacheDir });
    expect(result.calibration).toBeNull();
    expect(result.problem).toMatch(/not Node\.js/);
  });

  test("ClientHello supported_groups and the ClientHello state of each OpenSSL minor version", () => {
    // record + handshake header, version, random, empty session id, one suite, null compression, one extension
    const ext = [0, 10, 0, 6, 0, 4, 0x11, 0xec, 0, 29];
    const body = [3, 3, ...new Array(32).fill(0), 0, 0, 2, 0x13, 0x02, 1, 0, 0, ext.length, ...ext];
    const hello = new Uint8Array([22, 3, 1, 0, body.length + 4, 1, 0, 0, body.length, ...body]);
    expect(clientHelloOfStream(hello)?.supportedGroups).toEqual([4588, 29]);
    expect(clientHelloState("3.0.19")).toBe(12);
    expect(clientHelloState("3.5.8")).toBe(13);
    expect(clientHelloState("1.1.1w")).toBeNull();
  });
});
