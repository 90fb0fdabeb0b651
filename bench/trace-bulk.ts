/**
 * What tracing costs a bulk transfer, once its handshake is past: curl downloads a 1 GiB file from nginx over
 * TLS on loopback (both sides on the system libssl), untraced / traced (both sources: the wire's cgroup
 * programs run on every packet) / the libssl source alone / with --implicit-probes (SSL_read/SSL_write
 * entries), alternating. The figure is the CPU time curl + nginx + the tracer spend per GiB (user + system),
 * less sensitive to other load than wall time. The BPF programs' own run time during each traced transfer is
 * read from the kernel (kernel.bpf_stats_enabled, set for the run and restored), by kind: an exact figure for
 * what the probes and the wire's per-packet programs cost, which other load on the host cannot blur.
 * Needs root. Run: `bun bench/trace-bulk.ts`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

interface ProgStats {
  id: number;
  type: string;
  run_time_ns?: number;
}

/** Every loaded BPF program with its run time so far (bpf_stats on). */
function programs(): ProgStats[] {
  const out = Bun.spawnSync(["bpftool", "prog", "show", "-j"]);
  return JSON.parse(out.stdout.toString() || "[]") as ProgStats[];
}

/** The ids of the BPF programs a process holds (its descriptors' fdinfo names them, as programs or links). */
function programIdsOf(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info = "";
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    } catch {
      continue;
    }
    const m = /^prog_id:\s+(\d+)$/m.exec(info);
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

/** Run time of the programs `ids`, summed by program type (cgroup_skb: the wire; kprobe: uprobes). */
function runTimeByType(ids: Set<number>): Map<string, number> {
  const byType = new Map<string, number>();
  for (const p of programs())
    if (ids.has(p.id)) byType.set(p.type, (byType.get(p.type) ?? 0) + (p.run_time_ns ?? 0));
  return byType;
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
/** per mode and program type: the programs' run time per GiB, in CPU seconds */
const progResults = new Map<string, number[]>();
const statsBefore = readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8").trim();
Bun.spawnSync(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"]);
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
      // only this tracer's programs: others loaded meanwhile on the host are not its cost
      const mine = tracer ? programIdsOf(tracer.proc.pid) : new Set<number>();
      const progBefore = runTimeByType(mine);
      const r = download(nginx.port, worker!);
      const progAfter = runTimeByType(mine);
      // the tracer's own work during the transfer counts too
      const tracerS = tracer ? (cpuTicks(tracer.proc.pid, false) - tracerBefore) / CLOCK_TICKS : 0;
      await tracer?.stop("SIGINT");
      const perGiB = ((r.cpuS + tracerS) * 1024) / SIZE_MIB;
      results[mode]!.push(perGiB);
      const progs: string[] = [];
      for (const [type, ns] of progAfter) {
        const perGiBs = ((ns - (progBefore.get(type) ?? 0)) / 1e9) * (1024 / SIZE_MIB);
        const key = `${mode}: ${type}`;
        progResults.set(key, [...(progResults.get(key) ?? []), perGiBs]);
        progs.push(`${type} ${(perGiBs * 1000).toFixed(2)} ms/GiB`);
      }
      console.log(
        `round ${round + 1} ${mode}: ${r.wallS.toFixed(2)} s wall, ${perGiB.toFixed(3)} CPU s/GiB (curl + nginx + tracer ${tracerS.toFixed(2)} s)${progs.length > 0 ? `; BPF programs: ${progs.join(", ")}` : ""}`,
      );
    }
  }
} finally {
  Bun.spawnSync(["sysctl", "-qw", `kernel.bpf_stats_enabled=${statsBefore}`]);
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
for (const [key, xs] of progResults) {
  const m = median(xs);
  console.log(
    `${key.padEnd(40)} BPF run time median ${(m * 1000).toFixed(2)} ms/GiB (${((m / base) * 100).toFixed(3)} % of untraced CPU)`,
  );
}
