/**
 * How `carnot trace` stops (as root, real probes): SIGINT/SIGTERM flush a handshake still in progress as
 * `incomplete`, seal the output, exit 0 within 3 s and leave no BPF link behind; bad input gives one clear
 * line and a non-zero exit before anything is attached.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  curl,
  makeSelfSignedCert,
  PYTHON_CLIENT,
  pythonClient,
  type RunningServer,
  SYSTEM_PYTHON,
  startOpenSslServer,
} from "../../src/lab/loopback.ts";
import { lastMetrics, readObservations, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping carnot trace stop tests: ${skip}`);

/** BPF link ids a process holds open (from /proc/PID/fdinfo). */
function linkIds(pid: number): number[] {
  const ids: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    const m = /^link_id:\s*(\d+)$/m.exec(info);
    if (m) ids.push(Number(m[1]));
  }
  return ids;
}

function linkExists(id: number): boolean {
  return Bun.spawnSync(["bpftool", "link", "show", "id", String(id)], { stderr: "ignore" }).exitCode === 0;
}

const cli = (args: string[]) =>
  Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), ...args], { stdout: "pipe", stderr: "pipe" });

describe.skipIf(skip !== null)("carnot trace stops cleanly", () => {
  let dir = "";
  /** accepts TLS clients and never answers: their handshakes stay in progress */
  let silent: Bun.TCPSocketListener<undefined>;
  let server: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-stop-"));
    silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    server = await startOpenSslServer(await makeSelfSignedCert(dir));
  });
  afterAll(async () => {
    silent?.stop(true);
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`${signal}: the pending handshake becomes an incomplete line, sealed, exit 0 within 3 s, no link left`, async () => {
      const out = join(dir, `${signal}.jsonl`);
      const tracer = await startTracer(["--out", out, "--metrics-interval", "0"]);
      const links = linkIds(tracer.proc.pid);
      expect(links.length).toBeGreaterThan(0);
      expect(links.every(linkExists)).toBe(true);

      const spec = {
        port: silent.port,
        threads: [{ sni: "stuck.example", groups: "X25519", on: "connection", count: 1 }],
      };
      const client = Bun.spawn([SYSTEM_PYTHON, "-c", PYTHON_CLIENT, JSON.stringify(spec)], {
        stdout: "ignore",
        stderr: "ignore",
      });
      try {
        await Bun.sleep(700); // the client is now blocked inside SSL_do_handshake
        const stopped = await tracer.stop(signal);
        expect(stopped.exitCode).toBe(0);
        expect(stopped.exitMs).toBeLessThan(3000);
        console.log(`${signal}: exit after ${stopped.exitMs.toFixed(0)} ms`);
        expect(stopped.stderr).toContain("handshakesEmitted=");
        expect(lastMetrics(stopped.stderr).kernel_drops).toBe(0);
      } finally {
        client.kill("SIGKILL");
        await client.exited;
      }
      expect(links.some(linkExists)).toBe(false);
      expect(existsSync(`${out}.seal.json`)).toBe(true);
      expect(JSON.parse(readFileSync(`${out}.seal.json`, "utf8")).complete).toBe(true);
      const mine = readObservations(out).filter((r) => r.pid === client.pid);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({
        sni: "stuck.example",
        groups_offered: ["X25519"],
        handshake_success: false,
        error: "incomplete",
        role: "client",
      });
      expect(mine[0]!.confidence).toBeLessThan(1);
    });
  }

  test("SIGINT while it is still starting (BPF load): it stops once attached, sealed, exit 0", async () => {
    const out = join(dir, "early.jsonl");
    const proc = Bun.spawn([process.execPath, join(REPO, "src", "cli.ts"), "trace", "-o", out, "--verbose"], {
      stdout: "ignore",
      stderr: "pipe",
    });
    let stderr = "";
    const decoder = new TextDecoder();
    let signalled = false;
    for await (const chunk of proc.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      // libbpf's own messages: the object is being loaded, nothing attached or ready yet
      if (!signalled && /libbpf: /.test(stderr)) {
        expect(stderr).not.toContain("carnot: ready");
        proc.kill("SIGINT");
        signalled = true;
      }
    }
    expect(signalled).toBe(true);
    expect(await proc.exited).toBe(0);
    expect(stderr).toContain("carnot: 0 handshakes written to");
    const verify = cli(["verify", out]);
    expect(verify.stdout.toString()).toStartWith("ok: 0 records");
  }, 30_000);

  test("a handshake stuck longer than --window is given up once as timeout, and counted", async () => {
    const out = join(dir, "timeout.jsonl");
    const tracer = await startTracer(["--out", out, "--metrics-interval", "0", "--window", "300ms"]);
    const spec = {
      port: silent.port,
      threads: [{ sni: "slow.example", groups: null, on: "context", count: 1 }],
    };
    const client = Bun.spawn([SYSTEM_PYTHON, "-c", PYTHON_CLIENT, JSON.stringify(spec)], {
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      await Bun.sleep(1500); // window + the kernel table's scan period, with room
      const stopped = await tracer.stop("SIGINT");
      expect(stopped.exitCode).toBe(0);
      expect(lastMetrics(stopped.stderr).correlationTimeouts).toBeGreaterThanOrEqual(1);
    } finally {
      client.kill("SIGKILL");
      await client.exited;
    }
    const mine = readObservations(out).filter((r) => r.pid === client.pid);
    // given up once: not again as incomplete at exit
    expect(mine.map((r) => [r.sni, r.handshake_success, r.error, r.role])).toEqual([
      ["slow.example", false, "timeout", "client"],
    ]);
  });

  test("--comm filters in the kernel: only curl's handshakes are seen, not python's", async () => {
    const out = join(dir, "comm.jsonl");
    const tracer = await startTracer(["--out", out, "--comm", "curl", "--metrics-interval", "0"]);
    const c = await curl(server.port, "only-curl.example");
    const py = await pythonClient(server.port, [
      { sni: "not-seen.example", groups: null, on: "context", count: 1 },
    ]);
    await Bun.sleep(200);
    const stopped = await tracer.stop();
    expect(stopped.exitCode).toBe(0);
    expect(py.handshakes.map((h) => h.ok)).toEqual([true]);
    const records = readObservations(out);
    expect(records.filter((r) => r.pid === c.pid).map((r) => r.sni)).toEqual(["only-curl.example"]);
    expect(records.every((r) => r.comm === "curl")).toBe(true);
    expect(records.some((r) => r.pid === py.pid)).toBe(false);
  });

  test("--duration stops by itself; stdout gets the records when there is no --out", async () => {
    const t0 = performance.now();
    const res = Bun.spawnSync(
      [
        process.execPath,
        join(REPO, "src", "cli.ts"),
        "trace",
        "--duration",
        "0.5",
        "--metrics-interval",
        "0",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(res.exitCode).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(res.stderr.toString()).toContain("carnot: ready");
    for (const line of res.stdout
      .toString()
      .split("\n")
      .filter((l) => l !== "")) {
      expect(JSON.parse(line).source).toBe("runtime.ebpf");
    }
  });

  test("--metrics-json writes the metrics", async () => {
    const path = join(dir, "metrics.json");
    const res = cli(["trace", "--duration", "0.3", "--out", join(dir, "m.jsonl"), "--metrics-json", path]);
    expect(res.exitCode).toBe(0);
    const m = JSON.parse(readFileSync(path, "utf8"));
    expect(Object.keys(m)).toEqual([
      "eventsReceived",
      "handshakesEmitted",
      "correlationTimeouts",
      "cacheEvictions",
      "kernel_drops",
      "kernel_drop_rate",
      "libssl",
      "wire",
      "join",
    ]);
    // each source counts its own; the totals are their sums
    expect(Object.keys(m.libssl)).toEqual(["events", "handshakes", "timeouts", "evictions", "kernel_drops"]);
    expect(m.wire.kernel_drops).toBe(0);
    expect(m.eventsReceived).toBe(m.libssl.events + m.wire.events);
    expect(m.kernel_drops).toBe(m.libssl.kernel_drops + m.wire.kernel_drops);
  });

  test("bad input: one line, non-zero exit, nothing attached, nothing written", () => {
    const cases: [string[], RegExp][] = [
      [
        ["trace", "--out", "/nonexistent-dir/x.jsonl"],
        /^carnot: output path not writable: \/nonexistent-dir\/x\.jsonl/,
      ],
      [
        ["trace", "--libssl", "/etc/hostname"],
        /^carnot: failed to read symbols of \/etc\/hostname: not an ELF file$/m,
      ],
      [["trace", "--libssl", "/usr/bin/ls"], /^carnot: \/usr\/bin\/ls does not export SSL_new\b/],
      [
        ["trace", "--libssl", "/no/such/libssl.so"],
        /^carnot: failed to find library \/no\/such\/libssl\.so: no such file/,
      ],
      [["trace", "--window", "soon"], /^carnot: invalid --window "soon"/],
      [["trace", "--max-pending", "0"], /^carnot: invalid --max-pending "0"/],
      [["trace", "--ringbuf-size", "1000"], /^carnot: invalid ring buffer size 1000/],
      [["trace", "--comm", "a-name-longer-than-15"], /^carnot: .*longer than 15 bytes/],
    ];
    for (const [args, message] of cases) {
      const res = cli(args);
      const stderr = res.stderr.toString();
      expect({ args, stderr: stderr.trim().split("\n").length, match: message.test(stderr) }).toEqual({
        args,
        stderr: 1,
        match: true,
      });
      expect(res.exitCode).not.toBe(0);
      expect(res.stdout.toString()).toBe("");
    }
    expect(existsSync("/nonexistent-dir")).toBe(false);
  });

  test("without root it says which privileges it needs", () => {
    // setpriv drops to nobody; bun and the sources must be readable by it
    const res = Bun.spawnSync(
      [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        join(REPO, "src", "cli.ts"),
        "trace",
        "--duration",
        "1",
      ],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: "/tmp" } },
    );
    const stderr = res.stderr.toString();
    if (/EACCES|Permission denied.*cli\.ts|Cannot find module/.test(stderr)) {
      console.warn(
        `skipping the unprivileged case: the repository is not readable by nobody (${stderr.trim()})`,
      );
      return;
    }
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/^carnot: .*needs root, or CAP_BPF \+ CAP_PERFMON/);
    expect(res.exitCode).not.toBe(0);
  });
});
