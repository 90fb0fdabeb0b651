/**
 * What tracing costs a bulk transfer, once its handshake is past: curl downloads a 1 GiB file from nginx over
 * TLS on loopback (both sides on the system libssl), untraced / traced (both sources: the wire's cgroup
 * programs run on every packet) / the libssl source alone / with --implicit-probes (SSL_read/SSL_write
 * entries), alternating. The figure is the CPU time curl + nginx + the tracer spend per GiB (user + system),
 * less sensitive to other load than wall time. Needs root. Run: `bun bench/trace-bulk.ts`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, makeSelfSignedCert, startNginx } from "../src/lab/loopback.ts";
import { COMPILED, startTracer } from "../test/support/tracer.ts";

const SIZE_MIB = Number(process.env.BENCH_BULK_MIB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CLOCK_TICKS = 100;

function cpuTicks(pid: number, children: boolean): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime, stime (fields 14, 15), and with children cutime, cstime (16, 17)
  return Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0);
}

/** One download: wall seconds and CPU seconds of curl (reaped child) and the nginx worker. */
function download(port: number, worker: number): { wallS: number; cpuS: number } {
  const workerBefore = cpuTicks(worker, false);
  const selfBefore = cpuTicks(process.pid, true) - cpuTicks(process.pid, false);
  const t0 = performance.now();
  const res = Bun.spawnSync([
    "curl",
    "-sk",
    "-o",
    "/dev/null",
    "-w",
    "%{size_download}",
    `https://127.0.0.1:${port}/files/bulk.bin`,
  ]);
  const wallS = (performance.now() - t0) / 1000;
  if (res.exitCode !== 0 || Number(res.stdout.toString()) !== SIZE_MIB * 1024 * 1024) {
    throw new Error(
      `curl failed (exit ${res.exitCode}, ${res.stdout.toString()} bytes): ${res.stderr.toString()}`,
    );
  }
  const curlTicks = cpuTicks(process.pid, true) - cpuTicks(process.pid, false) - selfBefore;
  return { wallS, cpuS: (curlTicks + cpuTicks(worker, false) - workerBefore) / CLOCK_TICKS };
}

if (process.getuid?.() !== 0) {
  console.error("bench/trace-bulk.ts needs root (BPF uprobes)");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "carnot-bulk-"));
const files = join(dir, "files");
Bun.spawnSync(["mkdir", "-p", files]);
// content does not matter to TLS cost; a sparse file costs no disk
Bun.spawnSync(["truncate", "-s", `${SIZE_MIB}M`, join(files, "bulk.bin")]);
const cert = await makeSelfSignedCert(dir);
const nginx = await startNginx(join(dir, "nginx"), cert, { workers: 1, filesRoot: files });
const modes = ["untraced", "traced", "traced --source libssl", "traced --implicit-probes"] as const;
const results: Record<string, number[]> = Object.fromEntries(modes.map((m) => [m, []]));
try {
  const [worker] = await childPids(nginx.pid);
  download(nginx.port, worker!); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of modes) {
      const tracer =
        mode === "untraced"
          ? null
          : await startTracer(
              [
                "--out",
                join(dir, "out.jsonl"),
                "--metrics-interval",
                "0",
                ...(mode.includes("implicit") ? ["--implicit-probes"] : []),
                ...(mode.includes("libssl") ? ["--source", "libssl"] : []),
              ],
              { binary: COMPILED },
            );
      const tracerBefore = tracer ? cpuTicks(tracer.proc.pid, false) : 0;
      const r = download(nginx.port, worker!);
      // the tracer's own work during the transfer counts too
      const tracerS = tracer ? (cpuTicks(tracer.proc.pid, false) - tracerBefore) / CLOCK_TICKS : 0;
      await tracer?.stop("SIGINT");
      const perGiB = ((r.cpuS + tracerS) * 1024) / SIZE_MIB;
      results[mode]!.push(perGiB);
      console.log(
        `round ${round + 1} ${mode}: ${r.wallS.toFixed(2)} s wall, ${perGiB.toFixed(3)} CPU s/GiB (curl + nginx + tracer ${tracerS.toFixed(2)} s)`,
      );
    }
  }
} finally {
  await nginx.stop();
  rmSync(dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(results.untraced!);
for (const mode of modes) {
  const m = median(results[mode]!);
  console.log(
    `${mode.padEnd(26)} median ${m.toFixed(3)} CPU s/GiB (${(((m - base) / base) * 100).toFixed(1)} % vs untraced)`,
  );
}
