/**
 * `carnot trace --rotate-every / --rotate-size` under load (as root, real probes): nginx and hey make a few
 * thousand handshakes while the output rotates every 0.2 s or every few KB. Nothing is lost across the
 * rotations (the lines of every file add up to handshakesEmitted), `carnot verify` of the whole sequence
 * passes, and a file removed from its middle is named. Bad rotation settings are refused before anything is
 * attached.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { numberedFiles } from "../../src/chain/rotation.ts";
import { makeSelfSignedCert, type RunningServer, startNginx } from "../../src/lab/loopback.ts";
import { lastMetrics, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason() ?? (Bun.which("hey") === null ? "hey not installed (make setup)" : null);
if (skip) console.warn(`skipping the rotation tests: ${skip}`);

const HANDSHAKES = 3000;
const cli = (args: string[]) =>
  Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
const lineCount = (path: string) => readFileSync(path, "utf8").split("\n").length - 1;

describe.skipIf(skip !== null)("carnot trace rotates its output under load", () => {
  let dir = "";
  let nginx: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-rotate-"));
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir), { workers: 2 });
  });
  afterAll(async () => {
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [label, flags] of [
    ["every 0.2 s", ["--rotate-every", "0.2"]],
    ["every 8 KiB", ["--rotate-size", "8K"]],
  ] as const) {
    test(`${label}: every handshake in exactly one file, the sequence verifies, a removed middle file is named`, async () => {
      const sub = join(dir, label.replace(/\W+/g, "-"));
      mkdirSync(sub);
      const out = join(sub, "runtime.jsonl");
      const tracer = await startTracer(["--out", out, "--metrics-interval", "0", ...flags]);
      const t0 = performance.now();
      const hey = Bun.spawnSync(
        [
          "hey",
          "-n",
          String(HANDSHAKES),
          "-c",
          "20",
          "-disable-keepalive",
          `https://127.0.0.1:${nginx.port}/`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const loadS = (performance.now() - t0) / 1000;
      expect(hey.stdout.toString()).toMatch(new RegExp(`\\[200\\]\\s+${HANDSHAKES} responses`));
      await Bun.sleep(300);
      const stopped = await tracer.stop("SIGINT");
      expect(stopped.exitCode).toBe(0);
      const m = lastMetrics(stopped.stderr);

      const files = [...numberedFiles(out).map(([, p]) => p), out];
      const lines = files.reduce((n, f) => n + lineCount(f), 0);
      console.log(
        `rotation ${label}: ${HANDSHAKES} requests in ${loadS.toFixed(1)} s, ${files.length} files, ${lines} lines, handshakesEmitted ${m.handshakesEmitted}`,
      );
      expect(files.length).toBeGreaterThanOrEqual(5);
      expect(lines).toBe(m.handshakesEmitted!);
      // nginx's side of every request is in there (and hey's, from the wire)
      expect(lines).toBeGreaterThanOrEqual(HANDSHAKES);
      expect(m.kernel_drops).toBe(0);
      expect(stopped.stderr).toContain(
        `carnot: ${lines} handshakes written to ${out} (and ${files.length - 1} rotated files before it)`,
      );

      const whole = cli(["verify", ...files]);
      expect(whole.stdout.toString()).toBe(
        `ok: ${files.length} files, ${lines} records, files 1–${files.length} of one sequence, each chain intact, sealed and linked to the one before\n`,
      );
      expect(whole.exitCode).toBe(0);

      const middle = Math.floor(files.length / 2);
      rmSync(files[middle]!);
      const gap = cli(["verify", ...files.filter((_, i) => i !== middle)]);
      expect(gap.exitCode).toBe(1);
      expect(gap.stdout.toString()).toBe(
        `FAIL ${files[middle + 1]}: file ${middle + 1} is missing between ${files[middle - 1]} and it\n`,
      );
    }, 180_000);
  }

  test("a directory that refuses new files while tracing: a counted warning, the live file goes on, nothing lost", async () => {
    const sub = join(dir, "locked-later");
    mkdirSync(sub);
    const out = join(sub, "runtime.jsonl");
    // by size: no rotation runs while the directory is locked below (idle), so the lock lands between rotations
    // (a lock in the middle of one, between the rename and the seal, stops the output: it cannot go on there)
    const tracer = await startTracer(["--out", out, "--metrics-interval", "0", "--rotate-size", "8K"]);
    await Bun.sleep(600);
    // root passes permission bits: an immutable directory refuses even root a new file
    const chattr = Bun.spawnSync(["chattr", "+i", sub], { stderr: "pipe" });
    if (chattr.exitCode !== 0) {
      await tracer.stop("SIGINT");
      console.warn(`skipped: chattr +i not supported here: ${chattr.stderr.toString().trim()}`);
      return;
    }
    let heyOut = "";
    try {
      heyOut = Bun.spawnSync(
        ["hey", "-n", "500", "-c", "10", "-disable-keepalive", `https://127.0.0.1:${nginx.port}/`],
        { stdout: "pipe" },
      ).stdout.toString();
      await Bun.sleep(6000); // past the 5 s before a rotation that failed is tried again
    } finally {
      Bun.spawnSync(["chattr", "-i", sub]);
    }
    expect(heyOut).toMatch(/\[200\]\s+500 responses/);
    await Bun.sleep(6000);
    const stopped = await tracer.stop("SIGINT");
    expect(stopped.exitCode).toBe(0);
    const warnings = stopped.stderr.split("\n").filter((l) => l.includes("cannot rotate"));
    expect(warnings).toEqual([
      `carnot: warning: cannot rotate ${out}: operation not permitted; writing on in it`,
    ]);
    const files = [...numberedFiles(out).map(([, p]) => p), out];
    const lines = files.reduce((n, f) => n + lineCount(f), 0);
    expect(lines).toBe(lastMetrics(stopped.stderr).handshakesEmitted!);
    expect(lines).toBeGreaterThanOrEqual(500);
    expect(cli(["verify", ...files]).exitCode).toBe(0);
  }, 120_000);

  test("an unwritable rotation directory, a bad size or duration: one line, exit 2, nothing attached", () => {
    const cases: [string[], string][] = [
      [["--rotate-size", "0"], 'carnot: invalid --rotate-size "0": must be positive'],
      [["--rotate-size", "5X"], 'carnot: invalid --rotate-size "5X": expected bytes, e.g. 8388608 or 8M'],
      [
        ["--rotate-every", "10ms"],
        'carnot: invalid --rotate-every "10ms": expected a duration from 0.1s to 2147483s, e.g. 200ms, 30s, 15m, 1h or 1d',
      ],
      [["--max-files", "0"], 'carnot: invalid --max-files "0": expected an integer from 1 to 1000000'],
    ];
    for (const [flags, message] of cases) {
      const r = cli(["trace", "--out", join(dir, "bad.jsonl"), ...flags]);
      expect({ exit: r.exitCode, stderr: r.stderr.toString().trim() }).toEqual({ exit: 2, stderr: message });
    }
    expect(existsSync(join(dir, "bad.jsonl"))).toBe(false);
    const noOut = cli(["trace", "--rotate-every", "1h"]);
    expect(noOut.stderr.toString().trim()).toBe(
      "carnot: --rotate-size, --rotate-every and --max-files need --out FILE",
    );
    expect(noOut.exitCode).toBe(2);

    // the live file can be written, its directory takes no new file: rotation could never happen
    const locked = join(dir, "locked");
    mkdirSync(locked);
    const out = join(locked, "runtime.jsonl");
    writeFileSync(out, "");
    const chattr = Bun.spawnSync(["chattr", "+i", locked], { stderr: "pipe" });
    if (chattr.exitCode !== 0) {
      console.warn(
        `skipped the locked directory: chattr +i not supported here: ${chattr.stderr.toString().trim()}`,
      );
      return;
    }
    try {
      const r = cli(["trace", "--out", out, "--rotate-every", "1h"]);
      expect({ exit: r.exitCode, stderr: r.stderr.toString().trim() }).toEqual({
        exit: 2,
        stderr: `carnot: rotation directory not writable: ${locked} (operation not permitted)`,
      });
    } finally {
      Bun.spawnSync(["chattr", "-i", locked]);
    }
  }, 60_000);
});
