/**
 * The kernel's per-connection table (aggregated mode) is bounded by --max-pending, and what it evicts is
 * counted in cacheEvictions: more handshakes stall at once than the table holds (clients whose server never
 * answers the ClientHello); the count is at least the excess, and every handshake is a line or an eviction.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SYSTEM_PYTHON } from "../../src/lab/loopback.ts";
import { lastMetrics, readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";

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
});
