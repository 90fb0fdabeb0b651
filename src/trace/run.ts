/**
 * `carnot trace` from start to stop: sources opened (offsets verified first), the pipeline drained on a short
 * timer, metrics on stderr, and an orderly stop (drain, what is in progress written as incomplete, seal,
 * metrics, then detach). The data path itself is src/trace/pipeline.ts.
 */
import { Libc } from "../../ffi/libc.ts";
import { closeSync, constants, openSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { assertRotationDirectory, RotatingLog } from "../chain/rotation.ts";
import { OutputHeld } from "../chain/writer.ts";
import { type ExportOutcome, NatsExporter } from "../export/exporter.ts";
import type { NatsTarget } from "../export/nats-url.ts";
import { CarnotError, describeError } from "../errors.ts";
import { log } from "../log.ts";
import { CgroupResolver } from "./attribution/cgroups.ts";
import { readHostIdentity } from "./attribution/host.ts";
import { ExeTable } from "./exe-table.ts";
import { indexGroups } from "./groups.ts";
import { EMPTY_METRICS, formatMetrics, type TraceMetrics, writeMetricsJson } from "./metrics.ts";
import type { LibraryFacts, ObservationContext, ObservationSink } from "./observation.ts";
import { TracePipeline } from "./pipeline.ts";
import { HandshakeTally, type KexFields, type MetricsEndpoint, startMetricsEndpoint } from "./prometheus.ts";
import type { ListenAddress } from "../serve/server.ts";
import { type OpenedSources, openSources, type SourceChoice } from "./sources.ts";
import { heldStopSignal, stopSignals } from "./stop-signals.ts";
import { warmUpPipeline } from "./warmup.ts";

const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = constants;

export type { TraceMetrics } from "./metrics.ts";
export { formatMetrics } from "./metrics.ts";

export interface TraceOptions {
  /** output file; null = stdout */
  out: string | null;
  /** which kernel sources run (default: both) */
  source?: SourceChoice;
  /** libraries to probe; empty = the system libssl */
  libraries: string[];
  pid?: number;
  comm?: string;
  /** only this container (its full id or the start of it), filtered in the kernel by its cgroup */
  container?: string;
  windowMs: number;
  maxPending: number;
  ringbufSize?: number;
  /** seconds between metrics lines on stderr; 0 = only at exit */
  metricsIntervalS: number;
  metricsJson?: string;
  /** publish every record to this JetStream subject (`--export`); needs `out` */
  export?: NatsTarget;
  /** rotation of the output file (`--rotate-size`, `--rotate-every`, `--max-files`) */
  rotation?: { sizeBytes?: number; everyS?: number; maxFiles?: number };
  /** serve the counters in Prometheus text format at http://ADDRESS/metrics (`--metrics-addr`, as given) */
  metricsAddr?: { address: ListenAddress; text: string };
  /** write through existing symlinks at `out` and `metricsJson` (`--follow-symlinks`) */
  followSymlinks?: boolean;
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

export interface TraceSummary {
  metrics: TraceMetrics;
  /** records written (handshakesEmitted minus none: every handshake becomes a line), over every file */
  records: number;
  /** files closed and replaced by the next one */
  rotations: number;
  /** what the exporter left (null without --export) */
  exported: ExportOutcome | null;
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
/** While the disk is full, how often the held lines are tried again. */
const HELD_RETRY_MS = 1_000;

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
export function assertWritable(path: string, followSymlinks = false): void {
  let existed = true;
  try {
    statSync(path);
  } catch {
    existed = false;
  }
  try {
    if (existed && statSync(path).isDirectory()) throw new Error("is a directory");
    // never through a link planted at the name (it could create the link's target as root)
    closeSync(openSync(path, O_WRONLY | O_APPEND | O_CREAT | (followSymlinks ? 0 : O_NOFOLLOW), 0o644));
    if (!existed) unlinkSync(path);
  } catch (err) {
    // the errno name says it; the cause stays for --verbose
    const reason = (err as NodeJS.ErrnoException).code ?? describeError(err);
    throw new CarnotError(`output path not writable: ${path} (${reason})`, { exitCode: 2 });
  }
}

/** What SIGHUP does: stop the trace (until the output can rotate), then rotate it. */
interface Hangup {
  action: () => void;
}

/**
 * Runs until a stop signal (SIGINT, SIGTERM, SIGHUP: src/trace/stop-signals.ts), `durationS` or `signal`;
 * resolves once everything is written and detached. Once the trace is ready and its output is a file, SIGHUP
 * rotates the output instead of stopping.
 */
export async function runTrace(opts: TraceOptions): Promise<TraceSummary> {
  // Taken from the start: one that arrives during calibration, the BPF load or the warm-up (or before, while
  // carnot itself started: heldStopSignal) stops the trace as soon as it is attached (drained, sealed, exit 0)
  // instead of killing it midway.
  const stop = new AbortController();
  const requestStop = () => stop.abort();
  const hangup: Hangup = { action: requestStop };
  const onHangup = () => hangup.action();
  const signals = stopSignals();
  const listeners = signals.map((signal) => [signal, signal === "SIGHUP" ? onHangup : requestStop] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  if (heldStopSignal() !== null) requestStop();
  opts.signal?.addEventListener("abort", requestStop, { once: true });
  if (opts.signal?.aborted) requestStop();
  try {
    return await traceUntil(opts, stop.signal, hangup);
  } finally {
    for (const [signal, listener] of listeners) process.off(signal, listener);
    opts.signal?.removeEventListener("abort", requestStop);
  }
}

/** What the metrics endpoint reads, filled in as the trace starts. */
interface Running {
  pipeline: TracePipeline | null;
  output: RotatingLog | null;
  exporter: NatsExporter | null;
}

/** The trace itself; `stopSignal` ends it (from a stop signal, the caller's signal or --duration). */
async function traceUntil(
  opts: TraceOptions,
  stopSignal: AbortSignal,
  hangup: Hangup,
): Promise<TraceSummary> {
  const status = opts.status ?? ((line: string) => process.stderr.write(`${line}\n`));
  const rotation = opts.rotation ?? {};
  const rotating =
    rotation.sizeBytes !== undefined || rotation.everyS !== undefined || rotation.maxFiles !== undefined;
  if (rotating && opts.out === null)
    throw new CarnotError("--rotate-size, --rotate-every and --max-files need --out FILE", { exitCode: 2 });
  // the file is the exporter's queue: what the broker has not acknowledged is read again from it
  if (opts.export && opts.out === null)
    throw new CarnotError(
      "--export needs --out FILE: the records are sent from the file, which keeps them while the broker is away",
      { exitCode: 2 },
    );
  if (opts.out !== null) assertWritable(opts.out, opts.followSymlinks);
  if (rotating && opts.out !== null) assertRotationDirectory(opts.out);
  if (opts.metricsJson) {
    try {
      statSync(dirname(opts.metricsJson));
    } catch (err) {
      throw new CarnotError(`metrics path not writable: ${opts.metricsJson}`, { exitCode: 2, cause: err });
    }
  }
  // the port is taken before anything is attached: one in use is a usage error, not a failure hours later
  const running: Running = { pipeline: null, output: null, exporter: null };
  const tally = new HandshakeTally();
  let endpoint: MetricsEndpoint | null = null;
  if (opts.metricsAddr) {
    endpoint = startMetricsEndpoint(
      opts.metricsAddr.address,
      opts.metricsAddr.text,
      () => ({
        trace: running.pipeline?.metrics() ?? EMPTY_METRICS,
        tally,
        agent: agentCounters(running),
      }),
      { rotation: opts.out !== null, export: opts.export !== undefined },
    );
  }
  try {
    return await traceWith(opts, { stopSignal, hangup, status, tally, endpoint, running, rotating });
  } finally {
    await endpoint?.stop();
  }
}

/** The rotation's counters, by metric name (src/trace/prometheus.ts). */
function agentCounters(running: Running): Record<string, number> {
  const c = running.output?.counters;
  return c
    ? { rotations_total: c.rotations, rotation_failures_total: c.failures, files_deleted_total: c.deleted }
    : {};
}

interface TraceContext {
  stopSignal: AbortSignal;
  hangup: Hangup;
  status: (line: string) => void;
  tally: HandshakeTally;
  endpoint: MetricsEndpoint | null;
  running: Running;
  /** --rotate-size, --rotate-every or --max-files given */
  rotating: boolean;
}

/** After a rotation that could not be made, the size limit is tried again only after this long. */
const ROTATION_RETRY_MS = 5_000;

/** The trace once the metrics endpoint (if any) listens. */
async function traceWith(opts: TraceOptions, t: TraceContext): Promise<TraceSummary> {
  const { status, tally, endpoint, running } = t;
  const groupIndex = indexGroups();
  const host = readHostIdentity();
  const cgroups = CgroupResolver.open();
  let sources: OpenedSources;
  let container: ReturnType<CgroupResolver["findContainer"]> | undefined;
  try {
    container = opts.container === undefined ? undefined : cgroups.findContainer(opts.container);
    if (cgroups.problem !== null)
      status(`carnot: warning: ${cgroups.problem}: cgroup, container_id and pod_uid stay null`);
    sources = await openSources({
      ...opts,
      source: opts.source ?? "all",
      cgroup: container?.filter,
      groupIndex,
      status,
    });
  } catch (err) {
    cgroups.close();
    throw err;
  }
  const exporter =
    opts.export === undefined
      ? null
      : NatsExporter.start(opts.export, (line, warning) =>
          status(`carnot: ${warning ? "warning: " : ""}${line}`),
        );
  running.exporter = exporter;
  let output: RotatingLog;
  try {
    output = await RotatingLog.open(
      opts.out,
      // hashed in this thread, so a full disk holds the lines here and retries; a hash thread would save the
      // tracer little (its raw_hash is computed here either way: WORKLOG.md)
      {
        key: opts.key,
        followSymlinks: opts.followSymlinks,
        parallelAfter: Number.POSITIVE_INFINITY,
        holdWhenFull: true,
      },
      { sizeBytes: opts.rotation?.sizeBytes, maxFiles: opts.rotation?.maxFiles, keepEarlier: t.rotating },
      {
        warn: (line) => status(`carnot: warning: ${line}`),
        onFile: (file) => exporter?.file(file.sequence, file.fd),
        onSealed: (file) => exporter?.written(file.sequence, file.bytes, true),
      },
    );
    if (exporter !== null && !output.rotatable)
      throw new CarnotError(`--export needs --out to be a regular file, not ${opts.out}`, { exitCode: 2 });
  } catch (err) {
    await exporter?.stop();
    sources.close();
    cgroups.close();
    throw err;
  }
  running.output = output;
  const clocks = sampleClocks();
  const monotonicNowNs = () => Number(process.hrtime.bigint()) + clocks.monotonicMinusHrtimeNs;
  const exe = new ExeTable();
  const unknownLibrary = (id: number): LibraryFacts => ({
    label: `lib_id ${id}`,
    ciphers: null,
    defaultGroups: null,
  });
  const context: ObservationContext = {
    library: (id) => sources.facts[id] ?? unknownLibrary(id),
    exe: (pid) => exe.get(pid),
    cgroup: (id) => cgroups.facts(id),
    host: host.host,
    machineId: host.machineId,
    clockOffsetUs: clocks.wallMinusMonotonicUs,
    groupIndex,
  };
  const warned = new Set<string>();
  const warnOnce = (lib: LibraryFacts | null, problem: string) => {
    // once per library and kind of problem (the numbers in it vary)
    const label = lib?.label ?? "wire";
    const key = `${label}:${problem.replace(/0x[0-9a-f]+|\d+/g, "N")}`;
    if (warned.has(key)) return;
    warned.add(key);
    status(`carnot: warning: ${label}: ${problem}: value left null`);
  };
  // the handshakes by key exchange are counted for the endpoint as each record goes to the writer
  const sink: ObservationSink =
    endpoint === null
      ? output
      : {
          append(record, canonical) {
            tally.count(record as unknown as KexFields);
            output.append(record, canonical);
          },
        };
  const pipeline = new TracePipeline({
    windowMs: opts.windowMs,
    maxPending: opts.maxPending,
    groupIndex,
    libssl: sources.probes,
    wire: sources.wire,
    context,
    sink,
    onProblem: warnOnce,
    exeTable: exe,
    filtered:
      opts.pid !== undefined || (opts.comm !== undefined && opts.comm !== "") || opts.container !== undefined,
    commOf,
  });
  running.pipeline = pipeline;

  if (opts.rawEvents !== true) {
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
  if (endpoint !== null) status(`carnot: metrics at ${endpoint.url}`);
  const only = container ? `, only container ${container.containerId} (cgroup ${container.path})` : "";
  status(`carnot: ready: ${sources.summary}${only}, attached in ${sources.attachMs.toFixed(0)} ms`);

  let stopRequested = 0;
  const stopped = Promise.withResolvers<void>();
  const requestStop = () => {
    if (stopRequested === 0) stopRequested = performance.now();
    stopped.resolve();
  };
  t.stopSignal.addEventListener("abort", requestStop, { once: true });
  if (t.stopSignal.aborted) requestStop();
  // from now on SIGHUP rotates a file output (logrotate's convention); a stream has nothing to rotate
  let rotateRequested = false;
  if (output.rotatable) {
    t.hangup.action = () => {
      rotateRequested = true;
    };
  }
  /** the rotation under way: nothing is drained meanwhile (events wait in the ring buffer) */
  let rotation: Promise<void> | null = null;
  let rotationRetryAt = 0;
  const rotationWarnings = new Set<string>();
  const rotate = async () => {
    try {
      const done = await output.rotate();
      // each reason once (the count is in the metrics); a directory that stays locked would repeat it
      if (done.warning !== null && !rotationWarnings.has(done.warning)) {
        rotationWarnings.add(done.warning);
        status(`carnot: warning: ${done.warning}`);
      }
      if (done.archived === null) rotationRetryAt = performance.now() + ROTATION_RETRY_MS;
      else log.debug(`trace: rotated to ${done.archived}`);
    } catch (err) {
      pipeline.writeError ??= err;
    }
  };
  const timers: ReturnType<typeof setInterval>[] = [];
  let lastWrite = performance.now();
  /** since when the disk has refused the output's lines (0: it takes them) */
  let heldSince = 0;
  const flushOutput = (now: number) => {
    lastWrite = now;
    try {
      // the writer buffers ~1 MiB; a live trace (`carnot trace | jq`) wants its lines while they are fresh
      output.flush();
      exporter?.written(output.sequence, output.writer.bytes);
      if (heldSince !== 0) {
        status(
          `carnot: ${output.out} written again after ${((now - heldSince) / 1000).toFixed(1)} s; nothing held was lost`,
        );
        heldSince = 0;
      }
    } catch (err) {
      if (!(err instanceof OutputHeld)) {
        pipeline.writeError ??= err;
        return;
      }
      if (heldSince === 0) {
        heldSince = now;
        output.counters.stalls++;
        status(
          `carnot: warning: ${err.message}; ${err.lines} records held in memory and nothing more read until they are written (what the kernel cannot hold meanwhile is counted in kernel_drops); trying again every ${HELD_RETRY_MS / 1000} s`,
        );
      }
    }
  };
  timers.push(
    setInterval(() => {
      if (rotation !== null) return;
      const now = performance.now();
      // a full disk: nothing is read (events wait in the ring buffer) until the held lines are written
      if (heldSince !== 0) {
        if (now - lastWrite >= HELD_RETRY_MS) flushOutput(now);
        return;
      }
      pipeline.drain(sources.region);
      pipeline.tick(monotonicNowNs());
      if (pipeline.writeError === null && now >= rotationRetryAt && (rotateRequested || output.full)) {
        rotateRequested = false;
        rotation = rotate().finally(() => {
          rotation = null;
        });
        return;
      }
      if (now - lastWrite >= WRITE_INTERVAL_MS) flushOutput(now);
      if (pipeline.writeError) requestStop();
    }, DRAIN_INTERVAL_MS),
  );
  const everyS = opts.rotation?.everyS;
  if (everyS !== undefined) {
    timers.push(
      setInterval(() => {
        rotateRequested = true;
      }, everyS * 1000),
    );
  }
  if (opts.metricsIntervalS > 0) {
    timers.push(
      setInterval(() => {
        const m = pipeline.metrics();
        status(`carnot: ${formatMetrics(m)}`);
        if (opts.metricsJson) writeMetricsJson(opts.metricsJson, m, opts.followSymlinks);
      }, opts.metricsIntervalS * 1000),
    );
  }
  if (opts.durationS !== undefined) timers.push(setTimeout(requestStop, opts.durationS * 1000));

  try {
    await stopped.promise;
    for (const t of timers) clearInterval(t);
    await rotation;
    pipeline.finish(sources.region, monotonicNowNs);
    const writeError = pipeline.writeError;
    if (writeError) {
      await output.abort(`write failed: ${describeError(writeError)}`);
      throw new CarnotError(`cannot write output: ${describeError(writeError)}`, { cause: writeError });
    }
    await output.close();
    const exported = exporter === null ? null : await finishExport(exporter, output, status);
    const m = pipeline.metrics();
    const stopMs = performance.now() - stopRequested;
    status(`carnot: ${formatMetrics(m)}`);
    if (opts.metricsJson) writeMetricsJson(opts.metricsJson, m, opts.followSymlinks);
    const detachStart = performance.now();
    sources.close();
    const detachMs = performance.now() - detachStart;
    const libraries = sources.facts.map((f) => f.label);
    return {
      metrics: m,
      records: output.count,
      exported,
      rotations: output.counters.rotations,
      attachMs: sources.attachMs,
      stopMs,
      detachMs,
      libraries,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    t.stopSignal.removeEventListener("abort", requestStop);
    await output.abort("trace stopped by an error");
    await exporter?.stop();
    sources.close();
    cgroups.close();
  }
}

/** How long the exporter may take at the end to have the last records acknowledged. */
const EXPORT_GRACE_MS = 5_000;

/** At the end: the last records acknowledged within the grace period, or a line saying which were not. */
async function finishExport(
  exporter: NatsExporter,
  output: RotatingLog,
  status: (line: string) => void,
): Promise<ExportOutcome> {
  const outcome = await exporter.finish(EXPORT_GRACE_MS);
  const target = exporter.target.text;
  if (outcome.pending === null) {
    status(`carnot: export: ${outcome.published} records acknowledged by ${target}`);
  } else {
    const { sequence, line } = outcome.pending;
    const file = output.pathOf(sequence) ?? `file ${sequence} of the sequence`;
    status(
      `carnot: warning: export: ${output.count - outcome.published} of ${output.count} records not acknowledged by ${target} within ${EXPORT_GRACE_MS / 1000} s; they stay in ${file} from line ${line} on`,
    );
  }
  return outcome;
}

/** The comm of a live process (for handshakes the kernel gives up), "" when it is gone. */
function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
