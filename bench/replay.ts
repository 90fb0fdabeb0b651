/**
 * Replay benchmark: `carnot replay` end to end (read, parse, enrich, hash, chain, write) on a deterministic
 * trace with the shape of real ones (bench/strace-gen.ts: a Python HTTP server and clients, subprocesses,
 * long string arguments, -yy and plain, unfinished/resumed pairs, many processes), against the floor of any
 * JavaScript replay on this machine (bench/replay-floor.ts: read, split lines, write each line as a JSON
 * string). Rounds alternate the two on the same input, so a shared, noisy machine slows both alike; the
 * ratio (carnot lines/s ÷ floor lines/s) is printed per round, then its median and spread.
 *
 *   bun run bench/replay.ts [--lines N] [--rounds R] [--trace FILE] [--bun | --bin PATH]
 *     N lines generated (default 1,000,000); R rounds (default 5); FILE: an existing trace instead;
 *     default runner ./carnot, --bun runs src/cli.ts
 *   bun run bench/replay.ts --record-sizes [--bun | --bin PATH]
 *     record sizes on real strace output of small workloads like the tests' (loopback HTTP, file IO and a
 *     subprocess, a shell pipeline, threads): median and mean without raw_line, and also without the hashes
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateStraceTrace } from "./strace-gen.ts";

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const linesWanted = Number(option("--lines") ?? 0) || 1_000_000;
const rounds = Number(option("--rounds") ?? 0) || 5;
const givenTrace = option("--trace");
const bin = option("--bin") ?? "./carnot";
const useBun = argv.includes("--bun") || !existsSync(bin);
const FLOOR = join(import.meta.dir, "replay-floor.ts");

/** Bytes of each record without raw_line, and also without raw_hash and chain (whose values are fixed-size). */
function recordSizes(jsonl: string): { withoutRaw: number[]; withoutHashes: number[] } {
  const withoutRaw: number[] = [];
  const withoutHashes: number[] = [];
  for (const line of jsonl.split("\n")) {
    if (line === "") continue;
    const { raw_line: _raw, ...rest } = JSON.parse(line) as Record<string, unknown>;
    withoutRaw.push(Buffer.byteLength(JSON.stringify(rest)) + 1);
    const { raw_hash: _h, chain: _c, ...bare } = rest;
    withoutHashes.push(Buffer.byteLength(JSON.stringify(bare)) + 1);
  }
  return { withoutRaw, withoutHashes };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
const mean = (xs: number[]): number => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));

/** strace on small real workloads, replayed; prints the record sizes per workload and over all. */
async function realRecordSizes(cmd: string[], dir: string): Promise<void> {
  const server = Bun.spawn(["python3", "-m", "http.server", "0", "--bind", "127.0.0.1"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "ignore",
  });
  // python prints "Serving HTTP on 127.0.0.1 port N" once it listens
  const banner = server.stdout.getReader();
  let head = "";
  while (!/port (\d+)/.test(head)) {
    const { value, done } = await banner.read();
    if (done) throw new Error("python http.server did not start");
    head += new TextDecoder().decode(value);
  }
  const port = /port (\d+)/.exec(head)![1]!;
  const workloads: [string, string[]][] = [
    [
      "loopback HTTP (curl)",
      ["-f", "-tt", "-T", "-yy", "curl", "-s", "-o", "/dev/null", `http://127.0.0.1:${port}/`],
    ],
    [
      "file IO + subprocess (python)",
      [
        "-f",
        "-tt",
        "-T",
        "python3",
        "-c",
        'import subprocess; open("/etc/hostname").read(); subprocess.run(["ls", "-la", "/usr/lib"], capture_output=True)',
      ],
    ],
    [
      "shell pipeline",
      ["-f", "-tt", "-T", "-yy", "sh", "-c", "cat /etc/passwd | grep root | wc -l; sleep 0.1 & wait"],
    ],
    [
      "threads (python, -ttt -y)",
      [
        "-f",
        "-ttt",
        "-T",
        "-y",
        "python3",
        "-c",
        'import threading; t = [threading.Thread(target=lambda: open("/etc/hosts").read()) for _ in range(4)]; [x.start() for x in t]; [x.join() for x in t]',
      ],
    ],
  ];
  const all = { withoutRaw: [] as number[], withoutHashes: [] as number[] };
  try {
    for (const [name, args] of workloads) {
      const trace = join(dir, "real.strace");
      const out = join(dir, "real.jsonl");
      const st = Bun.spawnSync(["strace", "-o", trace, ...args], { stdout: "ignore", stderr: "ignore" });
      if (st.exitCode !== 0) throw new Error(`strace ${args.join(" ")} failed`);
      const rp = Bun.spawnSync([...cmd, "replay", trace, "-o", out], { stderr: "pipe" });
      if (rp.exitCode !== 0) throw new Error(`replay failed: ${rp.stderr.toString()}`);
      const s = recordSizes(await Bun.file(out).text());
      all.withoutRaw.push(...s.withoutRaw);
      all.withoutHashes.push(...s.withoutHashes);
      console.log(
        `${name.padEnd(30)} ${String(s.withoutRaw.length).padStart(6)} records: without raw_line median ${median(s.withoutRaw)} B, mean ${mean(s.withoutRaw)} B; also without raw_hash and chain median ${median(s.withoutHashes)} B, mean ${mean(s.withoutHashes)} B`,
      );
    }
  } finally {
    server.kill();
  }
  console.log(
    `${"all".padEnd(30)} ${String(all.withoutRaw.length).padStart(6)} records: without raw_line median ${median(all.withoutRaw)} B, mean ${mean(all.withoutRaw)} B; also without raw_hash and chain median ${median(all.withoutHashes)} B, mean ${mean(all.withoutHashes)} B`,
  );
}

interface Round {
  secs: number;
  cpu: number;
  rssMiB: number;
  counts: string;
  floor: number;
  ratio: number;
}

const kps = (lines: number, secs: number): string => (lines / secs / 1000).toFixed(0).padStart(5);

async function countLines(path: string): Promise<number> {
  let n = 0;
  for await (const chunk of Bun.file(path).stream()) for (const b of chunk) if (b === 10) n++;
  return n;
}

/** The floor's wall time on the trace, in seconds. */
async function runFloor(trace: string, out: string): Promise<number> {
  const started = performance.now();
  const p = Bun.spawn([process.execPath, FLOOR, trace, out], { stderr: "pipe" });
  const code = await p.exited;
  if (code !== 0) throw new Error(`floor failed: ${await new Response(p.stderr).text()}`);
  return (performance.now() - started) / 1000;
}

/** `carnot replay` on the trace: wall time, CPU time and peak RSS from /usr/bin/time, its counts line. */
async function runReplay(
  cmd: string[],
  trace: string,
  out: string,
): Promise<{ secs: number; cpu: number; rssMiB: number; counts: string }> {
  const started = performance.now();
  const p = Bun.spawn(["/usr/bin/time", "-f", "%M %U %S", ...cmd, "replay", trace, "-o", out], {
    stderr: "pipe",
  });
  const code = await p.exited;
  const secs = (performance.now() - started) / 1000;
  const stderr = (await new Response(p.stderr).text()).trim().split("\n");
  if (code !== 0) throw new Error(`replay failed (${code}): ${stderr.join("\n")}`);
  const [rssKb, user, sys] = (stderr.at(-1) ?? "").split(" ").map(Number) as [number, number, number];
  return { secs, cpu: user + sys, rssMiB: rssKb / 1024, counts: stderr.slice(0, -1).join("\n") };
}

/** Mean and median record size of a sample of the output, without raw_line and without the hashes. */
async function printRecordSizes(out: string): Promise<void> {
  let sizeSum = 0;
  let n = 0;
  let withoutRawSum = 0;
  let withoutHashesSum = 0;
  const withoutRawSizes: number[] = [];
  const withoutHashesSizes: number[] = [];
  const reader = Bun.file(out).stream().pipeThrough(new TextDecoderStream());
  let carry = "";
  for await (const chunk of reader) {
    const parts = (carry + chunk).split("\n");
    carry = parts.pop() ?? "";
    for (const line of parts) {
      if (n % 50 === 0) {
        const { raw_line: _raw, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const withoutRaw = Buffer.byteLength(JSON.stringify(rest)) + 1;
        withoutRawSum += withoutRaw;
        withoutRawSizes.push(withoutRaw);
        const { raw_hash: _h, chain: _c, ...bare } = rest;
        const withoutHashes = Buffer.byteLength(JSON.stringify(bare)) + 1;
        withoutHashesSum += withoutHashes;
        withoutHashesSizes.push(withoutHashes);
      }
      sizeSum += line.length + 1;
      n++;
    }
  }
  const sampled = Math.ceil(n / 50);
  console.log(
    `records   ${n}: mean ${(sizeSum / n).toFixed(0)} B with raw_line, ${(withoutRawSum / sampled).toFixed(0)} B without, ${(withoutHashesSum / sampled).toFixed(0)} B without raw_line, raw_hash and chain; median ${median(withoutRawSizes)} B and ${median(withoutHashesSizes)} B`,
  );
}

const dir = mkdtempSync(join(tmpdir(), "carnot-bench-"));
if (argv.includes("--record-sizes")) {
  try {
    await realRecordSizes(useBun ? ["bun", "src/cli.ts"] : [bin], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
try {
  const trace = givenTrace ?? join(dir, "bench.strace");
  if (givenTrace === undefined) await generateStraceTrace(trace, linesWanted);
  const lines = await countLines(trace);
  const bytes = statSync(trace).size;
  const out = join(dir, "enriched.jsonl");
  const cmd = useBun ? ["bun", "src/cli.ts"] : [bin];
  console.log(`runner:   ${cmd.join(" ")}`);
  console.log(
    `input:    ${lines} lines, ${(bytes / 2 ** 20).toFixed(1)} MiB${givenTrace ? ` (${givenTrace})` : ""}`,
  );
  const results: Round[] = [];
  let counts = "";
  for (let round = 0; round < rounds; round++) {
    // alternate which goes first: the machine's speed drifts within a minute
    const floorFirst = round % 2 === 0;
    let floor = 0;
    if (floorFirst) floor = await runFloor(trace, join(dir, "floor.out"));
    const replay = await runReplay(cmd, trace, out);
    if (!floorFirst) floor = await runFloor(trace, join(dir, "floor.out"));
    counts = replay.counts;
    const r: Round = { ...replay, floor, ratio: floor / replay.secs };
    results.push(r);
    console.log(
      `round ${round + 1}: carnot ${kps(lines, r.secs)} k lines/s (${r.secs.toFixed(2)} s, CPU ${r.cpu.toFixed(2)} s, peak RSS ${r.rssMiB.toFixed(0)} MiB); floor ${kps(lines, floor)} k lines/s (${floor.toFixed(2)} s); ratio ${r.ratio.toFixed(3)}`,
    );
  }
  const ratios = results.map((r) => r.ratio);
  console.log(
    `carnot    ${kps(lines, median(results.map((r) => r.secs)))} k lines/s (median of ${rounds}), floor ${kps(lines, median(results.map((r) => r.floor)))} k lines/s`,
  );
  console.log(
    `ratio     ${median(ratios).toFixed(3)} median, ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)} over ${rounds} rounds (carnot lines/s ÷ floor lines/s)`,
  );
  console.log(`peak RSS  ${Math.max(...results.map((r) => r.rssMiB)).toFixed(0)} MiB (highest round)`);
  console.log(counts);
  await printRecordSizes(out);
} finally {
  if (!process.env.KEEP_BENCH) rmSync(dir, { recursive: true, force: true });
  else console.log(dir);
}
