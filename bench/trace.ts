/**
 * nginx TLS handshake throughput with and without `carnot trace`, side by side in one run:
 *   hey -n 5000 -c 50 -disable-keepalive https://127.0.0.1:PORT/
 * alternating untraced and traced rounds (A B A … B A; a traced round against the mean of its two neighbours).
 * Each traced round must give exactly 5,000 server-side observations,
 * 0 kernel drops, 0 correlation timeouts. Prints throughput ratio, tracer CPU and peak RSS, attach time and
 * exit time after SIGINT; exits 1 when a target is missed. Needs root. Run: `make bench` or `bun bench/trace.ts`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, makeSelfSignedCert, startNginx } from "../src/lab/loopback.ts";
import { COMPILED, readObservations, startTracer } from "../test/support/tracer.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 5000);
const CONCURRENCY = 50;
/**
 * Handshakes traced before the measured ones (not timed): BENCH_WARMUP_REQUESTS=20000 measures a tracer whose
 * JIT has settled, as a long-running trace is; 0 (default) measures a fresh one, warm-up included.
 */
const WARMUP = Number(process.env.BENCH_WARMUP_REQUESTS ?? 0);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
/** extra tracer arguments, e.g. BENCH_TRACE_ARGS=--raw-events to compare with per-call kernel events */
const TRACE_ARGS = (process.env.BENCH_TRACE_ARGS ?? "").split(" ").filter((a) => a !== "");
const CLOCK_TICKS = 100; // USER_HZ on Linux

interface Round {
  baselineRps: number;
  tracedRps: number;
  /** nginx worker CPU per handshake (µs): load on the machine does not change it, probe traps do */
  baselineNginxUs: number;
  tracedNginxUs: number;
  /** hey's own CPU per handshake (µs): the client shares the machine's 2 cores with nginx and the tracer */
  baselineHeyUs: number;
  tracedHeyUs: number;
  /** tracer CPU per handshake while hey ran (µs): what competes with hey and nginx for the cores */
  tracerRunUs: number;
  /** 1-minute load average at the end of the round (other work on the machine) */
  load: number;
  observations: number;
  failed: number;
  drops: number;
  timeouts: number;
  eventsReceived: number;
  cpuS: number;
  peakRssMb: number;
  attachMs: number;
  readyMs: number;
  exitMs: number;
}

/** hey's requests/s and its own CPU time in seconds. */
function hey(port: number, requests = REQUESTS): { rps: number; cpuS: number } {
  const res = Bun.spawnSync(
    [
      "hey",
      "-n",
      String(requests),
      "-c",
      String(CONCURRENCY),
      "-disable-keepalive",
      `https://127.0.0.1:${port}/`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const text = res.stdout.toString();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text)?.[1];
  const ok = /\[200\]\s+(\d+) responses/.exec(text)?.[1];
  if (res.exitCode !== 0 || !rps || Number(ok) !== requests) {
    throw new Error(`hey failed (exit ${res.exitCode}, ${ok ?? 0} × 200): ${res.stderr.toString().trim()}`);
  }
  const cpuUs = res.resourceUsage?.cpuTime.total ?? 0n;
  return { rps: Number(rps), cpuS: Number(cpuUs) / 1e6 };
}

/** utime + stime of processes, in seconds. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]); // fields 14, 15 of stat(5)
  }
  return ticks / CLOCK_TICKS;
}

/** hey's requests/s and the CPU the nginx workers, hey and `others` (the tracer) spent per handshake, in µs. */
function measured(
  port: number,
  workers: number[],
  others: number[] = [],
): { rps: number; nginxUs: number; heyUs: number; othersUs: number } {
  const before = cpuSeconds(workers);
  const othersBefore = cpuSeconds(others);
  const { rps, cpuS } = hey(port);
  return {
    rps,
    nginxUs: ((cpuSeconds(workers) - before) * 1e6) / REQUESTS,
    heyUs: (cpuS * 1e6) / REQUESTS,
    othersUs: ((cpuSeconds(others) - othersBefore) * 1e6) / REQUESTS,
  };
}

const loadAverage = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);

/** utime + stime in seconds and VmHWM in MB of a live process. */
function usage(pid: number): { cpuS: number; peakRssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuS = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // fields 14, 15 of stat(5)
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwmKb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
  return { cpuS, peakRssMb: hwmKb / 1024 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

if (process.getuid?.() !== 0) {
  console.error("bench/trace.ts needs root (BPF uprobes)");
  process.exit(2);
}
/**
 * The tracer measured: BENCH_BINARY (another build, e.g. the commit before a change, to compare in one sitting:
 * its records are read for pid and outcome only, whatever else its version writes), else ./carnot when built.
 */
const OTHER_BINARY = process.env.BENCH_BINARY;
const binary = OTHER_BINARY ?? (existsSync(COMPILED) ? COMPILED : undefined);
const records = (path: string): { pid: number | null; handshake_success: boolean | null }[] =>
  OTHER_BINARY === undefined
    ? readObservations(path)
    : readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
const binaryName = OTHER_BINARY ?? (binary ? "compiled ./carnot" : "bun src/cli.ts");
const dir = mkdtempSync(join(tmpdir(), "carnot-bench-"));
const cert = await makeSelfSignedCert(dir);
const nginx = await startNginx(join(dir, "nginx"), cert, { workers: 1 });
const rounds: Round[] = [];
try {
  hey(nginx.port); // warm-up: first connections, page cache, CPU frequency
  const workers = await childPids(nginx.pid);
  // A B A B … A: each traced round is compared with the mean of the untraced rounds just before and after it,
  // so a drift of the shared machine's speed (other guests on the host) weighs on both sides alike
  let before = measured(nginx.port, workers);
  for (let i = 0; i < ROUNDS; i++) {
    const out = join(dir, `runtime-${i}.jsonl`);
    const metricsPath = join(dir, `metrics-${i}.json`);
    const t0 = performance.now();
    const tracer = await startTracer(
      ["--out", out, "--metrics-json", metricsPath, "--metrics-interval", "0", ...TRACE_ARGS],
      {
        binary,
      },
    );
    const readyMs = performance.now() - t0;
    const attachMs = Number(/attached in (\d+) ms/.exec(tracer.stderr())?.[1] ?? Number.NaN);
    if (WARMUP > 0) hey(nginx.port, WARMUP);
    const traced = measured(nginx.port, workers, [tracer.proc.pid]);
    await Bun.sleep(100); // the last SSL_free calls
    const { cpuS, peakRssMb } = usage(tracer.proc.pid);
    const stopped = await tracer.stop("SIGINT");
    if (stopped.exitCode !== 0) throw new Error(`tracer exited ${stopped.exitCode}: ${stopped.stderr}`);
    // the warm-up handshakes come first in the file
    const server = records(out)
      .filter((r) => r.pid !== null && workers.includes(r.pid))
      .slice(WARMUP);
    const metrics = JSON.parse(readFileSync(metricsPath, "utf8"));
    const after = measured(nginx.port, workers);
    const mean = (k: "rps" | "nginxUs" | "heyUs") => (before[k] + after[k]) / 2;
    const baseline = { rps: mean("rps"), nginxUs: mean("nginxUs"), heyUs: mean("heyUs") };
    const untraced = [before.rps, after.rps];
    before = after;
    rounds.push({
      baselineRps: baseline.rps,
      tracedRps: traced.rps,
      baselineNginxUs: baseline.nginxUs,
      tracedNginxUs: traced.nginxUs,
      baselineHeyUs: baseline.heyUs,
      tracedHeyUs: traced.heyUs,
      tracerRunUs: traced.othersUs,
      load: loadAverage(),
      observations: server.length,
      failed: server.filter((r) => !r.handshake_success).length,
      drops: metrics.kernel_drops,
      timeouts: metrics.correlationTimeouts,
      eventsReceived: metrics.eventsReceived - WARMUP,
      cpuS,
      peakRssMb,
      attachMs,
      readyMs,
      exitMs: stopped.exitMs,
    });
    const r = rounds[rounds.length - 1]!;
    console.log(
      `round ${i + 1}: without ${r.baselineRps.toFixed(0)} req/s (${untraced.map((x) => x.toFixed(0)).join(" before, ")} after), ` +
        `with ${r.tracedRps.toFixed(0)} req/s ` +
        `(ratio ${(r.tracedRps / r.baselineRps).toFixed(3)}); nginx CPU ${r.baselineNginxUs.toFixed(0)} → ` +
        `${r.tracedNginxUs.toFixed(0)} µs/handshake; observations ${r.observations}/${REQUESTS} ` +
        `(${r.failed} failed), events ${r.eventsReceived} (${(r.eventsReceived / REQUESTS).toFixed(2)}/handshake), ` +
        `kernel drops ${r.drops}, correlation timeouts ${r.timeouts}, tracer CPU ${r.cpuS.toFixed(2)} s, ` +
        `peak RSS ${r.peakRssMb.toFixed(1)} MB, attach ${r.attachMs} ms (ready after ${r.readyMs.toFixed(0)} ms), ` +
        `exit after SIGINT ${r.exitMs.toFixed(0)} ms; hey CPU ${r.baselineHeyUs.toFixed(0)} → ` +
        `${r.tracedHeyUs.toFixed(0)} µs/handshake, tracer ${r.tracerRunUs.toFixed(0)} µs/handshake during hey; ` +
        `load average ${r.load.toFixed(2)}`,
    );
  }
} finally {
  await nginx.stop();
  rmSync(dir, { recursive: true, force: true });
}

const ratio = median(rounds.map((r) => r.tracedRps / r.baselineRps));
const worst = <K extends keyof Round>(k: K) => Math.max(...rounds.map((r) => r[k] as number));
const checks: [string, boolean][] = [
  [`observations exactly ${REQUESTS} per traced round`, rounds.every((r) => r.observations === REQUESTS)],
  ["all handshakes successful", rounds.every((r) => r.failed === 0)],
  ["0 kernel drops", worst("drops") === 0],
  ["0 correlation timeouts", worst("timeouts") === 0],
  [`throughput ratio ≥ 0.95 (median ${ratio.toFixed(3)})`, ratio >= 0.95],
  [`peak RSS < 150 MB (max ${worst("peakRssMb").toFixed(1)} MB)`, worst("peakRssMb") < 150],
  [`attach < 1 s (max ${worst("attachMs")} ms)`, worst("attachMs") < 1000],
  [`exit after SIGINT < 3 s (max ${worst("exitMs").toFixed(0)} ms)`, worst("exitMs") < 3000],
];
console.log(
  `\nsummary (${ROUNDS} rounds, hey -n ${REQUESTS} -c ${CONCURRENCY} -disable-keepalive, nginx 1 worker, ` +
    `${binaryName}${WARMUP > 0 ? `, tracer warmed by ${WARMUP} handshakes` : ""}${TRACE_ARGS.length ? ` ${TRACE_ARGS.join(" ")}` : ""}): without median ${median(rounds.map((r) => r.baselineRps)).toFixed(0)} req/s, ` +
    `with median ${median(rounds.map((r) => r.tracedRps)).toFixed(0)} req/s, ratio ${ratio.toFixed(3)}; ` +
    `tracer CPU ${median(rounds.map((r) => r.cpuS)).toFixed(2)} s per ${REQUESTS + WARMUP} handshakes`,
);
// Where the cost is, independent of other load on the machine: CPU per handshake with and without.
const nginxBase = median(rounds.map((r) => r.baselineNginxUs));
const nginxAdded = median(rounds.map((r) => r.tracedNginxUs - r.baselineNginxUs));
const tracerUs = (median(rounds.map((r) => r.cpuS)) * 1e6) / (REQUESTS + WARMUP);
const events = median(rounds.map((r) => r.eventsReceived)) / REQUESTS;
console.log(
  `cost per handshake: nginx ${nginxBase.toFixed(0)} µs untraced, +${nginxAdded.toFixed(0)} µs in probes ` +
    `(${events.toFixed(2)} events/handshake); tracer ${tracerUs.toFixed(0)} µs (whole process, start-up included); ` +
    `CPU ratio nginx/(nginx + probes + tracer) = ${(nginxBase / (nginxBase + nginxAdded + tracerUs)).toFixed(3)}`,
);
// The client runs on the same 2 cores: when hey + nginx keep both busy, every µs the probes and the tracer
// take is a µs neither can have, so the throughput ratio tends to (hey + nginx) / (hey + nginx + added).
const heyBase = median(rounds.map((r) => r.baselineHeyUs));
const tracerRun = median(rounds.map((r) => r.tracerRunUs));
const machine = heyBase + nginxBase;
const loads = rounds.map((r) => r.load);
console.log(
  `machine CPU per handshake: hey ${heyBase.toFixed(0)} + nginx ${nginxBase.toFixed(0)} µs untraced; traced adds ` +
    `probes ${nginxAdded.toFixed(0)} + tracer ${tracerRun.toFixed(0)} µs (during hey) → expected ratio with both ` +
    `cores busy ${(machine / (machine + nginxAdded + tracerRun)).toFixed(3)}, with nginx's worker the only ` +
    `bottleneck ${(nginxBase / (nginxBase + nginxAdded)).toFixed(3)}; load average ` +
    `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`,
);
for (const [what, ok] of checks) console.log(`${ok ? "ok  " : "MISS"} ${what}`);
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
