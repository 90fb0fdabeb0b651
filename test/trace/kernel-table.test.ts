/**
 * The kernel's per-connection table (aggregated mode) is bounded by --max-pending, and what it evicts is
 * counted in cacheEvictions: more handshakes stall at once than the table holds (clients whose server never
 * answers the ClientHello); the count is at least the excess, and every handshake is a line or an eviction.
 * And a table that never fills evicts nothing: under a 50-way nginx load the count stays 0 at every reading.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, makeSelfSignedCert, startNginx, SYSTEM_PYTHON } from "../../src/lab/loopback.ts";
import { COMPILED, lastMetrics, readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping the kernel table tests: ${skip}`);

const TABLE = 16;
const CLIENTS = 40;

/** Threads that each start a TLS handshake (no SNI: nothing reaches user space before the end) and wait. */
const STALLED_CLIENTS = `
import socket, ssl, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
started = threading.Barrier(n)
def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(2.0)
    started.wait()
    try:
        ctx.wrap_socket(s)
    except Exception:
        pass
    s.close()
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print("done")
`;

describe.skipIf(skip !== null)("the kernel's per-connection table", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-table-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test(`${CLIENTS} handshakes in progress at once, a table of ${TABLE}: the evictions are counted`, async () => {
    // a server that accepts and never answers: every handshake stays in progress until its client gives up
    const silent = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data() {}, open() {}, close() {} },
    });
    const out = join(dir, "stalled.jsonl");
    const tracer = await startTracer([
      "-o",
      out,
      "--max-pending",
      String(TABLE),
      "--metrics-interval",
      "0",
      "--source",
      "libssl",
    ]);
    try {
      const py = Bun.spawnSync([SYSTEM_PYTHON, "-c", STALLED_CLIENTS, String(silent.port), String(CLIENTS)], {
        stdout: "pipe",
        stderr: "pipe",
        timeout: 30_000,
      });
      expect(py.stdout.toString().trim()).toBe("done");
    } finally {
      silent.stop(true);
    }
    const { exitCode, stderr } = await tracer.stop("SIGINT");
    expect(exitCode).toBe(0);
    const evictions = Number(lastMetrics(stderr).cacheEvictions);
    expect(evictions).toBeGreaterThanOrEqual(CLIENTS - TABLE);
    expect(evictions).toBeLessThanOrEqual(CLIENTS);
    // what the table still held ended as failed handshakes (freed by the client that gave up), and no
    // handshake is lost silently: each one is a line or an eviction
    const lines = readObservations(out);
    expect(lines.length).toBeLessThanOrEqual(TABLE);
    expect(lines.every((r) => !r.handshake_success)).toBe(true);
    expect(lines.length + evictions).toBeGreaterThanOrEqual(CLIENTS);
  }, 60_000);

  test.skipIf(Bun.which("hey") === null || Bun.which("nginx") === null)(
    "a table that never fills: 0 evictions under a 50-way nginx load, at every reading",
    async () => {
      const cert = await makeSelfSignedCert(dir);
      const nginx = await startNginx(join(dir, "nginx"), cert, { workers: 2 });
      const out = join(dir, "load.jsonl");
      const tracer = await startTracer(["-o", out, "--metrics-interval", "1"], { binary: COMPILED });
      const workers = new Set(await childPids(nginx.pid));
      try {
        const hey = Bun.spawnSync(
          ["hey", "-n", "5000", "-c", "50", "-disable-keepalive", `https://127.0.0.1:${nginx.port}/`],
          { stdout: "pipe", stderr: "pipe", timeout: 60_000 },
        );
        expect(/\[200\]\s+5000 responses/.test(hey.stdout.toString())).toBe(true);
      } finally {
        await nginx.stop();
      }
      const { exitCode, stderr } = await tracer.stop("SIGINT");
      expect(exitCode).toBe(0);
      // every metrics line, the periodic ones read while the load ran and the last one
      const readings = stderr
        .split("\n")
        .filter((l) => l.includes("cacheEvictions="))
        .map((l) => Number(/cacheEvictions=(\d+)/.exec(l)?.[1]));
      expect(readings.length).toBeGreaterThanOrEqual(2);
      expect(readings).toEqual(readings.map(() => 0));
      const served = readObservations(out).filter(
        (r) => r.role === "server" && r.pid !== null && workers.has(r.pid),
      );
      expect(served.filter((r) => r.handshake_success)).toHaveLength(5000);
    },
    120_000,
  );
});
