/**
 * `carnot record`'s overhead against strace, side by side in one run (issue 14's bar: carnot's added wall time
 * ≤ 1/10 of `strace -f -o /dev/null`'s, with 0 kernel drops at the default ring size). Two syscall-heavy
 * workloads, each run plain, under strace and under `./carnot record --out /dev/null` in interleaved rounds
 * (plain, strace, carnot, plain, …), so a busy host slows all three alike:
 *   files: sh -c 'find /usr -type f -print0 | head -z -n FILES | xargs -0 stat >/dev/null'
 *   reads: python3 -c '…' — os.pread of 1 byte from a file, READS times
 * Prints per workload the medians (min–max) of the three wall times, the ratio (carnot added)/(strace added) per
 * round (median, min–max), and carnot's kernel events, drops and PIPE_BACKPRESSURE records of every run, as it
 * says them on stderr. Exits 1 when the bar is missed. Needs root and the compiled ./carnot (`make carnot`).
 * Run: `make bench` or `bun bench/record.ts` (BENCH_ROUNDS=5, BENCH_FILES=30000, BENCH_READS=1000000; BENCH_CARNOT=path).
 */
import { loadavg } from "node:os";
import { COMPILED } from "../test/support/tracer.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const FILES = Number(process.env.BENCH_FILES ?? 30_000);
const READS = Number(process.env.BENCH_READS ?? 1_000_000);
const BAR = 0.1;
const PYTHON = "/usr/bin/python3";
/** the binary measured (BENCH_CARNOT: another build, e.g. the one before a change) */
const CARNOT = process.env.BENCH_CARNOT ?? COMPILED;

const WORKLOADS: { name: string; argv: string[] }[] = [
  {
    name: `files: find /usr -type f | head -n ${FILES} | xargs stat`,
    argv: ["sh", "-c", `find /usr -type f -print0 | head -z -n ${FILES} | xargs -0 stat >/dev/null`],
  },
  {
    name: `reads: python3, os.pread of 1 byte × ${READS}`,
    argv: [
      PYTHON,
      "-c",
      `import os\nfd = os.open("${PYTHON}", os.O_RDONLY)\nfor _ in range(${READS}):\n    os.pread(fd, 1, 0)\n`,
    ],
  },
];

/** What `carnot record` says of its kernel side at the end (src/record/run.ts). */
interface CarnotCounts {
  records: number;
  kernelEvents: number;
  dropped: number;
  backpressure: number;
}

interface Run {
  seconds: number;
  counts: CarnotCounts | null;
}

function run(argv: string[], carnot: boolean): Run {
  const t0 = Bun.nanoseconds();
  const p = Bun.spawnSync(argv, { stdout: "ignore", stderr: carnot ? "pipe" : "ignore" });
  const seconds = (Bun.nanoseconds() - t0) / 1e9;
  const stderr = carnot ? (p.stderr?.toString() ?? "") : "";
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${p.exitCode}\n${stderr}`);
  if (!carnot) return { seconds, counts: null };
  const m =
    /carnot: (\d+) records from \d+ events; kernel: (\d+) events, (\d+) dropped; (\d+) without enrichment/.exec(
      stderr,
    );
  if (m === null) throw new Error(`carnot record did not say its counts:\n${stderr}`);
  return {
    seconds,
    counts: {
      records: Number(m[1]),
      kernelEvents: Number(m[2]),
      dropped: Number(m[3]),
      backpressure: Number(m[4]),
    },
  };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => {
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const spread = (xs: number[], digits: number) =>
  `${median(xs).toFixed(digits)} (${sorted(xs)[0]!.toFixed(digits)}–${sorted(xs).at(-1)!.toFixed(digits)})`;

if (process.geteuid?.() !== 0) {
  console.error("bench/record.ts needs root (carnot record loads eBPF programs)");
  process.exit(2);
}
if (!(await Bun.file(CARNOT).exists())) {
  console.error(`no ${CARNOT}: run make carnot first`);
  process.exit(2);
}

let missed = false;
console.log(`carnot record overhead, ${ROUNDS} interleaved rounds (load ${loadavg()[0]!.toFixed(1)})`);
for (const w of WORKLOADS) {
  const plain: number[] = [];
  const strace: number[] = [];
  const carnot: number[] = [];
  const ratios: number[] = [];
  const counts: CarnotCounts[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const p = run(w.argv, false);
    const s = run(["strace", "-f", "-o", "/dev/null", ...w.argv], false);
    const c = run([CARNOT, "record", "--out", "/dev/null", "--", ...w.argv], true);
    plain.push(p.seconds);
    strace.push(s.seconds);
    carnot.push(c.seconds);
    ratios.push((c.seconds - p.seconds) / (s.seconds - p.seconds));
    counts.push(c.counts!);
  }
  const ratio = median(ratios);
  const drops = counts.reduce((n, c) => n + c.dropped, 0);
  console.log(`\n${w.name}`);
  console.log(`  plain   ${spread(plain, 2)} s`);
  console.log(`  strace  ${spread(strace, 2)} s`);
  console.log(`  carnot  ${spread(carnot, 2)} s`);
  console.log(`  (carnot − plain) / (strace − plain): ${spread(ratios, 3)}  (bar ≤ ${BAR})`);
  for (const [i, c] of counts.entries()) {
    console.log(
      `  carnot run ${i + 1}: ${c.records} records, kernel ${c.kernelEvents} events, ${c.dropped} dropped, ${c.backpressure} PIPE_BACKPRESSURE`,
    );
  }
  if (ratio > BAR || drops > 0) missed = true;
}
console.log(`\nload at the end ${loadavg()[0]!.toFixed(1)}`);
if (missed) {
  console.log("bar missed: carnot's added time > 1/10 of strace's, or kernel drops");
  process.exit(1);
}
