/**
 * The tracing loop of `carnot trace`: probes → drain on a short timer → correlate → records → chained writer,
 * metrics on stderr, and an orderly stop (drain, flush pending as incomplete, seal, metrics, then detach).
 */
import { Libc } from "../../ffi/libc.ts";
import {
  closeSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { ChainedWriter } from "../chain/writer.ts";
import { CarnotError, describeError } from "../errors.ts";
import { log } from "../log.ts";
import { type CorrelatedHandshake, HandshakeCorrelator } from "./libssl/correlate.ts";
import { type CalibrationResult, calibrate } from "./libssl/calibration/calibrate.ts";
import { type GroupIndex, indexGroups } from "./groups.ts";
import { checkLibssl, findSystemLibssl, opensslVersion } from "./libssl/library.ts";
import { appendObservation, type LibraryFacts, type ObservationContext } from "./observation.ts";
import { openCacheDir, traceCacheDir } from "./cache-dir.ts";
import { type CarnotEvent, EventKind } from "./libssl/events.ts";
import { SslProbes } from "./libssl/probes.ts";
import { heldStopSignal, stopSignals } from "./stop-signals.ts";
import { untrustedReason } from "./trusted-path.ts";
import { warmUpPipeline } from "./warmup.ts";

export interface TraceOptions {
  /** output file; null = stdout */
  out: string | null;
  /** libraries to probe; empty = the system libssl */
  libraries: string[];
  pid?: number;
  comm?: string;
  windowMs: number;
  maxPending: number;
  ringbufSize?: number;
  /** seconds between metrics lines on stderr; 0 = only at exit */
  metricsIntervalS: number;
  metricsJson?: string;
  key?: Uint8Array;
  /** stop by itself after this many seconds */
  durationS?: number;
  verbose: boolean;
  /** also probe SSL_read/SSL_write entries (implicit handshakes of apps that never call SSL_get_error) */
  implicitProbes?: boolean;
  /** one event per call from the kernel, correlated in user space (default: one event per handshake) */
  rawEvents?: boolean;
  /** where verified offsets are cached (default: traceCacheDir()) */
  cacheDir?: string;
  /** stops the trace like SIGINT does (tests, the demo) */
  signal?: AbortSignal;
  /** where "ready" and metrics lines go (default stderr) */
  status?: (line: string) => void;
}

export interface TraceMetrics {
  eventsReceived: number;
  handshakesEmitted: number;
  correlationTimeouts: number;
  cacheEvictions: number;
  kernel_drops: number;
  kernel_drop_rate: number;
}

export interface TraceSummary {
  metrics: TraceMetrics;
  /** records written (handshakesEmitted minus none: every handshake becomes a line) */
  records: number;
  attachMs: number;
  /** from the stop request to the seal written (detaching comes after) */
  stopMs: number;
  /** detaching every probe */
  detachMs: number;
  libraries: string[];
}

/**
 * How often the ring buffer is drained. The default 8 MiB holds 26,000 events: full between two drains only
 * above 500,000 events/s. Batches of a few hundred events run the pipeline with warm caches: −20 % of the
 * tracer's cycles per handshake against 10 ms (WORKLOG.md); lines still reach the output every 200 ms.
 */
const DRAIN_INTERVAL_MS = 50;
/** How often whole lines reach the output file when the writer's buffer is not yet full. */
const WRITE_INTERVAL_MS = 200;
/** How often pending handshakes are checked against the window (a scan of the pending table). */
const EXPIRE_INTERVAL_MS = 100;
/** Aggregated mode: how often the kernel's table of handshakes in progress is scanned for stale ones. */
const KERNEL_EXPIRE_INTERVAL_MS = 500;
/** Above the kernel's table of announced processes (16,384): what it still holds, this table holds too. */
const EXE_TABLE_MAX = 32_768;

/**
 * The clocks, sampled once at start. bpf_ktime_get_ns counts CLOCK_MONOTONIC, which Bun does not expose
 * (process.hrtime counts from process start), so libc's clock_gettime is read once and related to both.
 */
export interface ClockOffsets {
  /** wall clock minus CLOCK_MONOTONIC, in µs (for the records' `time`) */
  wallMinusMonotonicUs: number;
  /** CLOCK_MONOTONIC minus process.hrtime, in ns (for expiring pending handshakes against event times) */
  monotonicMinusHrtimeNs: number;
}

export function sampleClocks(libc: Libc = new Libc()): ClockOffsets {
  const hrBefore = process.hrtime.bigint();
  const wallBefore = performance.timeOrigin + performance.now();
  const monoNs = libc.monotonicNs();
  const wallAfter = performance.timeOrigin + performance.now();
  const hrAfter = process.hrtime.bigint();
  return {
    wallMinusMonotonicUs: Math.round(((wallBefore + wallAfter) / 2) * 1000) - Number(monoNs / 1000n),
    monotonicMinusHrtimeNs: Number(monoNs - (hrBefore + hrAfter) / 2n),
  };
}

/** Fails early, before anything is attached, when the output cannot be written; creates nothing. */
function assertWritable(path: string): void {
  let existed = true;
  try {
    statSync(path);
  } catch {
    existed = false;
  }
  try {
    if (existed && statSync(path).isDirectory()) throw new Error("is a directory");
    closeSync(openSync(path, "a"));
    if (!existed) unlinkSync(path);
  } catch (err) {
    // the errno name says it; the cause stays for --verbose
    const reason = (err as NodeJS.ErrnoException).code ?? describeError(err);
    throw new CarnotError(`output path not writable: ${path} (${reason})`, { exitCode: 2 });
  }
}

export function formatMetrics(m: TraceMetrics): string {
  return (
    `eventsReceived=${m.eventsReceived} handshakesEmitted=${m.handshakesEmitted} ` +
    `correlationTimeouts=${m.correlationTimeouts} cacheEvictions=${m.cacheEvictions} ` +
    `kernel_drops=${m.kernel_drops} kernel_drop_rate=${m.kernel_drop_rate}`
  );
}

function writeMetricsJson(path: string, m: TraceMetrics): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(m)}\n`);
    renameSync(tmp, path);
  } catch (err) {
    throw new CarnotError(`cannot write metrics to ${path}`, { cause: err });
  }
}

/**
 * Each process's executable, as the kernel announced it (CARNOT_EV_EXE, taken at the process's first event:
 * a short-lived client is gone by the time its handshake is read). Bounded: the oldest process goes first, and
 * one seen again moves to the back; a process the kernel announced before it was dropped here is unknown (null).
 */
class ExeTable {
  private readonly paths = new Map<number, string | null>();
  learn(ev: CarnotEvent): void {
    this.paths.delete(ev.pid);
    if (this.paths.size >= EXE_TABLE_MAX) {
      const oldest = this.paths.keys().next().value;
      if (oldest !== undefined) this.paths.delete(oldest);
    }
    // an error (deleted, too deep) is an unknown executable: null, never a guess
    this.paths.set(ev.pid, ev.ret === 0 && ev.text !== null && ev.text !== "" ? ev.text : null);
  }
  get(pid: number): string | null {
    const exe = this.paths.get(pid);
    if (exe === undefined) return null;
    this.paths.delete(pid);
    this.paths.set(pid, exe);
    return exe;
  }
}

/** Functions whose probes say which groups a connection or its context was given. */
const GROUP_SETTERS = ["SSL_ctrl", "SSL_CTX_ctrl"];

/**
 * What the records say about a library: its label with the OpenSSL version, cipher names, default groups
 * (none when a probe on a group setter is missing: groups an application set would go unseen, and the
 * library's defaults would be a guess).
 */
export function libraryFacts(
  path: string,
  result: CalibrationResult | undefined,
  groups: GroupIndex,
  unprobed: readonly string[] = [],
): LibraryFacts {
  const c = result?.calibration ?? null;
  // the library's own answer (OpenSSL_version) first, else the version string found in the file
  const fromLibrary = c ? /OpenSSL \d+\.\d+\.\d+[a-z]?/.exec(c.openssl)?.[0] : undefined;
  const fromFile = opensslVersion(path);
  const version = fromLibrary ?? (fromFile ? `OpenSSL ${fromFile}` : null);
  let defaultGroups: string[] | null = null;
  if (c?.defaultGroups && !unprobed.some((name) => GROUP_SETTERS.includes(name))) {
    const names = c.defaultGroups.map((code) => groups.byCodePoint.get(code)?.name ?? null);
    // a code point carnot cannot name makes the list incomplete: no list rather than a wrong one
    defaultGroups = names.every((n) => n !== null) ? (names as string[]) : null;
  }
  return { label: version ? `${path} (${version})` : path, ciphers: c?.ciphers ?? null, defaultGroups };
}

/**
 * Runs until a stop signal (SIGINT, SIGTERM, SIGHUP: src/trace/stop-signals.ts), `durationS` or `signal`;
 * resolves once everything is written and detached.
 */
export async function runTrace(opts: TraceOptions): Promise<TraceSummary> {
  // Taken from the start: one that arrives during calibration, the BPF load or the warm-up (or before, while
  // carnot itself started: heldStopSignal) stops the trace as soon as it is attached (drained, sealed, exit 0)
  // instead of killing it midway.
  const stop = new AbortController();
  const requestStop = () => stop.abort();
  const signals = stopSignals();
  for (const signal of signals) process.on(signal, requestStop);
  if (heldStopSignal() !== null) requestStop();
  opts.signal?.addEventListener("abort", requestStop, { once: true });
  if (opts.signal?.aborted) requestStop();
  try {
    return await traceUntil(opts, stop.signal);
  } finally {
    for (const signal of signals) process.off(signal, requestStop);
    opts.signal?.removeEventListener("abort", requestStop);
  }
}

/** The trace itself; `stopSignal` ends it (from a stop signal, the caller's signal or --duration). */
async function traceUntil(opts: TraceOptions, stopSignal: AbortSignal): Promise<TraceSummary> {
  const status = opts.status ?? ((line: string) => process.stderr.write(`${line}\n`));
  const libraries = opts.libraries.length > 0 ? opts.libraries : [findSystemLibssl()];
  if (libraries.some((l) => l === null)) {
    throw new CarnotError("no libssl found (install libssl3, or name one with --libssl PATH)");
  }
  if (opts.out !== null) assertWritable(opts.out);
  if (opts.metricsJson) {
    try {
      statSync(dirname(opts.metricsJson));
    } catch (err) {
      throw new CarnotError(`metrics path not writable: ${opts.metricsJson}`, { exitCode: 2, cause: err });
    }
  }

  // What cannot be probed, or could have been prepared by another user, is refused before anything runs it
  // (the calibration loads the library, or executes a program such as node, even if confined).
  const resolvedLibraries = (libraries as string[]).map((path) => {
    let resolved: string;
    try {
      resolved = checkLibssl(path).path;
    } catch (err) {
      throw new CarnotError(describeError(err), { exitCode: 2 });
    }
    const untrusted = untrustedReason(resolved, { siblingsUsed: true });
    if (untrusted !== null) {
      const named = opts.libraries.length > 0 ? `--libssl ${path}` : `the system libssl ${path}`;
      throw new CarnotError(`refused ${named}: ${untrusted}`, { exitCode: 2 });
    }
    return resolved;
  });
  const cache = openCacheDir(opts.cacheDir ?? traceCacheDir());
  if (cache.problem !== null) status(`carnot: warning: cache directory not used: ${cache.problem}`);
  // Offsets verified for each exact file before anything is attached (a cached result costs a digest).
  const calibrations = new Map<string, CalibrationResult>();
  for (const resolved of resolvedLibraries) {
    if (!calibrations.has(resolved))
      calibrations.set(resolved, await calibrate(resolved, { cacheDir: opts.cacheDir }));
  }
  const offsetsOf = (path: string) => {
    let resolved = path;
    try {
      resolved = realpathSync(path);
    } catch {}
    const c = calibrations.get(resolved)?.calibration;
    return c ? { ...c.offsets, handStateOk: c.handStateOk } : null;
  };
  const probes = SslProbes.open({
    libraries: libraries as string[],
    pid: opts.pid,
    comm: opts.comm,
    ringbufSize: opts.ringbufSize,
    verbose: opts.verbose,
    offsets: (libraries as string[]).map(offsetsOf),
    implicitProbes: opts.implicitProbes,
    aggregate: opts.rawEvents !== true,
    maxPending: opts.maxPending,
  });
  let writer: ChainedWriter;
  try {
    writer = await ChainedWriter.open(opts.out, { key: opts.key });
  } catch (err) {
    probes.close();
    throw err;
  }

  const groupIndex = indexGroups();
  const facts = probes.libraries.map(({ id, path }) =>
    libraryFacts(
      path,
      calibrations.get(path),
      groupIndex,
      (probes.refused.get(id) ?? []).map((r) => r.func),
    ),
  );
  const labels = facts.map((f) => f.label);
  for (const [id, refused] of probes.refused) {
    const which = refused.map((r) => `${r.func}: ${r.reason}`).join("; ");
    status(
      `carnot: warning: ${labels[id]}: not probed — ${which}; tracing with the other probes, ` +
        "what only these would show stays null",
    );
  }
  for (const { path } of probes.libraries) {
    const result = calibrations.get(path);
    const label = facts[probes.libraries.findIndex((l) => l.path === path)]!.label;
    if (result?.calibration) {
      const unverified = Object.entries(result.calibration.offsets)
        .filter(([, value]) => value === null)
        .map(([name]) => name);
      if (opts.verbose) {
        const how = result.cached ? "cached" : `${result.calibration.handshakes} calibration handshakes`;
        status(`carnot: ${label}: offsets verified (${how}): ${JSON.stringify(result.calibration.offsets)}`);
      }
      if (unverified.length > 0) {
        status(
          `carnot: warning: ${label}: no verified offset for ${unverified.join(", ")}: those values stay null`,
        );
      }
    } else {
      status(
        `carnot: warning: ${label}: struct offsets not verified (${result?.problem ?? "not calibrated"}): ` +
          "negotiated_group, tls_version and cipher stay null, implicit handshakes are not seen",
      );
    }
  }
  const clocks = sampleClocks();
  const monotonicNowNs = () => Number(process.hrtime.bigint()) + clocks.monotonicMinusHrtimeNs;
  const exe = new ExeTable();
  const unknownLibrary = (id: number): LibraryFacts => ({
    label: `lib_id ${id}`,
    ciphers: null,
    defaultGroups: null,
  });
  const context: ObservationContext = {
    library: (id) => facts[id] ?? unknownLibrary(id),
    exe: (pid) => exe.get(pid),
    clockOffsetUs: clocks.wallMinusMonotonicUs,
    groupIndex,
  };
  let writeError: unknown = null;
  const warned = new Set<string>();
  const warnOnce = (lib: LibraryFacts, problem: string) => {
    // once per library and kind of problem (the numbers in it vary)
    const key = `${lib.label}:${problem.replace(/0x[0-9a-f]+|\d+/g, "N")}`;
    if (warned.has(key)) return;
    warned.add(key);
    status(`carnot: warning: ${lib.label}: ${problem}: value left null`);
  };
  const onHandshake = (hs: CorrelatedHandshake) => {
    if (writeError) return;
    try {
      appendObservation(hs, context, writer, warnOnce);
    } catch (err) {
      writeError = err;
    }
  };
  const correlator = new HandshakeCorrelator(
    { windowNs: opts.windowMs * 1e6, maxPending: opts.maxPending, groupIndex },
    onHandshake,
  );
  const aggregate = opts.rawEvents !== true;
  const commOf = (pid: number): string => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  };
  /** Aggregated mode: handshakes the kernel holds, untouched since `before`, become lines with `error`. */
  const giveUpKernelHandshakes = (error: string, before: number) => {
    const now = monotonicNowNs();
    for (const hs of probes.liveHandshakes()) {
      if (hs.lastNs >= before) continue;
      probes.forgetHandshake(hs);
      correlator.giveUp(hs, error, error === "timeout" ? hs.lastNs : now, commOf(hs.pid));
    }
  };
  let eventsReceived = 0;
  const drainAll = (): number => {
    let total = 0;
    for (;;) {
      const n = probes.drain((ev) => {
        if (ev.kind === EventKind.Exe) exe.learn(ev);
        else correlator.push(ev);
      });
      total += n;
      if (n === 0) break;
    }
    eventsReceived += total;
    return total;
  };
  const metrics = (): TraceMetrics => {
    const { dropped } = probes.stats();
    const c = correlator.counters;
    const seen = eventsReceived + dropped;
    return {
      eventsReceived,
      handshakesEmitted: c.handshakesEmitted,
      correlationTimeouts: c.correlationTimeouts,
      cacheEvictions: c.cacheEvictions + probes.kernelEvictions,
      kernel_drops: dropped,
      kernel_drop_rate: seen === 0 ? 0 : Number((dropped / seen).toPrecision(6)),
    };
  };
  // The writer buffers ~1 MiB; a live trace (`carnot trace | jq`) wants its lines out while they are fresh.
  const flushWriter = () => writer.flush();

  if (aggregate) {
    // The engine compiles the hot path on these synthetic handshakes, not on the first real ones, while the
    // traced host is busy. After the BPF load (whose transient memory would otherwise add to the warm-up's);
    // events arriving meanwhile wait in the ring buffer.
    const start = performance.now();
    try {
      const made = await warmUpPipeline({ ...context, exe: () => null }, groupIndex);
      log.debug(
        `trace: pipeline warmed up with ${made} synthetic handshakes in ${(performance.now() - start).toFixed(0)} ms`,
      );
    } catch (err) {
      log.debug(`trace: pipeline warm-up failed: ${describeError(err)}`);
    }
  }
  const attachMs = probes.attachMs;
  const where = labels.join(", ");
  status(`carnot: ready: ${probes.linkCount} probes on ${where}, attached in ${attachMs.toFixed(0)} ms`);

  let stopRequested = 0;
  const stopped = Promise.withResolvers<void>();
  const requestStop = () => {
    if (stopRequested === 0) stopRequested = performance.now();
    stopped.resolve();
  };
  stopSignal.addEventListener("abort", requestStop, { once: true });
  if (stopSignal.aborted) requestStop();
  const timers: ReturnType<typeof setInterval>[] = [];
  let lastWrite = performance.now();
  let lastExpire = lastWrite;
  let lastKernelExpire = lastWrite;
  timers.push(
    setInterval(() => {
      drainAll();
      const now = performance.now();
      if (now - lastExpire >= EXPIRE_INTERVAL_MS) {
        lastExpire = now;
        correlator.expire(monotonicNowNs());
      }
      if (aggregate && now - lastKernelExpire >= KERNEL_EXPIRE_INTERVAL_MS) {
        lastKernelExpire = now;
        giveUpKernelHandshakes("timeout", monotonicNowNs() - opts.windowMs * 1e6);
      }
      if (now - lastWrite >= WRITE_INTERVAL_MS) {
        lastWrite = now;
        try {
          flushWriter();
        } catch (err) {
          writeError ??= err;
        }
      }
      if (writeError) requestStop();
    }, DRAIN_INTERVAL_MS),
  );
  if (opts.metricsIntervalS > 0) {
    timers.push(
      setInterval(() => {
        const m = metrics();
        status(`carnot: ${formatMetrics(m)}`);
        if (opts.metricsJson) writeMetricsJson(opts.metricsJson, m);
      }, opts.metricsIntervalS * 1000),
    );
  }
  if (opts.durationS !== undefined) timers.push(setTimeout(requestStop, opts.durationS * 1000));

  try {
    await stopped.promise;
    for (const t of timers) clearInterval(t);
    drainAll();
    if (aggregate) giveUpKernelHandshakes("incomplete", Number.POSITIVE_INFINITY);
    correlator.flush("incomplete");
    if (writeError) {
      await writer.abort(`write failed: ${describeError(writeError)}`);
      throw new CarnotError(`cannot write output: ${describeError(writeError)}`, { cause: writeError });
    }
    await writer.close();
    const m = metrics();
    const stopMs = performance.now() - stopRequested;
    status(`carnot: ${formatMetrics(m)}`);
    if (opts.metricsJson) writeMetricsJson(opts.metricsJson, m);
    const detachStart = performance.now();
    probes.close();
    const detachMs = performance.now() - detachStart;
    return { metrics: m, records: writer.count, attachMs, stopMs, detachMs, libraries: labels };
  } finally {
    for (const t of timers) clearInterval(t);
    stopSignal.removeEventListener("abort", requestStop);
    await writer.abort("trace stopped by an error");
    probes.close();
  }
}
