/**
 * Stop signals reach `carnot trace` whenever they come (the compiled ./carnot, as root, real probes): during
 * start-up, also when the parent shell ignores SIGINT (a background job of a non-interactive script) and
 * across the re-execution with engine options; SIGHUP rotates an output file once the trace is ready, stops
 * a trace that writes to stdout, and is left ignored when it was inherited ignored (`nohup`). Every stopped
 * trace is sealed and verified.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMPILED, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason() ?? (existsSync(COMPILED) ? null : "./carnot not built (make carnot)");
if (skip) console.warn(`skipping the stop-signal tests: ${skip}`);

const SIGINT_BIT = 1n << 1n;

interface Status {
  caught: bigint;
}

function status(pid: number): Status | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const mask = (name: string) =>
      BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, "m").exec(text)?.[1]}`);
    return { caught: mask("SigCgt") };
  } catch {
    return null;
  }
}

/** Whether the process now runs the re-executed image (its environment has the engine options). */
function reExecuted(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").includes("BUN_JSC_ftlAllowlist=");
  } catch {
    return false;
  }
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(0.2);
  }
}

describe.skipIf(skip !== null)("stop signals", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-signals-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * `./carnot trace &` in a non-interactive bash (SIGINT inherited ignored); SIGINT once `phase` holds (and
   * `delayMs` later); bash prints the exit status.
   */
  async function interruptInScript(name: string, phase: (pid: number) => boolean, delayMs: number) {
    const out = join(dir, `${name}.jsonl`);
    const err = join(dir, `${name}.err`);
    // a comm no process has: handshakes of other programs on the host do not count
    const script = `${COMPILED} trace -o ${out} --comm carnot-nobody --metrics-interval 0 2>${err} & echo $!; wait $!; echo "exit=$?"`;
    const shell = Bun.spawn(["bash", "-c", script], { stdout: "pipe", stderr: "inherit" });
    const reader = shell.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const pid = Number(text.trim().split("\n")[0]);
    await waitFor(`${name}: its phase`, () => phase(pid));
    const ready = () => existsSync(err) && readFileSync(err, "utf8").includes("carnot: ready");
    expect(ready()).toBe(false);
    const until = performance.now() + delayMs;
    while (performance.now() < until) {}
    process.kill(pid, "SIGINT");
    const killer = setTimeout(() => process.kill(pid, "SIGKILL"), 20_000);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    clearTimeout(killer);
    await shell.exited;
    return { exit: /exit=(\d+)/.exec(text)?.[1], stderr: readFileSync(err, "utf8"), out };
  }

  test("the condition: a background job of a non-interactive bash inherits SIGINT ignored", () => {
    const probe = Bun.spawnSync(["bash", "-c", "grep SigIgn /proc/self/status & wait"]);
    const ignored = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(probe.stdout.toString())?.[1]}`);
    expect(ignored & SIGINT_BIT).toBe(SIGINT_BIT);
  });

  const verify = (path: string) => Bun.spawnSync([COMPILED, "verify", path]).stdout.toString();

  // carnot's own first line has run: it catches SIGINT (a mask blocked for a moment is not enough: the runtime
  // blocks every signal while it creates a thread, before any line of carnot has run)
  const carnotRuns = (pid: number) => ((status(pid)?.caught ?? 0n) & SIGINT_BIT) !== 0n;
  const phases: [string, (pid: number) => boolean, number][] = [
    ["its first line ran", carnotRuns, 0],
    ["re-executed", reExecuted, 0],
    ["re-executed, +5 ms", reExecuted, 5],
    ["re-executed, +30 ms", reExecuted, 30],
    ["re-executed, +100 ms", reExecuted, 100],
  ];
  for (const [i, [label, phase, delayMs]] of phases.entries()) {
    test(`SIGINT while starting (${label}), SIGINT ignored by the parent shell: sealed, exit 0`, async () => {
      const r = await interruptInScript(`start-${i}`, phase, delayMs);
      expect({ exit: r.exit, lines: r.stderr.trim().split("\n").slice(-1) }).toEqual({
        exit: "0",
        lines: [`carnot: 0 handshakes written to ${r.out}`],
      });
      expect(verify(r.out)).toStartWith("ok: 0 records");
    }, 40_000);
  }

  test("SIGHUP with an output file rotates it (sealed under the next number) and the trace goes on", async () => {
    const out = join(dir, "hup.jsonl");
    const rotated = join(dir, "hup.000001.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"], { binary: COMPILED });
    tracer.proc.kill("SIGHUP");
    await waitFor("the rotated file's seal", () => existsSync(`${rotated}.seal.json`));
    expect(tracer.proc.exitCode).toBeNull();
    const stopped = await tracer.stop("SIGINT");
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stderr).toContain(`handshakes written to ${out} (and 1 rotated files before it)`);
    expect(JSON.parse(readFileSync(`${rotated}.seal.json`, "utf8")).complete).toBe(true);
    const both = Bun.spawnSync([COMPILED, "verify", rotated, out]);
    expect(both.stdout.toString()).toStartWith("ok: 2 files, ");
  }, 30_000);

  test("SIGHUP when the records go to stdout: nothing to rotate, it stops, exit 0", async () => {
    const tracer = await startTracer(["--metrics-interval", "0"], { binary: COMPILED });
    const stopped = await tracer.stop("SIGHUP");
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stderr).toContain("handshakesEmitted=");
  }, 30_000);

  test("SIGHUP inherited ignored (nohup) is left ignored: the trace goes on until SIGINT", async () => {
    const out = join(dir, "nohup.jsonl");
    const err = join(dir, "nohup.err");
    const shell = Bun.spawn(
      ["bash", "-c", `trap '' HUP; exec ${COMPILED} trace -o ${out} --metrics-interval 0 2>${err}`],
      { stdout: "ignore", stderr: "inherit" },
    );
    await waitFor("ready", () => existsSync(err) && readFileSync(err, "utf8").includes("carnot: ready"));
    process.kill(shell.pid, "SIGHUP");
    await Bun.sleep(500);
    expect(shell.exitCode).toBeNull();
    process.kill(shell.pid, "SIGINT");
    expect(await shell.exited).toBe(0);
    expect(verify(out)).toStartWith("ok:");
  }, 30_000);
});
