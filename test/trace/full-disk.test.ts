/**
 * A full disk while `carnot trace` writes (as root: a small tmpfs the test mounts): the lines the disk refuses
 * are held in memory, in order, with one counted warning; nothing more is read until they are written; once
 * there is room again they are, and the file verifies with every handshake in it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCert, type RunningServer, startNginx } from "../../src/lab/loopback.ts";
import { lastMetrics, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason() ?? (Bun.which("hey") === null ? "hey not installed (make setup)" : null);
if (skip) console.warn(`skipping the full-disk test: ${skip}`);

describe.skipIf(skip !== null)("carnot trace on a full disk", () => {
  let dir = "";
  let disk = "";
  let nginx: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-full-"));
    disk = join(dir, "disk");
    mkdirSync(disk);
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk], { stderr: "pipe" });
    if (mount.exitCode !== 0) throw new Error(`cannot mount a tmpfs: ${mount.stderr.toString().trim()}`);
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir), { workers: 2 });
  });
  afterAll(async () => {
    await nginx?.stop();
    if (disk) Bun.spawnSync(["umount", disk]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the refused lines are held and written once there is room: one warning, nothing lost", async () => {
    const ballast = join(disk, "ballast");
    writeFileSync(ballast, Buffer.alloc(16 * 1024 * 1024 - 200 * 1024));
    const out = join(disk, "runtime.jsonl");
    const tracer = await startTracer(["--out", out, "--metrics-interval", "0"]);
    const hey = Bun.spawn(
      ["hey", "-n", "1500", "-c", "10", "-disable-keepalive", `https://127.0.0.1:${nginx.port}/`],
      { stdout: "pipe", stderr: "ignore" },
    );
    const deadline = Date.now() + 60_000;
    while (!tracer.stderr().includes("warning: cannot write") && Date.now() < deadline) await Bun.sleep(50);
    expect(tracer.stderr()).toContain(
      `carnot: warning: cannot write ${out}: no space left on device (ENOSPC); `,
    );
    expect(tracer.proc.exitCode).toBeNull();
    await Bun.sleep(1500);
    rmSync(ballast);
    expect(await hey.exited).toBe(0);
    while (!tracer.stderr().includes("written again") && Date.now() < deadline) await Bun.sleep(50);
    await Bun.sleep(500);
    const stopped = await tracer.stop("SIGINT");
    if (stopped.exitCode !== 0) console.log(stopped.stderr);
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stderr.split("\n").filter((l) => l.includes("no space left"))).toHaveLength(1);
    expect(stopped.stderr).toMatch(
      new RegExp(`carnot: ${out} written again after [\\d.]+ s; nothing held was lost`),
    );
    const lines = readFileSync(out, "utf8").split("\n").length - 1;
    expect(lines).toBe(lastMetrics(stopped.stderr).handshakesEmitted!);
    expect(lines).toBeGreaterThanOrEqual(1500);
    const verify = Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), "verify", out]);
    expect(verify.stdout.toString()).toBe(`ok: ${lines} records, chain intact, sealed\n`);
  }, 120_000);
});
