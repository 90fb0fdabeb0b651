/**
 * `carnot trace` attributes each handshake to the host and to the cgroup its process was in, with the container
 * and pod the cgroup's path names: real TLS clients (curl and python through libssl and the wire, gnutls-cli
 * through the wire alone) run inside cgroups created here with the names container runtimes and the kubelet
 * give theirs. A process that moves between two handshakes has each line in the cgroup of its handshake; one that
 * moves during a handshake both sources saw, or whose cgroup is gone before its line is written, has null.
 * `--container ID` leaves every other process out, in the kernel, for both sources.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { readMachineId } from "../../../src/trace/attribution/host.ts";
import {
  makeSelfSignedCert,
  type RunningServer,
  runClient,
  startOpenSslServer,
  SYSTEM_PYTHON,
  type TlsCert,
} from "../../../src/lab/loopback.ts";
import type { ChainedObservation } from "../../../src/trace/observation.ts";
import { cgroupSkipReason, TestCgroups } from "../../support/cgroups.ts";
import { readObservations, startTracer, traceSkipReason } from "../../support/tracer.ts";

const skip = traceSkipReason() ?? cgroupSkipReason();
if (skip) console.warn(`skipping the attribution tests: ${skip}`);

/** Container ids: two start alike (a short id must be long enough to tell them apart). */
const A = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const A2 = "a1b2c3d4e5f6ffffffffffffffffffffffffffffffffffffffffffffffffffff";
const B = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const C = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const D = "d00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00d";
const E = "e1e2e3e4e5e6e7e8e9eaebecedeeeff0e1e2e3e4e5e6e7e8e9eaebecedeeeff0";
const POD = "7d3c2b1a-0f9e-4d8c-8b7a-6e5d4c3b2a19";
const POD2 = "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d";
const POD3 = "5f4e3d2c-1b0a-4987-a6b5-c4d3e2f1a0b9";
const slice = (uid: string) => uid.replaceAll("-", "_");

/** The keys of a line this test checks, for one readable comparison. */
const where = (r: ChainedObservation) => ({
  cgroup: r.cgroup,
  container_id: r.container_id,
  pod_uid: r.pod_uid,
});

/** Lines of the handshakes to or from server name `name` (the client's SNI, as either source saw it). */
const named = (lines: ChainedObservation[], name: string) =>
  lines.filter((r) => (r.server_name ?? r.sni) === name);

function curlIn(cgroups: TestCgroups, path: string, port: number, sni: string) {
  return runClient(
    cgroups.wrap(path, [
      "curl",
      "-sk",
      "--max-time",
      "10",
      "--resolve",
      `${sni}:${port}:127.0.0.1`,
      `https://${sni}:${port}/`,
    ]),
  );
}

function gnutlsIn(cgroups: TestCgroups, path: string, port: number, sni: string) {
  return runClient(
    cgroups.wrap(path, [
      "gnutls-cli",
      "--insecure",
      "--logfile=/dev/null",
      `--sni-hostname=${sni}`,
      "-p",
      String(port),
      "127.0.0.1",
    ]),
  );
}

/** python (the system's libssl): one handshake per SNI argument, saying "next" and waiting for a line between. */
const PY_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for i, sni in enumerate(sys.argv[2:]):
    if i > 0:
        print("next", flush=True); sys.stdin.readline()
    ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname=sni).close()
print("done", flush=True)
`;

/** A TLS server that says "hello" once a ClientHello has arrived and answers it only after a line on stdin. */
const PY_HOLDING_SERVER = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.recv(5, socket.MSG_PEEK)
print("hello", flush=True)
sys.stdin.readline()
ctx.wrap_socket(conn, server_side=True).close()
`;

/** A TCP server that accepts and never answers: handshakes started against it stay in progress. */
const PY_SILENT_SERVER = `
import socket, sys, threading
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
print(listener.getsockname()[1], flush=True)
held = []
def accept():
    while True:
        conn, _ = listener.accept(); held.append(conn)
        conn.recv(5, socket.MSG_PEEK); print("hello", flush=True)
threading.Thread(target=accept, daemon=True).start()
sys.stdin.readline()
`;

/** A process whose stdout lines can be awaited one by one. */
function spawnLines(cmd: string[]) {
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const lines: string[] = [];
  let buffered = "";
  const reading = (async () => {
    for await (const chunk of proc.stdout) {
      buffered += new TextDecoder().decode(chunk);
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      lines.push(...parts);
    }
  })();
  return {
    proc,
    async line(): Promise<string> {
      const deadline = Date.now() + 10_000;
      while (lines.length === 0) {
        if (Date.now() > deadline || proc.exitCode !== null)
          throw new Error(`${cmd.join(" ")}: no line (${await new Response(proc.stderr).text()})`);
        await Bun.sleep(10);
      }
      return lines.shift()!;
    },
    say(text: string) {
      proc.stdin.write(`${text}\n`);
      proc.stdin.flush();
    },
    async end() {
      proc.stdin.end();
      await proc.exited;
      await reading;
    },
  };
}

describe.skipIf(skip !== null)("attribution to the host, the cgroup, the container and the pod", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-attribution-"));
  const cgroups = skip === null ? new TestCgroups("trace") : (null as unknown as TestCgroups);
  const top = cgroups?.top;
  let cert: TlsCert;
  let server: RunningServer;
  beforeAll(async () => {
    cert = await makeSelfSignedCert(dir);
    server = await startOpenSslServer(cert);
  });
  afterAll(async () => {
    await server?.stop();
    cgroups?.removeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test("each line names its process's cgroup and the container and pod of every naming scheme", async () => {
    const cases = [
      ["docker.example", `${top}/system.slice/docker-${A}.scope`, A, null],
      ["docker-cgroupfs.example", `${top}/docker/${B}`, B, null],
      [
        "containerd.example",
        `${top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${slice(POD)}.slice/cri-containerd-${C}.scope`,
        C,
        POD,
      ],
      [
        "crio.example",
        `${top}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${slice(POD2)}.slice/crio-${D}.scope`,
        D,
        POD2,
      ],
      ["podman.example", `${top}/machine.slice/libpod-${E}.scope`, E, null],
      ["pod.example", `${top}/kubepods.slice/kubepods-pod${slice(POD3)}.slice`, null, POD3],
      ["service.example", `${top}/system.slice/app.service`, null, null],
    ] as const;
    for (const [, path] of cases) cgroups.make(path);
    const out = join(dir, "schemes.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    for (const [sni, path] of cases) expect((await curlIn(cgroups, path, server.port, sni)).exitCode).toBe(0);
    const gnutls = await gnutlsIn(
      cgroups,
      `${top}/machine.slice/libpod-${E}.scope`,
      server.port,
      "gnutls.example",
    );
    expect(gnutls.exitCode).toBe(0);
    await Bun.sleep(300);
    expect((await tracer.stop()).exitCode).toBe(0);
    const lines = readObservations(out);
    const machineId = readMachineId();
    for (const [sni, path, containerId, podUid] of cases) {
      const mine = named(lines, sni);
      // curl's line (both sources, joined) and the server's (openssl s_server, in the root cgroup)
      const client = mine.filter((r) => r.role === "client");
      expect(client.map((r) => [r.comm, r.observed_by, where(r)])).toEqual([
        ["curl", ["libssl", "wire"], { cgroup: path, container_id: containerId, pod_uid: podUid }],
      ]);
      for (const r of mine.filter((l) => l.role === "server" && l.pid === server.pid))
        expect(where(r)).toEqual({ cgroup: "/", container_id: null, pod_uid: null });
      for (const r of mine) expect([r.host, r.machine_id]).toEqual([hostname(), machineId]);
    }
    // the wire alone saw gnutls-cli's: its owner's cgroup
    const wireOnly = named(lines, "gnutls.example").filter((r) => r.role === "client");
    expect(wireOnly.map((r) => [r.observed_by, where(r)])).toEqual([
      [["wire"], { cgroup: `${top}/machine.slice/libpod-${E}.scope`, container_id: E, pod_uid: null }],
    ]);
  }, 60_000);

  test("a process that moves between two handshakes: each line has the cgroup it was in then", async () => {
    const first = `${top}/system.slice/docker-${A}.scope`;
    const second = `${top}/system.slice/docker-${B}.scope`;
    cgroups.make(first);
    cgroups.make(second);
    const out = join(dir, "moved-between.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    const client = spawnLines(
      cgroups.wrap(first, [
        SYSTEM_PYTHON,
        "-c",
        PY_CLIENT,
        String(server.port),
        "first.example",
        "second.example",
      ]),
    );
    expect(await client.line()).toBe("next");
    cgroups.move(client.proc.pid, second);
    client.say("go");
    expect(await client.line()).toBe("done");
    await client.end();
    await Bun.sleep(300);
    expect((await tracer.stop()).exitCode).toBe(0);
    const lines = readObservations(out).filter((r) => r.pid === client.proc.pid);
    expect(lines.map((r) => [r.sni, r.observed_by, r.container_id])).toEqual([
      ["first.example", ["libssl", "wire"], A],
      ["second.example", ["libssl", "wire"], B],
    ]);
  }, 60_000);

  test("moved during a handshake both sources saw (the wire at its first flight, libssl at its end): null", async () => {
    const before = `${top}/system.slice/docker-${C}.scope`;
    const after = `${top}/system.slice/docker-${D}.scope`;
    cgroups.make(before);
    cgroups.make(after);
    const out = join(dir, "moved-during.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    const holding = spawnLines([SYSTEM_PYTHON, "-c", PY_HOLDING_SERVER, cert.cert, cert.key]);
    const port = Number(await holding.line());
    const client = spawnLines(
      cgroups.wrap(before, [SYSTEM_PYTHON, "-c", PY_CLIENT, String(port), "moving.example"]),
    );
    expect(await holding.line()).toBe("hello");
    // the ClientHello is out (the wire learned its owner); the handshake ends once the server answers
    cgroups.move(client.proc.pid, after);
    holding.say("answer");
    expect(await client.line()).toBe("done");
    await Promise.all([client.end(), holding.end()]);
    await Bun.sleep(300);
    expect((await tracer.stop()).exitCode).toBe(0);
    const lines = readObservations(out).filter((r) => r.pid === client.proc.pid);
    expect(lines.map((r) => [r.sni, r.observed_by, where(r)])).toEqual([
      ["moving.example", ["libssl", "wire"], { cgroup: null, container_id: null, pod_uid: null }],
    ]);
  }, 60_000);

  test("a cgroup removed before the line of a handshake made in it is written: null, never another's", async () => {
    const gone = `${top}/system.slice/docker-${E}.scope`;
    const kept = `${top}/system.slice/docker-${C}.scope`;
    cgroups.make(gone);
    cgroups.make(kept);
    const out = join(dir, "gone.jsonl");
    const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
    const silent = spawnLines([SYSTEM_PYTHON, "-c", PY_SILENT_SERVER]);
    const port = Number(await silent.line());
    // two curls wait for an answer that never comes; their lines are written when the window (2 s) gives up
    const waiting = [gone, kept].map((path, i) =>
      Bun.spawn(
        cgroups.wrap(path, [
          "curl",
          "-sk",
          "--resolve",
          `c${i}.example:${port}:127.0.0.1`,
          `https://c${i}.example:${port}/`,
        ]),
        {
          stdout: "ignore",
          stderr: "ignore",
        },
      ),
    );
    expect(await silent.line()).toBe("hello");
    expect(await silent.line()).toBe("hello");
    // the one in `gone` leaves it (a cgroup with a process cannot be removed), then the cgroup goes
    cgroups.remove(gone);
    for (const p of waiting) p.kill("SIGKILL");
    await Promise.all(waiting.map((p) => p.exited));
    await Bun.sleep(3500);
    await silent.end();
    expect((await tracer.stop()).exitCode).toBe(0);
    // the clients' lines (the silent server's side, never seen sending, has no owner and so no cgroup)
    const lines = readObservations(out).filter((r) => r.role === "client");
    expect(named(lines, "c0.example").map((r) => [r.error, where(r)])).toEqual([
      ["timeout", { cgroup: null, container_id: null, pod_uid: null }],
    ]);
    expect(named(lines, "c1.example").map((r) => [r.error, where(r)])).toEqual([
      ["timeout", { cgroup: kept, container_id: C, pod_uid: null }],
    ]);
  }, 60_000);

  test("--container ID: only that container's processes, its cgroups made later included, in the kernel", async () => {
    const mine = `${top}/system.slice/docker-${A}.scope`;
    const alike = `${top}/system.slice/docker-${A2}.scope`;
    const other = `${top}/system.slice/docker-${B}.scope`;
    for (const path of [mine, alike, other]) cgroups.make(path);
    const out = join(dir, "container.jsonl");
    const metrics = join(dir, "container-metrics.json");
    const tracer = await startTracer([
      "-o",
      out,
      "--metrics-interval",
      "0",
      "--metrics-json",
      metrics,
      "--container",
      A.slice(0, 13),
    ]);
    // the ready line says which container the start of its id named
    expect(tracer.stderr()).toMatch(
      new RegExp(`carnot: ready: .*, only container ${A} \\(cgroup ${mine}\\), attached`),
    );
    // a cgroup the container makes after the trace started is its own too
    const below = `${mine}/worker`;
    cgroups.make(below);
    const runs = [
      await curlIn(cgroups, below, server.port, "mine.example"),
      await gnutlsIn(cgroups, mine, server.port, "mine-gnutls.example"),
      await curlIn(cgroups, alike, server.port, "alike.example"),
      await curlIn(cgroups, other, server.port, "other.example"),
      await gnutlsIn(cgroups, other, server.port, "other-gnutls.example"),
      await runClient([
        "curl",
        "-sk",
        "--resolve",
        `root.example:${server.port}:127.0.0.1`,
        `https://root.example:${server.port}/`,
      ]),
    ];
    for (const run of runs) expect(run.exitCode).toBe(0);
    await Bun.sleep(300);
    const stopped = await tracer.stop();
    expect(stopped.exitCode).toBe(0);
    const lines = readObservations(out);
    // the server (in the root cgroup) is left out as well: only the two clients in the container remain
    expect(
      lines.map((r) => [r.server_name ?? r.sni, r.comm, r.observed_by, r.cgroup, r.container_id]),
    ).toEqual([
      ["mine.example", "curl", ["libssl", "wire"], below, A],
      ["mine-gnutls.example", "gnutls-cli", ["wire"], mine, A],
    ]);
    const m = JSON.parse(readFileSync(metrics, "utf8"));
    // the wire program dropped the other connections itself: both sides of four, and the server's of two
    expect(m.wire.filtered).toBeGreaterThanOrEqual(10);
    // the probes sent only the container's curl's events (its announcement, SNI, handshake, SSL_free)
    expect(m.libssl.events).toBeLessThanOrEqual(6);
  }, 60_000);

  test("--container with an id no cgroup names, or that several containers start with: one line, exit 2", async () => {
    cgroups.make(`${top}/system.slice/docker-${A}.scope`);
    cgroups.make(`${top}/system.slice/docker-${A2}.scope`);
    const cli = join(import.meta.dir, "..", "..", "..", "src", "cli.ts");
    for (const [id, message] of [
      [
        "f00d",
        /^carnot: --container f00d: no cgroup under \S+ names this container; its cgroup is looked up at start, so a container started later is not traced: start the trace after it\n$/,
      ],
      [
        "a1b2c3d4e5f6",
        /^carnot: --container a1b2c3d4e5f6: ambiguous: 2 containers start with it \(a1b2c3d4e5f6, a1b2c3d4e5f6\)\n$/,
      ],
      ["not-an-id", /^carnot: --container not-an-id: not a container id/],
    ] as const) {
      const run = Bun.spawnSync(
        [process.execPath, cli, "trace", "--container", id, "-o", join(dir, "never.jsonl")],
        {
          stderr: "pipe",
        },
      );
      expect([run.exitCode, run.stderr.toString()]).toEqual([2, expect.stringMatching(message)]);
    }
  }, 60_000);
});
