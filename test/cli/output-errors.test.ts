/**
 * Every command writing to stdout, when stdout is a pipe nobody reads any more (`carnot … | head`) and when
 * it is full (`> /dev/full`): a closed pipe ends quietly with 141 (what the shell shows for a program SIGPIPE
 * ended), a full device is one line naming stdout; never a stack trace. Inputs are made from a real strace
 * of a workload, large enough that no output fits in one write.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { curl, makeSelfSignedCert, type RunningServer, startNginx } from "../../src/lab/loopback.ts";
import { traceSkipReason } from "../support/tracer.ts";

const REPO = join(import.meta.dir, "../..");
const CLI = join(REPO, "src/cli.ts");
const RUNTIME = join(REPO, "test/fixtures/runtime/mixed.jsonl");
/** Runs argv with stdout a pipe whose read end is already closed: the first write gets EPIPE. */
const CLOSED_PIPE =
  "import os, subprocess, sys\nr, w = os.pipe()\nos.close(r)\nsys.exit(subprocess.run(sys.argv[1:], stdout=w).returncode)";
const ENOSPC_LINE = "carnot: cannot write stdout: no space left on device (ENOSPC)\n";
/** A line of a JavaScript stack trace. */
const STACK_FRAME = /^\s+at /m;

let dir = "";
let strace = "";
let enriched = "";
let bom = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "carnot-pipes-"));
  strace = join(dir, "work.strace");
  // a shell that runs cat on 120 files: one process and one file read each (~15k calls)
  const workload = 'for f in $(ls /usr/share/doc/*/copyright | head -n 120); do cat "$f"; done > /dev/null';
  const traced = Bun.spawnSync(
    ["strace", "-f", "-tt", "-T", "-yy", "-o", strace, "--", "/bin/sh", "-c", workload],
    {
      stdout: "ignore",
      stderr: "pipe",
    },
  );
  if (traced.exitCode !== 0) throw new Error(`strace failed: ${traced.stderr}`);
  enriched = join(dir, "enriched.jsonl");
  bom = join(dir, "runtime.bom.json");
  for (const args of [
    ["replay", strace, "-o", enriched],
    ["bom", RUNTIME, "-o", bom],
  ]) {
    const r = Bun.spawnSync([process.execPath, CLI, ...args], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`carnot ${args.join(" ")}: ${r.stderr}`);
  }
  mkdirSync(join(dir, "reports"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Each command that writes to stdout, with its input. */
const COMMANDS: [string, () => string[]][] = [
  ["replay", () => ["replay", strace]],
  ["verify", () => ["verify", enriched]],
  ["bom", () => ["bom", RUNTIME]],
  ["merge", () => ["merge", bom]],
  ["policy", () => ["policy", bom, "--format", "text"]],
  ["attest", () => ["attest", bom, "-o", join(dir, "reports", "att")]],
  ["seccomp", () => ["seccomp", enriched]],
  ["actions", () => ["actions", enriched]],
  ["timeline", () => ["timeline", enriched]],
  ["--help", () => ["--help"]],
];

function run(argv: string[]): { code: number; stderr: string } {
  const r = Bun.spawnSync(argv, {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "ignore",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, stderr: r.stderr.toString() };
}

describe("stdout that cannot be written", () => {
  test.each(COMMANDS)("%s into a closed pipe: exit 141, nothing on stderr", (_, args) => {
    const r = run(["/usr/bin/python3", "-c", CLOSED_PIPE, process.execPath, CLI, ...args()]);
    expect(r).toEqual({ code: 141, stderr: "" });
  });

  test.each(COMMANDS)("%s into /dev/full: one line naming stdout, non-zero exit", (_, args) => {
    const quoted = [process.execPath, CLI, ...args()].map((a) => `'${a}'`).join(" ");
    const r = run(["bash", "-c", `exec ${quoted} > /dev/full`]);
    expect(r).toEqual({ code: 1, stderr: ENOSPC_LINE });
  });

  test.each([
    ["actions", () => ["actions", enriched]],
    ["timeline", () => ["timeline", enriched]],
    ["replay", () => ["replay", strace]],
  ])("`carnot %s … | head -c 100` under pipefail: 141, no stack", (_, args) => {
    const quoted = [process.execPath, CLI, ...args()].map((a) => `'${a}'`).join(" ");
    const r = run([
      "bash",
      "-c",
      `set -o pipefail; ${quoted} 2>stderr.txt | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}" >&2`,
    ]);
    expect(r.stderr).toBe("141\n");
    const stderr = readFileSync(join(dir, "stderr.txt"), "utf8");
    expect(stderr).not.toMatch(STACK_FRAME);
    expect(stderr).toBe("");
  });

  test("--verbose still prints no stack for a closed pipe, and one for a full disk only with it", () => {
    const closed = run([
      "/usr/bin/python3",
      "-c",
      CLOSED_PIPE,
      process.execPath,
      CLI,
      "actions",
      enriched,
      "--verbose",
    ]);
    expect(closed).toEqual({ code: 141, stderr: "" });
    const full = run([
      "bash",
      "-c",
      `exec '${process.execPath}' '${CLI}' actions '${enriched}' --verbose > /dev/full`,
    ]);
    expect(full.code).toBe(1);
    expect(full.stderr.startsWith(ENOSPC_LINE)).toBe(true);
    expect(full.stderr).toMatch(STACK_FRAME);
  });
});

const traceSkip = traceSkipReason();
if (traceSkip) console.warn(`skipping carnot trace into a closed pipe: ${traceSkip}`);

describe.skipIf(traceSkip !== null)("carnot trace --duration writing to stdout", () => {
  let nginx: RunningServer;
  beforeAll(async () => {
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir));
  });
  afterAll(async () => {
    await nginx?.stop();
  });

  /** Starts the trace with stdout `how`, makes handshakes until it exits; its exit code and stderr. */
  async function traceWhileHandshaking(
    how: "closed-pipe" | "full",
  ): Promise<{ code: number; stderr: string }> {
    const carnot = [process.execPath, CLI, "trace", "--duration", "30", "--metrics-interval", "0"];
    const argv =
      how === "closed-pipe"
        ? ["/usr/bin/python3", "-c", CLOSED_PIPE, ...carnot]
        : ["bash", "-c", `exec ${carnot.map((a) => `'${a}'`).join(" ")} > /dev/full`];
    const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of p.stderr) stderr += new TextDecoder().decode(chunk);
    })();
    const deadline = Date.now() + 25_000;
    while (p.exitCode === null && Date.now() < deadline) {
      if (stderr.includes("carnot: ready")) await curl(nginx.port, "pipe.example");
      else await Bun.sleep(50);
    }
    if (p.exitCode === null) p.kill("SIGKILL");
    const code = await p.exited;
    await reading;
    return { code, stderr };
  }

  test("into a closed pipe: ends at its first write with 141, no error line, no stack", async () => {
    const r = await traceWhileHandshaking("closed-pipe");
    expect(r.code).toBe(141);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.stderr.split("\n").filter((l) => /cannot|error|EPIPE/i.test(l))).toEqual([]);
  });

  test("into /dev/full: one line naming stdout, exit 1, no stack", async () => {
    const r = await traceWhileHandshaking("full");
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.stderr.split("\n").filter((l) => /cannot|ENOSPC/.test(l))).toEqual([
      "carnot: cannot write output: cannot write stdout: no space left on device (ENOSPC)",
    ]);
  });
});
