/**
 * End to end, as root: `carnot trace --source libssl` (from source) attached to the system libssl while real clients (curl,
 * the system python3) make real handshakes with real servers (nginx, openssl s_server) on 127.0.0.1.
 * Every observation is checked against the published schema; assertions look only at the processes this
 * test started (other tracers or TLS users on the machine do not disturb them).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChainedObservation } from "../../src/trace/observation.ts";
import {
  type ClientResult,
  childPids,
  curl,
  makeSelfSignedCert,
  type PythonHandshake,
  type PythonThreadSpec,
  pythonClient,
  type RunningServer,
  startNginx,
  startOpenSslServer,
} from "../../src/lab/loopback.ts";
import { lastMetrics, readObservations, REPO, startTracer, traceSkipReason } from "../support/tracer.ts";

const skip = traceSkipReason();
if (skip) console.warn(`skipping carnot trace end-to-end tests: ${skip}`);

/** 50 distinct ordered groups lists: permutations of three of five groups every server here supports. */
function groupLists(n: number): { list: string; canonical: string[] }[] {
  const names: [string, string][] = [
    ["X25519", "X25519"],
    ["P-256", "secp256r1"],
    ["P-384", "secp384r1"],
    ["P-521", "secp521r1"],
    ["X448", "X448"],
  ];
  const out: { list: string; canonical: string[] }[] = [];
  for (const a of names)
    for (const b of names)
      for (const c of names) {
        if (a === b || b === c || a === c) continue;
        out.push({ list: `${a[0]}:${b[0]}:${c[0]}`, canonical: [a[1], b[1], c[1]] });
      }
  return out.slice(0, n);
}

const THREADS = 50;
const PER_THREAD = 4;

describe.skipIf(skip !== null)("carnot trace with real servers and clients", () => {
  let dir = "";
  let nginx: RunningServer;
  let strictNginx: RunningServer;
  let sServer: RunningServer;
  let records: ChainedObservation[] = [];
  let stderr = "";
  let exitCode = -1;
  let out = "";
  const runs: {
    curlNginx?: ClientResult;
    curlSServer?: ClientResult;
    pyThreads?: { pid: number; handshakes: PythonHandshake[] };
    pyFailures?: { pid: number; handshakes: PythonHandshake[] };
    threadSpecs: PythonThreadSpec[];
    nginxWorkers: number[];
    strictWorkers: number[];
    startedMs: number;
    stoppedMs: number;
  } = { threadSpecs: [], nginxWorkers: [], strictWorkers: [], startedMs: 0, stoppedMs: 0 };
  const lists = groupLists(THREADS);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-e2e-"));
    const cert = await makeSelfSignedCert(dir);
    nginx = await startNginx(join(dir, "nginx-a"), cert, { workers: 1 });
    strictNginx = await startNginx(join(dir, "nginx-b"), cert, {
      workers: 1,
      protocols: "TLSv1.3",
      groups: "X448",
    });
    sServer = await startOpenSslServer(cert);
    out = join(dir, "runtime.jsonl");
    const tracer = await startTracer(["--out", out, "--metrics-interval", "1", "--source", "libssl"]);
    runs.startedMs = Date.now();

    runs.curlNginx = await curl(nginx.port, "curl.example", { groups: "X25519:P-256" });
    runs.curlSServer = await curl(sServer.port, "curl-s.example");
    runs.threadSpecs = lists.map((g, i) => ({
      sni: `t${i}.example`,
      groups: g.list,
      on: i % 2 === 0 ? "connection" : "context",
      count: PER_THREAD,
    }));
    runs.pyThreads = await pythonClient(nginx.port, runs.threadSpecs);
    // refused by the server: wrong protocol version, and no common group
    runs.pyFailures = await pythonClient(strictNginx.port, [
      { sni: "old-version.example", groups: null, on: "context", count: 1, maxVersion: "TLSv1_2" },
      { sni: "no-common-group.example", groups: "P-256", on: "connection", count: 1 },
    ]);
    runs.nginxWorkers = await childPids(nginx.pid);
    runs.strictWorkers = await childPids(strictNginx.pid);
    await Bun.sleep(300); // the last SSL_free calls
    const stopped = await tracer.stop("SIGINT");
    runs.stoppedMs = Date.now();
    stderr = stopped.stderr;
    exitCode = stopped.exitCode;
    records = readObservations(out);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([nginx?.stop(), strictNginx?.stop(), sServer?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const byPid = (pids: number[]) => records.filter((r) => r.pid !== null && pids.includes(r.pid));

  test("the tracer exits 0 after SIGINT, with every record valid, sealed and intact", async () => {
    expect(exitCode).toBe(0);
    expect(records.length).toBeGreaterThan(0);
    expect(existsSync(`${out}.seal.json`)).toBe(true);
    const verify = Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), "verify", out]);
    expect(verify.stdout.toString()).toStartWith("ok:");
    expect(verify.exitCode).toBe(0);
    const m = lastMetrics(stderr);
    expect(m.kernel_drops).toBe(0);
    expect(m.eventsReceived).toBeGreaterThan(0);
    expect(m.handshakesEmitted).toBeGreaterThanOrEqual(records.length);
  });

  test("curl → nginx: the client line has curl's SNI and --curves groups, the server line is nginx's", () => {
    expect(runs.curlNginx?.stdout).toBe("ok\n");
    const lines = byPid([runs.curlNginx!.pid]);
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      sni: "curl.example",
      groups_offered: ["X25519", "secp256r1"],
      groups_source: "context",
      handshake_success: true,
      role: "client",
      comm: "curl",
      error: null,
    });
    expect(line.library).toMatch(/libssl\.so\.3 \(OpenSSL 3\.\d+\.\d+/);
    expect(line.duration_us).toBeGreaterThan(0);
    const t = Date.parse(line.time);
    expect(t).toBeGreaterThanOrEqual(runs.startedMs - 1);
    expect(t).toBeLessThanOrEqual(runs.stoppedMs + 1);
  });

  test("curl → openssl s_server: one client line with its SNI", () => {
    expect(runs.curlSServer?.exitCode).toBe(0);
    const lines = byPid([runs.curlSServer!.pid]);
    expect(lines.map((l) => [l.sni, l.role, l.handshake_success])).toEqual([
      ["curl-s.example", "client", true],
    ]);
  });

  test("50 python threads, each with its own SNI and groups: every line carries exactly its own", () => {
    const py = runs.pyThreads!;
    expect(py.handshakes.filter((h) => h.ok)).toHaveLength(THREADS * PER_THREAD);
    const lines = byPid([py.pid]);
    expect(lines).toHaveLength(THREADS * PER_THREAD);
    const expected = new Map(
      runs.threadSpecs.map((s, i) => [s.sni, { groups: lists[i]!.canonical, source: s.on }] as const),
    );
    const perSni = new Map<string, number>();
    for (const line of lines) {
      expect(line.sni).not.toBeNull();
      const want = expected.get(line.sni!);
      expect(want).toBeDefined();
      expect({ sni: line.sni, groups: line.groups_offered, source: line.groups_source }).toEqual({
        sni: line.sni,
        groups: want!.groups,
        source: want!.source,
      });
      expect(line).toMatchObject({ handshake_success: true, role: "client", error: null });
      perSni.set(line.sni!, (perSni.get(line.sni!) ?? 0) + 1);
    }
    expect([...perSni.values()]).toEqual(new Array(THREADS).fill(PER_THREAD));
  });

  test("non-blocking nginx: one server line per handshake, all successful", () => {
    const lines = byPid(runs.nginxWorkers);
    const expected = 1 + THREADS * PER_THREAD; // curl + python
    expect(lines).toHaveLength(expected);
    expect(lines.every((l) => l.handshake_success && l.role === "server" && l.error === null)).toBe(true);
    expect(lines.every((l) => l.comm === "nginx")).toBe(true);
    // nginx reuses freed SSL* addresses: many lines, few pointers, never a mixed-up line
    expect(new Set(lines.map((l) => l.ssl_ptr)).size).toBeLessThan(expected);
  });

  test("refused handshakes (wrong protocol version, no common group) are handshake_success false", () => {
    const py = runs.pyFailures!;
    expect(py.handshakes.every((h) => !h.ok)).toBe(true);
    const client = byPid([py.pid]);
    expect(client.map((l) => [l.sni, l.handshake_success, l.role]).sort()).toEqual([
      ["no-common-group.example", false, "client"],
      ["old-version.example", false, "client"],
    ]);
    expect(client.every((l) => l.error !== null)).toBe(true);
    expect(client.find((l) => l.sni === "no-common-group.example")?.groups_offered).toEqual(["secp256r1"]);
    const server = byPid(runs.strictWorkers);
    expect(server).toHaveLength(2);
    expect(server.every((l) => !l.handshake_success && l.role === "server" && l.error !== null)).toBe(true);
  });
});
