/**
 * Ring-buffer drain rate from JS: bpf/flood.bpf.o emits synthetic carnot_events from a Worker thread
 * (BPF_PROG_TEST_RUN) while the main thread drains and decodes them through the mmap reader, as
 * `carnot trace` does. The producer never runs more than one buffer ahead of the consumer, so the rate is
 * what the reader sustains; kernel drops are still counted by the BPF program and reported.
 * Also: the decode-only rate on a full buffer, and attach/detach time of the libssl probes.
 * Run as root: `bun bench/ringbuf.ts [events]` (after `make bpf`).
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { isMainThread, Worker, workerData } from "node:worker_threads";
import { Libbpf } from "../ffi/libbpf.ts";
import { Libc } from "../ffi/libc.ts";
import { EVENT_SIZE } from "../src/trace/libssl/events.ts";
import { findSystemLibssl } from "../src/trace/libssl/library.ts";
import { type AttachMode, SslProbes } from "../src/trace/libssl/probes.ts";
import { floodArgs, SyntheticEventSource } from "../src/trace/libssl/synthetic-source.ts";

const PRODUCED = 0;
const CONSUMED = 1;
const DONE = 2;
const RECORD = EVENT_SIZE + 8;

interface FloodJob {
  programFd: number;
  counters: SharedArrayBuffer;
  total: number;
  chunk: number;
  /** events that fit in the ring buffer */
  capacity: number;
}

/** Worker: emit `total` events in chunks, staying within one buffer of the consumer. */
function produce(job: FloodJob): void {
  const counters = new Int32Array(job.counters);
  const libbpf = Libbpf.open();
  let produced = 0;
  while (produced < job.total) {
    const n = Math.min(job.chunk, job.total - produced);
    for (;;) {
      const consumed = Atomics.load(counters, CONSUMED);
      if (produced + n - consumed <= job.capacity) break;
      Atomics.wait(counters, CONSUMED, consumed, 5);
    }
    libbpf.testRunByFd(job.programFd, floodArgs(n, produced));
    produced += n;
    Atomics.store(counters, PRODUCED, produced);
  }
  Atomics.store(counters, DONE, 1);
}

async function sustained(
  source: SyntheticEventSource,
  total: number,
  libc: Libc,
): Promise<{
  events: number;
  seconds: number;
  cpuSeconds: number;
  outOfOrder: number;
}> {
  const counters = new SharedArrayBuffer(3 * 4);
  const shared = new Int32Array(counters);
  const job: FloodJob = {
    programFd: source.programFd,
    counters,
    total,
    chunk: 4096,
    capacity: Math.floor(source.ringbufSize / RECORD),
  };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const exited = new Promise<void>((resolve, reject) => {
    worker.once("exit", () => resolve());
    worker.once("error", reject);
  });
  let consumed = 0;
  let expected = -1;
  let outOfOrder = 0;
  const onEvent = (ev: { aux: number }) => {
    if (expected >= 0 && ev.aux !== expected) outOfOrder++;
    expected = ev.aux + 1;
  };
  // The clock starts with the first event, so Worker start-up is not counted.
  while (Atomics.load(shared, PRODUCED) === 0) Atomics.wait(shared, PRODUCED, 0, 1);
  const started = performance.now();
  const cpuStarted = libc.threadCpuSeconds();
  for (;;) {
    const n = source.drain(onEvent);
    if (n > 0) {
      consumed += n;
      Atomics.store(shared, CONSUMED, consumed);
      Atomics.notify(shared, CONSUMED);
    } else if (Atomics.load(shared, DONE) === 1 && source.pendingBytes() === 0) {
      break;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = libc.threadCpuSeconds() - cpuStarted;
  await exited;
  return { events: consumed, seconds, cpuSeconds, outOfOrder };
}

/** Decode-only: a buffer filled beforehand, drained in one go. */
function burst(source: SyntheticEventSource): { events: number; seconds: number } {
  const n = Math.floor(source.ringbufSize / RECORD);
  source.emit(n);
  let sum = 0;
  const started = performance.now();
  const events = source.drain((ev) => {
    sum += ev.aux;
  });
  const seconds = (performance.now() - started) / 1000;
  if (sum < 0) console.log(sum);
  return { events, seconds };
}

function attachTimes(mode: AttachMode): string {
  const libssl = findSystemLibssl();
  if (libssl === null) return `${mode}: no system libssl`;
  const started = performance.now();
  const probes = SslProbes.open({ libraries: [libssl], attachMode: mode });
  const openMs = performance.now() - started;
  const closeStarted = performance.now();
  const links = probes.linkCount;
  probes.close();
  const closeMs = performance.now() - closeStarted;
  return `${mode}: ${links} links, open (load + attach) ${openMs.toFixed(0)} ms, attach ${probes.attachMs.toFixed(1)} ms, close ${closeMs.toFixed(0)} ms`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("bench/ringbuf.ts: needs root (BPF)");
    process.exit(1);
  }
  const total = Number(process.argv[2] ?? 20_000_000);
  const elf = new Uint8Array(readFileSync(join(import.meta.dir, "..", "bpf", "flood.bpf.o")));
  const source = new SyntheticEventSource(elf, 16 * 1024 * 1024);
  try {
    const libc = new Libc();
    await sustained(source, 1_000_000, libc); // JIT warm-up, not reported
    const before = source.stats();
    const run = await sustained(source, total, libc);
    const after = source.stats();
    const attempted = after.attempted - before.attempted;
    const dropped = after.dropped - before.dropped;
    console.log(
      `ringbuf sustained: ${run.events} events in ${run.seconds.toFixed(3)} s = ${(run.events / run.seconds / 1e6).toFixed(2)} M events/s; kernel attempted ${attempted}, dropped ${dropped}, out of order ${run.outOfOrder}`,
    );
    // On a shared machine the wall-clock rate depends on the other load; the reader's own cost does not.
    console.log(
      `ringbuf reader CPU: ${run.cpuSeconds.toFixed(3)} s of the draining thread = ${(run.events / run.cpuSeconds / 1e6).toFixed(2)} M events per CPU-second (load average ${loadavg()[0]!.toFixed(2)})`,
    );
    const rates: number[] = [];
    for (let i = 0; i < 5; i++) {
      const b = burst(source);
      rates.push(b.events / b.seconds / 1e6);
    }
    console.log(
      `ringbuf decode-only (full 16 MiB buffer, ${Math.floor(source.ringbufSize / RECORD)} events, 5 runs): ${rates.map((r) => r.toFixed(2)).join(", ")} M events/s`,
    );
  } finally {
    source.close();
  }
  console.log(`attach ${attachTimes("multi")}`);
  console.log(`attach ${attachTimes("perf-event")}`);
}

if (isMainThread) await main();
else produce(workerData as FloodJob);
