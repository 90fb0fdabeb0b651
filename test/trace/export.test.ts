/**
 * `carnot trace --export nats://…` against a real `nats-server -js` (Debian's nats-server): the broker is not
 * there when the trace starts, comes up, is killed in the middle of an nginx + hey load and started again on
 * the same store. Every record of the output files arrives exactly once in the stream, in order (the message
 * ids are the files' chain values), and `carnot bom nats://…` reads them back. Bad input is one line, exit 2.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { numberedFiles } from "../../src/chain/rotation.ts";
import {
  freeTcpPort,
  makeSelfSignedCert,
  type RunningServer,
  startNginx,
  waitForTcp,
} from "../../src/lab/loopback.ts";
import { lastMetrics, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const NATS_SERVER = "/usr/sbin/nats-server";
const skip =
  traceSkipReason() ??
  (!existsSync(NATS_SERVER)
    ? "nats-server not installed (Debian package nats-server: make setup)"
    : Bun.which("hey") === null
      ? "hey not installed (make setup)"
      : null);
if (skip) console.warn(`skipping the export tests: ${skip}`);

const cli = (args: string[]) =>
  Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), ...args], { stdout: "pipe", stderr: "pipe" });

/** A nats-server with JetStream on 127.0.0.1:port, its store in `dir` (kept across restarts). */
async function startNats(port: number, dir: string): Promise<Bun.Subprocess> {
  const proc = Bun.spawn([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  await waitForTcp(port, 15_000, proc.exited);
  return proc;
}

/** Every message id on `subject`, in stream order. */
async function messageIds(port: number, subject: string): Promise<string[]> {
  const nc = await connect({ servers: `127.0.0.1:${port}` });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = await jsm.streams.find(subject);
    const info = await jsm.streams.info(stream);
    const ids: string[] = [];
    if (info.state.messages === 0) return ids;
    const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject });
    for await (const m of await consumer.consume()) {
      ids.push(m.headers?.get("Nats-Msg-Id") ?? "");
      if (m.seq >= info.state.last_seq) break;
    }
    return ids;
  } finally {
    await nc.close();
  }
}

async function streamCount(port: number, subject: string): Promise<number> {
  const nc = await connect({ servers: `127.0.0.1:${port}` });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(await jsm.streams.find(subject))).state.messages;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

const chainsOf = (path: string): string[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l).chain);

describe.skipIf(skip !== null)("carnot trace --export to NATS JetStream", () => {
  let dir = "";
  let nginx: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-export-"));
    nginx = await startNginx(join(dir, "nginx"), await makeSelfSignedCert(dir), { workers: 2 });
  });
  afterAll(async () => {
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("broker absent at start, killed and restarted mid-load: every record exactly once, in order", async () => {
    const port = freeTcpPort();
    const store = join(dir, "store");
    mkdirSync(store);
    const subject = `carnot.test.${port}`;
    const out = join(dir, "runtime.jsonl");
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--rotate-size",
      "256K",
      "--export",
      `nats://127.0.0.1:${port}/${subject}`,
    ]);
    let nats: Bun.Subprocess | null = null;
    try {
      const hey = (n: number) =>
        Bun.spawn(
          ["hey", "-n", String(n), "-c", "20", "-disable-keepalive", `https://127.0.0.1:${nginx.port}/`],
          {
            stdout: "pipe",
            stderr: "ignore",
          },
        );
      // records written while nothing listens stay in the file
      await hey(300).exited;
      await Bun.sleep(800);
      nats = await startNats(port, store);
      const load = hey(4000);
      await Bun.sleep(2500);
      nats.kill("SIGKILL");
      await nats.exited;
      const downAt = performance.now();
      await Bun.sleep(2000);
      const linesAtRestart = [...numberedFiles(out).map(([, p]) => p), out].reduce(
        (n, f) => n + chainsOf(f).length,
        0,
      );
      nats = await startNats(port, store);
      const upAt = performance.now();
      // how long until the stream holds what was written before the restart
      while ((await streamCount(port, subject)) < linesAtRestart && performance.now() - upAt < 30_000)
        await Bun.sleep(100);
      const recoveryMs = performance.now() - upAt;
      expect(await load.exited).toBe(0);
      expect(await new Response(load.stdout).text()).toMatch(/\[200\]\s+4000 responses/);
      await Bun.sleep(500);
      const stopped = await tracer.stop("SIGINT");
      expect(stopped.exitCode).toBe(0);

      const files = [...numberedFiles(out).map(([, p]) => p), out];
      const chains = files.flatMap(chainsOf);
      const ids = await messageIds(port, subject);
      console.log(
        `export: ${chains.length} records in ${files.length} files; broker down ${((upAt - downAt) / 1000).toFixed(1)} s; ` +
          `${linesAtRestart} records there again ${recoveryMs.toFixed(0)} ms after the restart; ${ids.length} messages in the stream`,
      );
      expect(chains.length).toBe(lastMetrics(stopped.stderr).handshakesEmitted!);
      expect(chains.length).toBeGreaterThanOrEqual(4300);
      expect(ids.length).toBe(chains.length);
      expect(ids).toEqual(chains);
      expect(new Set(ids).size).toBe(ids.length);
      // said while tracing (once per outage), and at the end
      expect(stopped.stderr).toContain(
        `carnot: warning: export: cannot reach nats://127.0.0.1:${port}/${subject}`,
      );
      expect(stopped.stderr).toContain(
        `carnot: export: ${chains.length} records acknowledged by nats://127.0.0.1:${port}/${subject}`,
      );
      expect(cli(["verify", ...files]).exitCode).toBe(0);

      // the stream read back as a BOM's input
      const bom = cli(["bom", `nats://127.0.0.1:${port}/${subject}`]);
      expect(bom.exitCode).toBe(0);
      expect(JSON.parse(bom.stdout.toString()).summary.observations).toBe(chains.length);
      // among other inputs: a stream and a file add up
      const both = cli(["bom", files[0]!, `nats://127.0.0.1:${port}/${subject}`]);
      expect(both.exitCode).toBe(0);
      expect(JSON.parse(both.stdout.toString()).summary.observations).toBe(
        chains.length + chainsOf(files[0]!).length,
      );
      // a stream nothing captures: one line, no document
      const none = cli(["bom", `nats://127.0.0.1:${port}/nothing.here`]);
      expect(none.exitCode).toBe(1);
      expect(none.stderr.toString()).toBe(
        `carnot: nats://127.0.0.1:${port}/nothing.here: no JetStream stream captures nothing.here\n`,
      );
      expect(none.stdout.toString()).toBe("");
    } finally {
      if (tracer.proc.exitCode === null) await tracer.stop("SIGKILL");
      nats?.kill("SIGTERM");
      await nats?.exited;
    }
  }, 240_000);

  test("a broker that never answers: the trace goes on, the end names what was not sent; exit 0", async () => {
    const port = freeTcpPort();
    const out = join(dir, "unsent.jsonl");
    const tracer = await startTracer([
      "--out",
      out,
      "--metrics-interval",
      "0",
      "--export",
      `nats://127.0.0.1:${port}/x`,
    ]);
    Bun.spawnSync(["hey", "-n", "50", "-c", "5", "-disable-keepalive", `https://127.0.0.1:${nginx.port}/`]);
    await Bun.sleep(500);
    const stopped = await tracer.stop("SIGINT");
    expect(stopped.exitCode).toBe(0);
    const lines = chainsOf(out).length;
    expect(lines).toBeGreaterThanOrEqual(50);
    const warnings = stopped.stderr.split("\n").filter((l) => l.includes("warning: export"));
    expect(warnings).toEqual([
      `carnot: warning: export: cannot reach nats://127.0.0.1:${port}/x: connection refused; the records stay in the output files and are sent once it answers`,
      `carnot: warning: export: ${lines} of ${lines} records not acknowledged by nats://127.0.0.1:${port}/x within 5 s; they stay in ${out} from line 1 on`,
    ]);
  }, 60_000);

  test("bad input: one line, exit 2, before anything is attached", () => {
    const cases: [string[], string][] = [
      [
        ["--out", join(dir, "a.jsonl"), "--export", "nats://127.0.0.1:4222/a.*"],
        'carnot: invalid --export "nats://127.0.0.1:4222/a.*": the subject must be dot-separated tokens of letters, digits, _ and - (expected nats://HOST:PORT/SUBJECT)',
      ],
      [
        ["--out", join(dir, "a.jsonl"), "--export", "http://127.0.0.1:4222/a"],
        'carnot: invalid --export "http://127.0.0.1:4222/a": not a nats:// address (expected nats://HOST:PORT/SUBJECT)',
      ],
      [
        ["--out", join(dir, "a.jsonl"), "--export", "nats://127.0.0.1:4222/"],
        'carnot: invalid --export "nats://127.0.0.1:4222/": the subject must be dot-separated tokens of letters, digits, _ and - (expected nats://HOST:PORT/SUBJECT)',
      ],
      [
        ["--export", "nats://127.0.0.1:4222/a"],
        "carnot: --export needs --out FILE: the records are sent from the file, which keeps them while the broker is away",
      ],
    ];
    for (const [flags, message] of cases) {
      const r = cli(["trace", ...flags]);
      expect({ exit: r.exitCode, stderr: r.stderr.toString().trim() }).toEqual({ exit: 2, stderr: message });
    }
  }, 60_000);
});
