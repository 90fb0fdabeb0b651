import { defineCommand } from "citty";
import { readKeyFile } from "../chain/writer.ts";
import { CarnotError } from "../errors.ts";
import { DEFAULT_MAX_PENDING } from "../trace/libssl/correlate.ts";
import { runTrace } from "../trace/run.ts";
import { commonArgs, keyFileArg } from "./shared.ts";

const usageError = (message: string) => new CarnotError(message, { exitCode: 2 });

/** "2s", "1500ms", "2000" (ms) → milliseconds. */
export function parseWindow(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim());
  if (!m) throw usageError(`invalid --window "${text}": expected e.g. 2s, 1500ms or 2000`);
  const ms = m[2] === "s" ? Number(m[1]) * 1000 : Number(m[1]);
  if (ms <= 0) throw usageError(`invalid --window "${text}": must be positive`);
  return ms;
}

/** "8388608", "8M", "64K" → bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw usageError(`invalid ${flag} "${text}": expected bytes, e.g. 8388608 or 8M`);
  const unit = (m[2] ?? "").charAt(0).toUpperCase();
  const scale = unit === "K" ? 1024 : unit === "M" ? 1024 ** 2 : unit === "G" ? 1024 ** 3 : 1;
  return Number(m[1]) * scale;
}

export function parseCount(text: string, flag: string, min: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) {
    throw usageError(`invalid ${flag} "${text}": expected an integer ≥ ${min}`);
  }
  return Number(text);
}

function parseSeconds(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw usageError(`invalid ${flag} "${text}": expected seconds ≥ 0`);
  }
  return n;
}

/** Every value of a repeatable flag (`--libssl A --libssl=B`); the argument parser keeps only the last. */
export function repeatedValues(rawArgs: string[], flag: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === flag) {
      const v = rawArgs[i + 1];
      if (v === undefined || v.startsWith("-")) throw usageError(`${flag} needs a value`);
      values.push(v);
      i++;
    } else if (a.startsWith(`${flag}=`)) values.push(a.slice(flag.length + 1));
  }
  return values;
}

export default defineCommand({
  meta: {
    name: "trace",
    description:
      "One JSON line per TLS handshake made through OpenSSL on this host (eBPF uprobes; needs root)",
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
      valueHint: "PATH",
    },
    pid: { type: "string", description: "Only this process (filtered in the kernel)", valueHint: "N" },
    comm: {
      type: "string",
      description: "Only processes with this name (filtered in the kernel)",
      valueHint: "NAME",
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
    ...keyFileArg,
    duration: { type: "string", description: "Stop by itself after this many seconds", valueHint: "SEC" },
    "raw-events": {
      type: "boolean",
      description: "One kernel event per probed call, correlated in user space (default: one per handshake)",
      default: false,
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
    // `-out FILE` (single dash, the historical command line) parses as `-o ut`: take it from the raw args.
    const dashOut = rawArgs.indexOf("-out");
    let out: string | null = typeof args.out === "string" && args.out !== "" ? args.out : null;
    if (dashOut >= 0) {
      const v = rawArgs[dashOut + 1];
      if (v === undefined || v.startsWith("-")) throw usageError("-out needs a file name");
      out = v;
    }
    if (out === "-") out = null;
    const keyFile = args["key-file"];
    const trace = runTrace({
      out,
      libraries: repeatedValues(rawArgs, "--libssl"),
      pid: args.pid === undefined ? undefined : parseCount(args.pid, "--pid", 1),
      comm: args.comm,
      windowMs: parseWindow(args.window),
      maxPending: parseCount(args["max-pending"], "--max-pending", 1),
      ringbufSize:
        args["ringbuf-size"] === undefined ? undefined : parseSize(args["ringbuf-size"], "--ringbuf-size"),
      metricsIntervalS: parseSeconds(args["metrics-interval"], "--metrics-interval"),
      metricsJson: args["metrics-json"],
      key: keyFile ? await readKeyFile(keyFile) : undefined,
      durationS: args.duration === undefined ? undefined : parseSeconds(args.duration, "--duration"),
      verbose: args.verbose,
      implicitProbes: args["implicit-probes"],
      rawEvents: args["raw-events"],
    });
    const summary = await trace.catch((err: unknown) => {
      // a rejected BPF load carries the verifier's log: the whole of it with --verbose, one line otherwise
      const verifierLog = (err as { verifierLog?: unknown }).verifierLog;
      if (args.verbose && typeof verifierLog === "string") process.stderr.write(`${verifierLog}\n`);
      throw err;
    });
    if (out !== null) process.stderr.write(`carnot: ${summary.records} handshakes written to ${out}\n`);
    return 0;
  },
});
