/**
 * `carnot record`'s overhead against strace, side by side in one run (issue 14's bar: carnot's added wall time
 * ≤ 1/10 of `strace -f -o /dev/null`'s, with 0 kernel drops at the default ring size). Two syscall-heavy
 * workloads, each run plain, under strace and under `./carnot record --out /dev/null` in interleaved rounds
 * (plain, strace, carnot, plain, …), so a busy host slows all three alike:
 *   files: sh -c 'find /usr -type f -print0 | head -z -n FILES | xargs -0 stat >/dev/null'
 *   reads: python3 -c '…' — os.pread of 1 byte from a file, READS times
 * Prints per workload the medians (min–max) of the three wall times, the ratio (carnot added)/(strace added) per
 * round (median, min–max), the same ratio of CPU time (the process and what it waited for: less sensitive to
 * other work on the host than wall time), and carnot's kernel events, drops and PIPE_BACKPRESSURE records of
 * every run, as it says them on stderr. Exits 1 when the bar is missed. Needs root and the compiled ./carnot (`make carnot`).
 * Run: `make bench` or `bun bench/record.ts` (BENCH_ROUNDS=5, BENCH_FILES=30000, BENCH_READS=1000000; BENCH_CARNOT=path).
 */
import { loadavg } from "node:os";
import { Libc } from "../ffi/libc.ts";
import { ChainedWriter } from "../src/chain/writer.ts";
import type { EnhancedEvent } from "../src/replay/schema.ts";
import { RecordCapture } from "../src/record/capture.ts";
import { RecordDecoder } from "../src/record/events.ts";
import { snapshotProcess } from "../src/record/proc.ts";
import { RecordSession } from "../src/record/session.ts";
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
  /** CPU time of the process and every process it waited for (the followed command; strace's tracees) */
  cpuSeconds: number;
  counts: CarnotCounts | null;
}

function run(argv: string[], carnot: boolean): Run {
  const t0 = Bun.nanoseconds();
  const p = Bun.spawnSync(argv, { stdout: "ignore", stderr: carnot ? "pipe" : "ignore" });
  const seconds = (Bun.nanoseconds() - t0) / 1e9;
  const cpuSeconds = Number(p.resourceUsage?.cpuTime.total ?? 0n) / 1e6;
  const stderr = carnot ? (p.stderr?.toString() ?? "") : "";
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${p.exitCode}\n${stderr}`);
  if (!carnot) return { seconds, cpuSeconds, counts: null };
  const m =
    /carnot: (\d+) records from \d+ events; kernel: (\d+) events, (\d+) dropped; (\d+) without enrichment/.exec(
      stderr,
    );
  if (m === null) throw new Error(`carnot record did not say its counts:\n${stderr}`);
  return {
    seconds,
    cpuSeconds,
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

/** The files workload's ring buffer contents, copied out as the kernel wrote them (ring records, 8-byte aligned). */
async function captureRing(argv: string[]): Promise<{ ring: Uint8Array; startNs: number; events: number }> {
  const libc = new Libc();
  const capture = RecordCapture.open(256 * 1024 * 1024);
  try {
    const chunks: Uint8Array[] = [];
    const reader = capture.reader;
    const src = new Uint8Array(reader.dataBuffer, reader.dataOffset);
    const startNs = Number(libc.monotonicNs());
    const child = capture.spawnFollowed(() => Bun.spawn(argv, { stdio: ["ignore", "ignore", "ignore"] }));
    let done = false;
    void child.exited.then(() => {
      done = true;
    });
    let events = 0;
    const drain = () => {
      let first = -1;
      let last = 0;
      // records of one drain are contiguous unless the ring wraps: copy runs of them
      reader.drain((offset, length) => {
        events++;
        const start = offset - 8;
        const end = offset + ((length + 7) & ~7);
        if (first >= 0 && start !== last) {
          chunks.push(src.slice(first, last));
          first = -1;
        }
        if (first < 0) first = start;
        last = end;
      });
      if (first >= 0) chunks.push(src.slice(first, last));
    };
    while (!done) {
      drain();
      await Bun.sleep(1);
    }
    drain();
    const { dropped } = capture.stats();
    if (dropped > 0) throw new Error(`capture: ${dropped} kernel drops`);
    const ring = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      ring.set(c, at);
      at += c.length;
    }
    return { ring, startNs, events };
  } finally {
    capture.close();
  }
}

/** carnot record's user side over a captured ring: decode, join, render, enrich, serialize, chain to /dev/null. */
async function userSide(
  ring: Uint8Array,
  startNs: number,
): Promise<{ seconds: number; mainCpuUs: number; records: number }> {
  const writer = await ChainedWriter.open("/dev/null", { largeOutput: true });
  const session = new RecordSession({ startNs, snapshot: snapshotProcess });
  const decoder = new RecordDecoder(ring.buffer, ring.byteOffset, ring.byteLength);
  const view = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
  const out: EnhancedEvent[] = [];
  const cpu0 = process.threadCpuUsage();
  const t0 = Bun.nanoseconds();
  for (let at = 0; at < ring.length; ) {
    const length = view.getUint32(at, true) & 0x3fff_ffff;
    const ev = session.freeEvent();
    if (decoder.decode(at + 8, length, ev) !== null) session.push(ev, out);
    if (out.length >= 256) {
      for (const rec of out) writer.append(rec);
      out.length = 0;
    }
    at += 8 + ((length + 7) & ~7);
  }
  session.finish(out);
  for (const rec of out) writer.append(rec);
  await writer.close();
  const seconds = (Bun.nanoseconds() - t0) / 1e9;
  const cpu = process.threadCpuUsage(cpu0);
  return { seconds, mainCpuUs: cpu.user + cpu.system, records: session.counts.records };
}

let missed = false;
{
  const { ring, startNs, events } = await captureRing(WORKLOADS[0]!.argv);
  const runs: { seconds: number; mainCpuUs: number; records: number }[] = [];
  for (let i = 0; i < 3; i++) runs.push(await userSide(ring, startNs));
  const rates = runs.map((r) => events / r.seconds / 1000);
  const perRecord = runs.map((r) => r.mainCpuUs / r.records);
  console.log(
    `user side alone (${WORKLOADS[0]!.name}: ${events} events, ${(ring.length / 1e6).toFixed(0)} MB of ring records, 3 runs): ${spread(rates, 0)} k events/s; main thread ${spread(perRecord, 2)} µs CPU per record`,
  );
}
console.log(`carnot record overhead, ${ROUNDS} interleaved rounds (load ${loadavg()[0]!.toFixed(1)})`);
for (const w of WORKLOADS) {
  const plain: number[] = [];
  const strace: number[] = [];
  const carnot: number[] = [];
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  const cpu: number[][] = [[], [], []];
  const counts: CarnotCounts[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const p = run(w.argv, false);
    const s = run(["strace", "-f", "-o", "/dev/null", ...w.argv], false);
    const c = run([CARNOT, "record", "--out", "/dev/null", "--", ...w.argv], true);
    plain.push(p.seconds);
    strace.push(s.seconds);
    carnot.push(c.seconds);
    ratios.push((c.seconds - p.seconds) / (s.seconds - p.seconds));
    cpuRatios.push((c.cpuSeconds - p.cpuSeconds) / (s.cpuSeconds - p.cpuSeconds));
    for (const [i, x] of [p, s, c].entries()) cpu[i]!.push(x.cpuSeconds);
    counts.push(c.counts!);
  }
  const ratio = median(ratios);
  const drops = counts.reduce((n, c) => n + c.dropped, 0);
  console.log(`\n${w.name}`);
  console.log(`  plain   ${spread(plain, 2)} s`);
  console.log(`  strace  ${spread(strace, 2)} s`);
  console.log(`  carnot  ${spread(carnot, 2)} s`);
  console.log(`  (carnot − plain) / (strace − plain): ${spread(ratios, 3)}  (bar ≤ ${BAR})`);
  console.log(
    `  CPU s, plain ${spread(cpu[0]!, 2)}, strace ${spread(cpu[1]!, 2)}, carnot ${spread(cpu[2]!, 2)}; added CPU ratio ${spread(cpuRatios, 3)}`,
  );
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
