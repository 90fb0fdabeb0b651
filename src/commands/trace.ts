import { defineCommand } from "citty";
import { readKeyFile } from "../chain/writer.ts";
import { CarnotError } from "../errors.ts";
import { resolveDestination } from "../io/safe-file.ts";
import { type ListenAddress, parseAddress } from "../serve/server.ts";
import { parseNatsUrl } from "../export/nats-url.ts";
import { DEFAULT_MAX_PENDING } from "../trace/libssl/correlate.ts";
import { runTrace } from "../trace/run.ts";
import { SOURCE_CHOICES, type SourceChoice } from "../trace/sources.ts";
import { commonArgs, keyFileArgs, repeatedOption, symlinkArgs } from "./shared.ts";

const usageError = (message: string) => new CarnotError(message, { exitCode: 2 });

/** The kernel's PID_MAX_LIMIT on 64-bit: no process id is larger. */
export const PID_MAX = 4_194_304;
/** --max-pending: the kernel table takes a u32 size; beyond this its memory alone is over 100 MB. */
export const MAX_PENDING_MAX = 1_048_576;
/** Timers take at most 2^31 − 1 ms; a longer interval would fire at once. */
export const SECONDS_MAX = 2_147_483;
const WINDOW_MAX_MS = 86_400_000;
const RINGBUF_MAX = 2 ** 30;

/** Plain decimal digits: no sign, no leading zero, no exponent, no space, no hexadecimal. */
const DECIMAL_INTEGER = /^(0|[1-9][0-9]{0,14})$/;
const DECIMAL = /^(0|[1-9][0-9]{0,14})(\.[0-9]{1,9})?$/;

/** A decimal integer from `min` to `max`, or a usage error naming the flag. */
export function parseInteger(
  text: string,
  flag: string,
  min: number,
  max: number,
  what = "an integer",
): number {
  const n = DECIMAL_INTEGER.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw usageError(`invalid ${flag} "${text}": expected ${what} from ${min} to ${max}`);
  }
  return n;
}

/** "2s", "1500ms", "2000" (ms) → milliseconds. */
export function parseWindow(text: string): number {
  const m = /^(.*?)(ms|s)?$/.exec(text);
  const value = m && DECIMAL.test(m[1]!) ? Number(m[1]) : Number.NaN;
  if (Number.isNaN(value)) throw usageError(`invalid --window "${text}": expected e.g. 2s, 1500ms or 2000`);
  const ms = m?.[2] === "s" ? value * 1000 : value;
  if (ms <= 0) throw usageError(`invalid --window "${text}": must be positive`);
  if (ms > WINDOW_MAX_MS) throw usageError(`invalid --window "${text}": at most 24 hours`);
  return ms;
}

/** "8388608", "8M", "64K" → bytes (at most 1 GiB). */
export function parseSize(text: string, flag: string): number {
  const m = /^(0|[1-9][0-9]{0,10})([KMG](?:i?B)?)?$/i.exec(text);
  if (!m) throw usageError(`invalid ${flag} "${text}": expected bytes, e.g. 8388608 or 8M`);
  const unit = (m[2] ?? "").charAt(0).toUpperCase();
  const scale = unit === "K" ? 1024 : unit === "M" ? 1024 ** 2 : unit === "G" ? 1024 ** 3 : 1;
  const bytes = Number(m[1]) * scale;
  if (bytes > RINGBUF_MAX) throw usageError(`invalid ${flag} "${text}": at most 1G`);
  return bytes;
}

/** A decimal number of seconds from 0 to SECONDS_MAX (24 days). */
export function parseSeconds(text: string, flag: string): number {
  const n = DECIMAL.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 0 && n <= SECONDS_MAX)) {
    throw usageError(`invalid ${flag} "${text}": expected seconds from 0 to ${SECONDS_MAX}`);
  }
  return n;
}

/** --max-files: more files than this in one directory is a mistake, not a plan. */
const MAX_FILES_MAX = 1_000_000;
/** --rotate-every: the drain runs every 50 ms; a shorter period would rotate at every batch. */
const ROTATE_EVERY_MIN_S = 0.1;

/** "30s", "15m", "1h", "1d", "200ms" or plain seconds ("0.5") → seconds, from 0.1 s to SECONDS_MAX. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(.*?)(ms|s|m|h|d)?$/.exec(text);
  const value = m && DECIMAL.test(m[1]!) ? Number(m[1]) : Number.NaN;
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[m?.[2] ?? "s"] ?? 1;
  const seconds = value * scale;
  if (!(seconds >= ROTATE_EVERY_MIN_S && seconds <= SECONDS_MAX)) {
    throw usageError(
      `invalid ${flag} "${text}": expected a duration from ${ROTATE_EVERY_MIN_S}s to ${SECONDS_MAX}s, e.g. 200ms, 30s, 15m, 1h or 1d`,
    );
  }
  return seconds;
}

/** `--metrics-addr`: HOST:PORT, [IPv6]:PORT or :PORT (loopback). */
function parseMetricsAddr(text: string): { address: ListenAddress; text: string } {
  const address = parseAddress(text);
  if (address === null)
    throw usageError(`invalid --metrics-addr "${text}": expected HOST:PORT, [IPv6]:PORT or :PORT`);
  return { address, text };
}

function parseRotateSize(text: string): number {
  const bytes = parseSize(text, "--rotate-size");
  if (bytes === 0) throw usageError(`invalid --rotate-size "${text}": must be positive`);
  return bytes;
}

function parseSource(text: string): SourceChoice {
  const choice = SOURCE_CHOICES.find((c) => c === text);
  if (choice === undefined)
    throw usageError(`invalid --source "${text}": expected ${SOURCE_CHOICES.join(", ")}`);
  return choice;
}

export default defineCommand({
  meta: {
    name: "trace",
    description:
      "One JSON line per TLS handshake on this host, whatever library makes it (eBPF: OpenSSL uprobes and the handshake bytes on the wire; needs root)",
  },
  args: {
    out: {
      type: "string",
      alias: ["o", "output"],
      description: "Output JSONL file, sealed on exit (default: stdout); `-out FILE` also works",
      valueHint: "FILE",
    },
    libssl: {
      type: "string",
      description: "Library or executable exporting SSL_* to probe (repeatable; default: the system libssl)",
      valueHint: "PATH…",
    },
    pid: { type: "string", description: "Only this process (filtered in the kernel)", valueHint: "N" },
    comm: {
      type: "string",
      description: "Only processes with this name (filtered in the kernel)",
      valueHint: "NAME",
    },
    container: {
      type: "string",
      description:
        "Only this container: its id or the start of it (its cgroup is looked up at start and filtered in the kernel)",
      valueHint: "ID",
    },
    window: {
      type: "string",
      description: "How long a handshake in progress may go without an event before it is given up",
      default: "2s",
      valueHint: "2s|2000",
    },
    "max-pending": {
      type: "string",
      description: "Bound of the correlation tables; the oldest entry is evicted (counted)",
      default: String(DEFAULT_MAX_PENDING),
      valueHint: "N",
    },
    "ringbuf-size": {
      type: "string",
      description: "Kernel ring buffer size: a power of two ≥ the page size (default 8M)",
      valueHint: "BYTES",
    },
    "metrics-interval": {
      type: "string",
      description: "Seconds between metrics lines on stderr (0: only at exit)",
      default: "5",
      valueHint: "SEC",
    },
    "metrics-json": { type: "string", description: "Also write the metrics to this file", valueHint: "FILE" },
    "metrics-addr": {
      type: "string",
      description: "Serve the metrics in Prometheus text format at http://HOST:PORT/metrics",
      valueHint: "HOST:PORT",
    },
    "rotate-size": {
      type: "string",
      description:
        "Close, seal and replace the output file once it holds this much (e.g. 100M); the next file's chain starts from its final value",
      valueHint: "BYTES",
    },
    "rotate-every": {
      type: "string",
      description: "Rotate the output file this often (e.g. 1h, 15m, 30s)",
      valueHint: "DURATION",
    },
    "max-files": {
      type: "string",
      description: "Keep the newest N output files (the live one included); older rotated files are deleted",
      valueHint: "N",
    },
    export: {
      type: "string",
      description:
        "Publish every record to this NATS JetStream subject, at least once, its chain value as the message id (needs --out)",
      valueHint: "nats://HOST:PORT/SUBJECT",
    },
    ...symlinkArgs,
    ...keyFileArgs,
    duration: { type: "string", description: "Stop by itself after this many seconds", valueHint: "SEC" },
    "raw-events": {
      type: "boolean",
      description: "One kernel event per probed call, correlated in user space (default: one per handshake)",
      default: false,
    },
    source: {
      type: "string",
      description:
        "Which kernel sources: libssl (OpenSSL uprobes), wire (the handshake bytes of every TCP connection) or all",
      default: "all",
      valueHint: "libssl|wire|all",
    },
    "implicit-probes": {
      type: "boolean",
      description:
        "Also probe SSL_read/SSL_write to see handshakes of programs that never call SSL_get_error (costs a probe hit per call)",
      default: false,
    },
    ...commonArgs,
  },
  async run({ args, rawArgs }) {
    // `-out FILE` (the historical command line) reaches here as --out: one dash is a long flag too
    const out = args.out === undefined || args.out === "-" ? null : args.out;
    const keyFile = args["key-file"];
    const followSymlinks = args["follow-symlinks"];
    // a symlink at an output name is refused before anything is attached (the metrics: not hours later)
    for (const path of [out, args["metrics-json"]]) if (path) resolveDestination(path, followSymlinks);
    const trace = runTrace({
      out,
      libraries: repeatedOption(rawArgs, "libssl", { commas: false }),
      pid: args.pid === undefined ? undefined : parseInteger(args.pid, "--pid", 1, PID_MAX, "a process id"),
      comm: args.comm,
      container: args.container,
      windowMs: parseWindow(args.window),
      maxPending: parseInteger(args["max-pending"], "--max-pending", 1, MAX_PENDING_MAX),
      ringbufSize:
        args["ringbuf-size"] === undefined ? undefined : parseSize(args["ringbuf-size"], "--ringbuf-size"),
      metricsIntervalS: parseSeconds(args["metrics-interval"], "--metrics-interval"),
      metricsJson: args["metrics-json"],
      export: args.export === undefined ? undefined : parseNatsUrl(args.export, "--export"),
      rotation: {
        sizeBytes: args["rotate-size"] === undefined ? undefined : parseRotateSize(args["rotate-size"]),
        everyS:
          args["rotate-every"] === undefined
            ? undefined
            : parseDuration(args["rotate-every"], "--rotate-every"),
        maxFiles:
          args["max-files"] === undefined
            ? undefined
            : parseInteger(args["max-files"], "--max-files", 1, MAX_FILES_MAX),
      },
      metricsAddr: args["metrics-addr"] === undefined ? undefined : parseMetricsAddr(args["metrics-addr"]),
      followSymlinks,
      key: keyFile ? await readKeyFile(keyFile) : undefined,
      durationS: args.duration === undefined ? undefined : parseSeconds(args.duration, "--duration"),
      verbose: args.verbose,
      implicitProbes: args["implicit-probes"],
      rawEvents: args["raw-events"],
      source: parseSource(args.source),
    });
    const summary = await trace.catch((err: unknown) => {
      // a rejected BPF load carries the verifier's log: the whole of it with --verbose, one line otherwise
      const verifierLog = (err as { verifierLog?: unknown }).verifierLog;
      if (args.verbose && typeof verifierLog === "string") process.stderr.write(`${verifierLog}\n`);
      throw err;
    });
    if (out !== null) {
      const rotated = summary.rotations > 0 ? ` (and ${summary.rotations} rotated files before it)` : "";
      process.stderr.write(`carnot: ${summary.records} handshakes written to ${out}${rotated}\n`);
    }
    return 0;
  },
});
