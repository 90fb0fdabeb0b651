/**
 * Another tracer on the same functions: Debian's bcc `sslsniff-bpfcc -l --handshake` holds uprobes on libssl's
 * SSL_write, SSL_read and SSL_do_handshake with a ref_ctr_offset, and the kernel refuses a second uprobe at
 * such a place with another one. `carnot trace` says so in one warning — the function, the kernel's reason and
 * the other holder — attaches every other probe and traces with them: curl's handshake (through SSL_connect)
 * and s_server's (seen at SSL_get_error) are both lines, with their SNI, cipher and groups.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { curl, makeSelfSignedCert, type RunningServer, startOpenSslServer } from "../../src/lab/loopback.ts";
import { indexGroups } from "../../src/trace/groups.ts";
import type { CalibrationResult } from "../../src/trace/libssl/calibration/calibrate.ts";
import { definedFunctions, findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { libraryFacts } from "../../src/trace/sources.ts";
import { bccSetup } from "../support/bcc.ts";
import { readObservations, startTracer, traceSkipReason } from "../support/tracer.ts";

const SSLSNIFF = "sslsniff-bpfcc";
const bcc =
  Bun.which(SSLSNIFF) === null ? `${SSLSNIFF} not installed (Debian package bpfcc-tools)` : bccSetup();
const skip = traceSkipReason() ?? (typeof bcc === "string" ? bcc : null);
if (skip) console.warn(`skipping the other-tracer test: ${skip}`);

/** Whether `pid` holds a perf-event uprobe on `lib` at file offset `offset` (bpftool perf list). */
function uprobeHeld(pid: number, lib: string, offset: number): boolean {
  const res = Bun.spawnSync(["bpftool", "perf", "list"], { stdout: "pipe", stderr: "ignore" });
  const name = lib.split("/").pop()!;
  return res.stdout
    .toString()
    .split("\n")
    .some(
      (l) =>
        l.startsWith(`pid ${pid} `) &&
        l.includes(`/${name}`) &&
        l.includes(`offset ${offset}`) &&
        /\buprobe\b/.test(l),
    );
}

test("without a probe on a group setter, the library's default groups are not offered as what was offered", () => {
  const calibrated = {
    calibration: { openssl: "OpenSSL 3.0.19 1 Jan 2026", ciphers: {}, defaultGroups: [29, 23] },
    problem: null,
    cached: true,
  } as unknown as CalibrationResult;
  const groups = indexGroups();
  expect(libraryFacts("/lib/libssl.so.3", calibrated, groups, []).defaultGroups).toEqual([
    "X25519",
    "secp256r1",
  ]);
  for (const setter of ["SSL_ctrl", "SSL_CTX_ctrl"])
    expect(libraryFacts("/lib/libssl.so.3", calibrated, groups, [setter]).defaultGroups).toBeNull();
  expect(libraryFacts("/lib/libssl.so.3", calibrated, groups, ["SSL_do_handshake"]).defaultGroups).toEqual([
    "X25519",
    "secp256r1",
  ]);
});

/**
 * Processes holding uprobe_multi links (other tracers, such as another carnot): while one probes
 * SSL_do_handshake, the kernel keeps its ref_ctr_offset (0) for that place and refuses sslsniff's instead.
 */
function otherUprobeHolders(): string[] {
  const holders: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d))) {
    try {
      const infos = readdirSync(`/proc/${pid}/fdinfo`).map((fd) =>
        readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"),
      );
      if (infos.some((info) => /^link_type:\s*uprobe_multi$/m.test(info)))
        holders.push(`pid ${pid} (${readFileSync(`/proc/${pid}/comm`, "utf8").trim()})`);
    } catch {}
  }
  return holders;
}

/** How many times the kernel has logged a refused uprobe (a second one with another ref_ctr_offset). */
function mismatchesLogged(): number {
  const log = Bun.spawnSync(["dmesg"], { stdout: "pipe", stderr: "ignore" }).stdout.toString();
  return log.split("\n").filter((l) => l.includes("ref_ctr_offset mismatch")).length;
}

describe.skipIf(skip !== null)("another tracer on the same functions", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-other-"));
  const lib = findSystemLibssl()!;
  let server: RunningServer;
  let sniff: Bun.Subprocess<"ignore", "ignore", "pipe"> | null = null;

  /** sslsniff-bpfcc -l --handshake, once its uprobe on SSL_do_handshake is in place. */
  async function startSslsniff(): Promise<Bun.Subprocess<"ignore", "ignore", "pipe">> {
    const setup = bcc as Exclude<typeof bcc, string>;
    const proc = Bun.spawn([SSLSNIFF, "-l", "--handshake"], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, ...setup.env },
    });
    const offset = definedFunctions(lib).get("SSL_do_handshake")!;
    const deadline = Date.now() + 90_000;
    while (!uprobeHeld(proc.pid, lib, offset)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        const err = await new Response(proc.stderr).text();
        throw new Error(`${SSLSNIFF} did not attach: ${err.trim().split("\n").slice(-3).join(" | ")}`);
      }
      await Bun.sleep(250);
    }
    return proc;
  }

  async function stopSslsniff(): Promise<void> {
    if (sniff && sniff.exitCode === null) {
      sniff.kill("SIGINT");
      await Promise.race([sniff.exited, Bun.sleep(5000)]);
      if (sniff.exitCode === null) sniff.kill("SIGKILL");
      await sniff.exited;
    }
    sniff = null;
  }

  beforeAll(async () => {
    server = await startOpenSslServer(await makeSelfSignedCert(dir));
  });
  afterAll(async () => {
    await stopSslsniff();
    await server?.stop();
    if (typeof bcc !== "string") bcc.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("one warning naming SSL_do_handshake, the kernel's reason and sslsniff; the rest attached, handshakes traced", async () => {
    // Debian's python binding declares bpf_attach_uprobe without its last argument, so the ref_ctr_offset
    // sslsniff passes is whatever the stack held (0x6 here). The kernel keeps the ref_ctr_offset of whoever
    // registered a place first: sslsniff must come first, so other tracers on the host are waited for, and
    // sslsniff is started again until the kernel's log shows it refusing carnot.
    const out = join(dir, "out.jsonl");
    for (let round = 1; ; round++) {
      const deadline = Date.now() + 120_000;
      while (otherUprobeHolders().length > 0 && Date.now() < deadline) await Bun.sleep(500);
      sniff = await startSslsniff();
      const logged = mismatchesLogged();
      const tracer = await startTracer(["-o", out, "--metrics-interval", "0"]);
      let stopped: Awaited<ReturnType<typeof tracer.stop>> | null = null;
      try {
        const warnings = tracer
          .stderr()
          .split("\n")
          .filter((l) => l.includes("warning"));
        if (warnings.length === 0) {
          // carnot saw no conflict: neither may the kernel have
          expect(mismatchesLogged()).toBe(logged);
          if (round < 5) continue;
          throw new Error(
            `${SSLSNIFF} held no conflicting uprobe in ${round} runs (other holders: ${otherUprobeHolders().join(", ") || "none"})`,
          );
        }
        expect(mismatchesLogged()).toBeGreaterThan(logged);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(
          new RegExp(
            `^carnot: warning: ${lib.replace(/[.]/g, "\\.")} \\(OpenSSL [0-9.]+\\): not probed — SSL_do_handshake: ` +
              "Invalid argument \\(the kernel: ref_ctr_offset mismatch, another uprobe there has 0x[0-9a-f]+; " +
              `held by pid ${sniff.pid} \\(${SSLSNIFF}\\)\\); tracing with the other probes`,
          ),
        );
        const client = await curl(server.port, "beside-sslsniff.example");
        await Bun.sleep(300);
        stopped = await tracer.stop();
        expect(stopped.exitCode).toBe(0);
        const records = readObservations(out);
        const mine = records.filter((r) => r.pid === client.pid);
        expect(mine.map((r) => [r.sni, r.role, r.handshake_success, r.cipher])).toEqual([
          ["beside-sslsniff.example", "client", true, "TLS_AES_256_GCM_SHA384"],
        ]);
        expect(mine[0]!.groups_offered[0]).toBe("X25519");
        const served = records.filter((r) => r.pid === server.pid);
        expect(served.map((r) => [r.role, r.handshake_success])).toEqual([["server", true]]);
        console.log(`the conflict after ${round} start(s) of ${SSLSNIFF}`);
        return;
      } finally {
        if (stopped === null) await tracer.stop();
        await stopSslsniff();
      }
    }
  }, 600_000);
});
