/**
 * `carnot trace` writing to stdout (`carnot trace | jq`) shows each handshake while the trace still runs, not
 * only when the writer's buffer fills or at exit. Real nginx and curl on loopback, the compiled ./carnot when
 * it exists (else the sources).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { curl, makeSelfSignedCert, type RunningServer, startNginx } from "../../src/lab/loopback.ts";
import { COMPILED, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping live output tests: ${skip}`);

/** How long a line may take to reach stdout: the trace flushes every 200 ms; the rest is a busy machine. */
const LIVE_WITHIN_MS = 3_000;

describe.skipIf(skip !== null)("carnot trace to stdout", () => {
  let dir = "";
  let nginx: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-live-"));
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir));
  });

  afterAll(async () => {
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("each handshake's line appears while the trace runs", async () => {
    const tracer = await startTracer(["--metrics-interval", "0"], {
      binary: existsSync(COMPILED) ? COMPILED : undefined,
    });
    try {
      for (const sni of ["live1.example", "live2.example"]) {
        const client = await curl(nginx.port, sni);
        expect(client.exitCode).toBe(0);
        const started = performance.now();
        // the client's line, by its SNI, with the tracer still running
        let line: string | undefined;
        while (performance.now() - started < LIVE_WITHIN_MS) {
          line = tracer
            .stdout()
            .split("\n")
            .find((l) => l.includes(`"sni":"${sni}"`));
          if (line !== undefined) break;
          await Bun.sleep(20);
        }
        expect({ sni, seen: line !== undefined }).toEqual({ sni, seen: true });
        expect(tracer.proc.exitCode).toBeNull();
        // a whole line, never a half record
        expect(tracer.stdout().endsWith("\n")).toBe(true);
        const record = JSON.parse(line!);
        expect(record).toMatchObject({ sni, role: "client", handshake_success: true, comm: "curl" });
        expect(record.chain).toMatch(/^[0-9a-f]{64}$/);
      }
    } finally {
      const exit = await tracer.stop();
      expect(exit.exitCode).toBe(0);
    }
  }, 60_000);
});
