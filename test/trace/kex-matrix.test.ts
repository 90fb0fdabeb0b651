/**
 * Issue 4's matrix, as root: group, kex_class, version and cipher of real handshakes (OpenSSL 3.0 system
 * clients and servers, explicit and implicit handshakes, HelloRetryRequest, TLS 1.2, ffdhe2048, nginx; Debian
 * 13's OpenSSL 3.5 through its own loader; the OpenSSL 3.5 inside node) against what a peer reports.
 * The OpenSSL 3.5 and Node.js downloads come from `make openssl35 node26` (run by `make test`).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { type MatrixResult, nodeBinary, openssl35, runKexMatrix } from "../support/kex-matrix.ts";
import { traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping the key-exchange matrix: ${skip}`);
if (!skip && !openssl35()) console.warn("OpenSSL 3.5 cases skipped: run `make openssl35` first");
if (!skip && !nodeBinary()) console.warn("Node.js cases skipped: run `make node26` first");

describe.skipIf(skip !== null)("key exchange, version and cipher of every handshake", () => {
  let result: MatrixResult;
  beforeAll(async () => {
    result = await runKexMatrix();
  }, 180_000);

  test("every case: one line per side, and each value is what the peer reports", () => {
    const wrong = result.rows.filter((r) => JSON.stringify(r.expected) !== JSON.stringify(r.observed));
    expect(wrong).toEqual([]);
    expect(result.rows.length).toBeGreaterThan(100);
  });

  test("the truth itself is complete: no case without a reported group, version or cipher", () => {
    const unknown = result.rows.filter(
      (r) => ["negotiated_group", "tls_version", "cipher"].includes(r.field) && r.expected === null,
    );
    expect(unknown).toEqual([]);
  });

  test("OpenSSL 3.5 (Debian 13 and node) negotiates X25519MLKEM768 by default: hybrid-pq", () => {
    const defaults = result.rows.filter((r) => /\(default\)/.test(r.case) && r.field === "kex_class");
    expect(defaults.length).toBe((openssl35() ? 2 : 0) + (nodeBinary() ? 2 : 0));
    for (const row of defaults) expect(row.observed).toBe("hybrid-pq");
  });

  test("the library field names each library with the OpenSSL version it reports", () => {
    const libraries = new Set(result.records.map((r) => r.library));
    expect([...libraries].some((l) => l !== null && /libssl\.so\.3 \(OpenSSL 3\.0\.\d+\)$/.test(l))).toBe(
      true,
    );
    if (openssl35())
      expect([...libraries].some((l) => l !== null && /openssl35.*\(OpenSSL 3\.5\.\d+\)$/.test(l))).toBe(
        true,
      );
    if (nodeBinary())
      expect([...libraries].some((l) => l !== null && /bin\/node \(OpenSSL 3\.5\.\d+\)$/.test(l))).toBe(true);
    expect(result.tracerStderr).not.toMatch(/warning/);
  });

  test("raw kernel events (--raw-events, correlated in user space) give the same values", async () => {
    const raw = await runKexMatrix({ args: ["--raw-events"] });
    const wrong = raw.rows.filter((r) => JSON.stringify(r.expected) !== JSON.stringify(r.observed));
    expect(wrong).toEqual([]);
    expect(raw.rows.length).toBe(result.rows.length);
  }, 180_000);
});
