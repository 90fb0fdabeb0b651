/**
 * `exe` is the executable the kernel saw at the process's first event, so a short-lived client has it too
 * (curl is gone long before its line is written); it is null when it cannot be known — a program run from a
 * file deleted meanwhile, a path too long to take in the kernel — never a guess, also while the process still
 * runs when its line is written; a mount point on the way is crossed (a tmpfs in a private mount namespace).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  curl,
  makeSelfSignedCert,
  type RunningServer,
  startOpenSslServer,
  SYSTEM_PYTHON,
} from "../../src/lab/loopback.ts";
import { readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping the exe tests: ${skip}`);

/** One TLS handshake from python (after a line on stdin when `waitForLine`), then a second of life. */
function handshakeScript(sni: string, waitForLine: boolean): string {
  return `
import socket, ssl, sys, time
${waitForLine ? "sys.stdin.readline()" : ""}
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="${sni}").close()
time.sleep(1)
`;
}

describe.skipIf(skip !== null)("exe, taken in the kernel", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-exe-"));
  let server: RunningServer;
  beforeAll(async () => {
    server = await startOpenSslServer(await makeSelfSignedCert(dir));
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("curl, gone before its line is read, has exe /usr/bin/curl", async () => {
    const out = join(dir, "curl.jsonl");
    const tracer = await startTracer(["-o", out, "--comm", "curl", "--metrics-interval", "0"]);
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await curl(server.port, `c${i}.example`));
    await Bun.sleep(200);
    expect((await tracer.stop()).exitCode).toBe(0);
    const pids = new Set(clients.map((c) => c.pid));
    const lines = readObservations(out).filter((r) => r.pid !== null && pids.has(r.pid));
    expect(lines.map((r) => [r.sni, r.exe])).toEqual([
      ["c0.example", "/usr/bin/curl"],
      ["c1.example", "/usr/bin/curl"],
      ["c2.example", "/usr/bin/curl"],
    ]);
  }, 30_000);

  test("a program run from a file deleted before its handshake: exe null, the line still written", async () => {
    const copy = join(dir, "python-deleted");
    copyFileSync(SYSTEM_PYTHON, copy);
    const out = join(dir, "deleted.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    // the handshake waits for a line on stdin: the file is gone by then (and the process outlives its line)
    const proc = Bun.spawn([copy, "-c", handshakeScript("deleted.example", true), String(server.port)], {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, PYTHONHOME: "/usr" },
    });
    await Bun.sleep(300);
    unlinkSync(copy);
    proc.stdin.write("go\n");
    proc.stdin.end();
    expect(await proc.exited).toBe(0);
    expect((await tracer.stop()).exitCode).toBe(0);
    const mine = readObservations(out).filter((r) => r.pid === proc.pid);
    expect(mine.map((r) => [r.sni, r.handshake_success, r.exe])).toEqual([["deleted.example", true, null]]);
  }, 30_000);

  test("a path too long to take in the kernel: exe null, not cut short", async () => {
    let deep = dir;
    while (deep.length < 300) deep = join(deep, "a-long-directory-name");
    mkdirSync(deep, { recursive: true });
    const copy = join(deep, "python3");
    copyFileSync(SYSTEM_PYTHON, copy);
    const out = join(dir, "deep.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    const proc = Bun.spawn([copy, "-c", handshakeScript("deep.example", false), String(server.port)], {
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, PYTHONHOME: "/usr" },
    });
    expect(await proc.exited).toBe(0);
    expect((await tracer.stop()).exitCode).toBe(0);
    const mine = readObservations(out).filter((r) => r.pid === proc.pid);
    expect(mine.map((r) => [r.sni, r.exe])).toEqual([["deep.example", null]]);
  }, 30_000);

  test.skipIf(Bun.which("unshare") === null)(
    "a mount point on the way is crossed: curl copied onto a tmpfs in a private mount namespace",
    async () => {
      const mnt = join(dir, "mnt");
      mkdirSync(mnt);
      const out = join(dir, "mount.jsonl");
      const tracer = await startTracer(["-o", out, "--comm", "curl", "--metrics-interval", "0"]);
      const script = [
        `mount -t tmpfs carnot-test ${mnt}`,
        `cp /usr/bin/curl ${mnt}/curl`,
        `exec ${mnt}/curl -sk --resolve mnt.example:${server.port}:127.0.0.1 https://mnt.example:${server.port}/`,
      ].join(" && ");
      const res = Bun.spawnSync(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], {
        stdout: "ignore",
        stderr: "pipe",
      });
      expect(res.stderr.toString()).toBe("");
      await Bun.sleep(200);
      expect((await tracer.stop()).exitCode).toBe(0);
      const mine = readObservations(out).filter((r) => r.sni === "mnt.example");
      expect(mine.map((r) => r.exe)).toEqual([`${mnt}/curl`]);
    },
    30_000,
  );
});
