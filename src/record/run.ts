/**
 * `carnot record` from start to stop: the command started stopped (or the running tree found), followed in the
 * kernel, the ring buffer drained on a short timer through the session into the chained writer, and an orderly
 * stop when the tree has ended or a stop signal came (drain, calls in progress written as cut, seal, counts,
 * then detach).
 */
import { accessSync, constants, readdirSync, readFileSync, statSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { Libc } from "../../ffi/libc.ts";
import { ChainedWriter } from "../chain/writer.ts";
import { buildSeccompProfile, renderOciProfile, SyscallUsage } from "../consumers/seccomp/profile.ts";
import { CarnotError, describeError } from "../errors.ts";
import { writeTextOutput } from "../io/output.ts";
import type { EnhancedEvent } from "../replay/schema.ts";
import { assertWritable } from "../trace/run.ts";
import { stopSignals } from "../trace/stop-signals.ts";
import { RecordCapture } from "./capture.ts";
import { RecordDecoder } from "./events.ts";
import { snapshotProcess } from "./proc.ts";
import { type RecordCounts, RecordSession } from "./session.ts";

export interface RecordOptions {
  /** output file; null = stdout */
  out: string | null;
  /** the command to run and follow (argv) */
  command?: string[];
  /** or the running process tree to follow */
  pid?: number;
  ringbufSize: number;
  key?: Uint8Array;
  followSymlinks?: boolean;
  /** also write the seccomp profile of what was recorded here */
  seccomp?: string;
  /** stops the recording like SIGINT does (tests) */
  signal?: AbortSignal;
  status?: (line: string) => void;
}

export interface RecordSummary {
  /** the followed command's exit code (128 + signal when a signal ended it); 128 + the stop signal when carnot was stopped first */
  exitCode: number;
  counts: RecordCounts;
  kernelAttempted: number;
  kernelDropped: number;
  stopMs: number;
  detachMs: number;
}

/**
 * The default ring buffer: 128 MiB hold ≈ 450,000 calls of a stat-heavy burst (≈ 300 bytes a call with its path and
 * stat), ≈ 760,000 calls without data (176 bytes): the records come 2–3× slower than such a burst makes calls, so
 * the ring must hold most of it (find | xargs stat, 437,000 calls in 2 s: 64 MiB dropped up to 7 % of its events).
 */
export const DEFAULT_RINGBUF_SIZE = 128 * 1024 * 1024;
/** How often the ring buffer is drained. */
const DRAIN_INTERVAL_MS = 10;
/** Events read before their room in the ring buffer is handed back to the kernel. */
const DRAIN_BATCH = 4096;
/** Longest one drain runs before timers and signals get their turn. */
const DRAIN_SLICE_MS = 50;
/** How often whole lines reach the output when the writer's buffer is not yet full. */
const WRITE_INTERVAL_MS = 200;
/** Past this share of the ring buffer waiting, records are written without enrichment (PIPE_BACKPRESSURE). */
const BACKPRESSURE_FILL = 0.5;
/** How often followed processes whose end was not seen (lost events) are looked for in /proc. */
const LIVENESS_INTERVAL_MS = 250;

/** The command's executable, as a shell would find it; a clear error when there is none. */
export function resolveCommand(name: string, path = process.env.PATH ?? "/usr/bin:/bin"): string {
  const candidates = name.includes("/") ? [name] : path.split(":").map((dir) => `${dir || "."}/${name}`);
  let found: string | null = null;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      found ??= candidate;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  if (found !== null) throw new CarnotError(`cannot run ${name}: permission denied`, { exitCode: 126 });
  throw new CarnotError(`command not found: ${name}`, { exitCode: 127 });
}

/** State of a process from /proc/PID/stat (`R`, `S`, `T`, `Z`, …); null when it is gone. */
function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) || null;
  } catch {
    return null;
  }
}

/** `pid` and every process below it now (children of children), from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^[1-9][0-9]*$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {}
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Before anything is loaded: root, a command that exists or a process that does. */
function checkStart(opts: RecordOptions): string | null {
  if (process.geteuid?.() !== 0)
    throw new CarnotError("carnot record needs root (it loads eBPF programs)", { exitCode: 1 });
  if (opts.pid !== undefined) {
    if (opts.pid === process.pid || processState(opts.pid) === null)
      throw new CarnotError(`no such process: ${opts.pid}`, { exitCode: 2 });
    return null;
  }
  const command = opts.command ?? [];
  if (command.length === 0)
    throw new CarnotError("missing the command to record (carnot record -- COMMAND)", { exitCode: 2 });
  return resolveCommand(command[0]!);
}

/** Runs until the followed tree has ended or a stop signal; resolves once everything is written and detached. */
export async function runRecord(opts: RecordOptions): Promise<RecordSummary> {
  const status = opts.status ?? ((line: string) => process.stderr.write(`${line}\n`));
  const executable = checkStart(opts);
  if (opts.out !== null) assertWritable(opts.out, opts.followSymlinks);
  const stop = new AbortController();
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    stopSignal ??= signal;
    stop.abort();
  };
  const signals = stopSignals();
  for (const signal of signals) process.on(signal, onSignal);
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await recordUntil(opts, executable, stop.signal, status, () => stopSignal);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

async function recordUntil(
  opts: RecordOptions,
  executable: string | null,
  stopped: AbortSignal,
  status: (line: string) => void,
  stopSignalOf: () => NodeJS.Signals | null,
): Promise<RecordSummary> {
  const libc = new Libc();
  const capture = RecordCapture.open(opts.ringbufSize);
  let writer: ChainedWriter | null = null;
  let child: ReturnType<typeof Bun.spawn> | null = null;
  try {
    // a recording makes many records fast: hashing moves to its worker early
    writer = await ChainedWriter.open(opts.out, {
      key: opts.key,
      followSymlinks: opts.followSymlinks,
      largeOutput: true,
    });
    const usage = opts.seccomp !== undefined ? new SyscallUsage() : null;
    const startNs = Number(libc.monotonicNs());
    let gatedPid: number | undefined;
    const session = new RecordSession({ startNs, snapshot: snapshotProcess, gatedPid: () => gatedPid });
    if (executable !== null) {
      const [name, ...rest] = opts.command!;
      // the environment, argv[0] and stdio are the command's own, as under strace
      child = capture.spawnFollowed(() =>
        Bun.spawn([executable, ...rest], { argv0: name, stdio: ["inherit", "inherit", "inherit"] }),
      );
      gatedPid = child.pid;
      session.preload(child.pid);
    } else {
      // the process first: what it starts meanwhile is followed by the kernel; then what it had started
      for (const pid of processTree(opts.pid!)) {
        capture.follow(pid);
        session.preload(pid);
      }
    }
    status(
      `carnot: recording ${executable !== null ? `${opts.command!.join(" ")} (pid ${gatedPid})` : `process ${opts.pid} and its descendants`}, attached in ${capture.attachMs.toFixed(0)} ms`,
    );

    const reader = capture.reader;
    const decoder = new RecordDecoder(reader.dataBuffer, reader.dataOffset, 2 * reader.size);
    const out: EnhancedEvent[] = [];
    let line = 0;
    let writeError: unknown = null;
    const sink = (records: EnhancedEvent[]) => {
      for (const rec of records) {
        line++;
        usage?.add(rec, line);
        try {
          writer!.append(rec);
        } catch (err) {
          writeError ??= err;
        }
      }
      records.length = 0;
    };
    let degraded = false;
    const onRecord = (offset: number, length: number) => {
      const ev = session.freeEvent();
      if (decoder.decode(offset, length, ev) !== null) session.push(ev, out, degraded);
      if (out.length >= 256) sink(out);
    };
    const drain = (sliceMs = DRAIN_SLICE_MS) => {
      const until = performance.now() + sliceMs;
      for (;;) {
        // events waiting past the mark are written as they came, so the ring buffer does not overflow
        degraded = reader.pending() > reader.size * BACKPRESSURE_FILL;
        // in batches: the kernel gets each batch's room back as soon as it is read
        const n = reader.drain(onRecord, DRAIN_BATCH);
        sink(out);
        if (n < DRAIN_BATCH || performance.now() > until) return;
      }
    };

    let childExit: number | null = null;
    child?.exited.then((code) => {
      childExit = code ?? 128 + (osConstants.signals[child!.signalCode as NodeJS.Signals] ?? 0);
    });
    const done = Promise.withResolvers<void>();
    stopped.addEventListener("abort", () => done.resolve(), { once: true });
    if (stopped.aborted) done.resolve();
    let lastWrite = performance.now();
    let lastLiveness = performance.now();
    const timer = setInterval(() => {
      drain();
      const now = performance.now();
      if (now - lastWrite >= WRITE_INTERVAL_MS) {
        lastWrite = now;
        try {
          writer!.flush();
        } catch (err) {
          writeError ??= err;
        }
      }
      if (now - lastLiveness >= LIVENESS_INTERVAL_MS) {
        lastLiveness = now;
        // a process whose end event was lost still ends the recording when /proc no longer has it
        for (const pid of session.live)
          if (processState(pid) === null && pid !== gatedPid) session.live.delete(pid);
      }
      const commandDone = child === null || childExit !== null;
      if ((commandDone && session.live.size === 0) || writeError !== null) done.resolve();
      if (child !== null && childExit !== null && gatedPid !== undefined) session.live.delete(gatedPid);
    }, DRAIN_INTERVAL_MS);

    await done.promise;
    const stopStart = performance.now();
    clearInterval(timer);
    drain(Number.POSITIVE_INFINITY);
    session.finish(out);
    sink(out);
    if (writeError !== null) {
      await writer.abort(`write failed: ${describeError(writeError)}`);
      throw new CarnotError(`cannot write output: ${describeError(writeError)}`, { cause: writeError });
    }
    await writer.close();
    const stats = capture.stats();
    const stopMs = performance.now() - stopStart;
    const detachStart = performance.now();
    capture.close();
    const detachMs = performance.now() - detachStart;
    const c = session.counts;
    status(
      `carnot: ${c.records} records from ${c.events} events; kernel: ${stats.attempted} events, ${stats.dropped} dropped; ` +
        `${c.backpressure} without enrichment (${"PIPE_BACKPRESSURE"}), ${c.enrichTimeout} past the enrichment budget (ENRICH_TIMEOUT)`,
    );
    if (usage !== null && opts.seccomp !== undefined) {
      writeTextOutput(opts.seccomp, renderOciProfile(buildSeccompProfile(usage)), {
        followSymlinks: opts.followSymlinks,
      });
    }
    // stopped before the command ended: it goes on, detached, and carnot does not wait for it
    if (childExit === null) child?.unref();
    const signal = stopSignalOf();
    const exitCode = childExit ?? (signal !== null ? 128 + osConstants.signals[signal] : 0);
    return {
      exitCode,
      counts: c,
      kernelAttempted: stats.attempted,
      kernelDropped: stats.dropped,
      stopMs,
      detachMs,
    };
  } finally {
    await writer?.abort("record stopped by an error");
    capture.close();
  }
}
