/**
 * The tracer's engine options and warm-up: the allowlist file (or FTL off where it cannot be written), the
 * re-execution of `carnot trace` from source (same pid, the user's own engine options respected), and the
 * warm-up's synthetic handshakes going through the real pipeline without reaching any output.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMPRESS_FUNCTION_NAME } from "../../src/chain/blake3.ts";
import { tracerEngineEnv } from "../../src/trace/engine.ts";
import { indexGroups } from "../../src/trace/groups.ts";
import { warmUpPipeline, WARMUP_HANDSHAKES } from "../../src/trace/warmup.ts";
import { startTracer, traceSkipReason } from "../support/tracer.ts";

const dir = mkdtempSync(join(tmpdir(), "carnot-engine-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("engine options", () => {
  test("the allowlist names the compression function, in a file under the cache directory", () => {
    expect(COMPRESS_FUNCTION_NAME).toBe("compress");
    const env = tracerEngineEnv(join(dir, "cache"));
    expect(env).toEqual({ BUN_JSC_ftlAllowlist: join(dir, "cache", "ftl-allowlist") });
    expect(readFileSync(env.BUN_JSC_ftlAllowlist!, "utf8")).toBe("compress\n");
    // written again only when it differs
    writeFileSync(env.BUN_JSC_ftlAllowlist!, "something else\n");
    tracerEngineEnv(join(dir, "cache"));
    expect(readFileSync(env.BUN_JSC_ftlAllowlist!, "utf8")).toBe("compress\n");
  });

  test("where the file cannot be written, FTL is turned off instead", () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    expect(tracerEngineEnv(join(file, "cache"))).toEqual({ BUN_JSC_useFTLJIT: "0" });
  });
});

describe("warm-up", () => {
  test("every synthetic handshake becomes one record, joined from both sources", async () => {
    const groupIndex = indexGroups();
    const facts = {
      label: "warm-up library",
      ciphers: { "4866": "TLS_AES_256_GCM_SHA384" },
      defaultGroups: null,
    };
    const out = join(dir, "warm-up.jsonl");
    const made = await warmUpPipeline(
      {
        library: () => facts,
        exe: () => null,
        cgroup: () => ({ path: null, containerId: null, podUid: null }),
        host: "warm-up-host",
        machineId: null,
        clockOffsetUs: 0,
        groupIndex,
      },
      groupIndex,
      300,
      out,
    );
    expect(made).toBe(300);
    // every step of both sources ran: each handshake joined from libssl's event and the wire's bytes
    const records = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records).toHaveLength(300);
    for (const r of records) {
      expect(r.observed_by).toEqual(["libssl", "wire"]);
      expect([r.handshake_success, r.negotiated_group, r.tls_version, r.server_name]).toEqual([
        true,
        "X25519",
        "TLSv1.3",
        "warm-up.invalid",
      ]);
      // the process's cgroup went through the attribution step too (the warm-up's own, never the host's)
      expect([r.host, r.container_id]).toEqual(["warm-up-host", "0".repeat(64)]);
    }
    expect(new Set(records.map((r) => r.role))).toEqual(new Set(["client", "server"]));
    expect(WARMUP_HANDSHAKES).toBeGreaterThanOrEqual(1000);
  });
});

const skip = traceSkipReason();
if (skip) console.warn(`skipping the tracer re-execution tests: ${skip}`);

describe.skipIf(skip !== null)("carnot trace re-executes itself with its engine options", () => {
  const environ = (pid: number, prefix = "BUN_JSC_") =>
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter((e) => e.startsWith(prefix));

  test("same pid, the allowlist in its environment, arguments kept; it traces and stops as usual", async () => {
    const out = join(dir, "a.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"], {
      env: { CARNOT_CACHE_DIR: join(dir, "cache2") },
    });
    const env = environ(tracer.proc.pid);
    const allocator = environ(tracer.proc.pid, "MIMALLOC_");
    const cmdline = readFileSync(`/proc/${tracer.proc.pid}/cmdline`, "utf8").split("\0");
    const { exitCode, stderr } = await tracer.stop("SIGINT");
    expect(env).toEqual([`BUN_JSC_ftlAllowlist=${join(dir, "cache2", "ftl-allowlist")}`]);
    expect(allocator).toEqual(["MIMALLOC_PURGE_DELAY=-1"]);
    expect(cmdline.slice(-5, -1)).toEqual(["-o", out, "--metrics-interval", "0"]);
    expect(exitCode).toBe(0);
    expect(stderr).toContain("handshakes written to");
  }, 30_000);

  test("an engine option the user set is kept, and nothing is added", async () => {
    const tracer = await startTracer(["-o", join(dir, "b.jsonl"), "--metrics-interval", "0"], {
      env: { BUN_JSC_useFTLJIT: "1", MIMALLOC_PURGE_DELAY: "5" },
    });
    const env = [...environ(tracer.proc.pid), ...environ(tracer.proc.pid, "MIMALLOC_")];
    expect((await tracer.stop("SIGINT")).exitCode).toBe(0);
    expect(env).toEqual(["BUN_JSC_useFTLJIT=1", "MIMALLOC_PURGE_DELAY=5"]);
  }, 30_000);
});
