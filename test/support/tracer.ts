/**
 * Runs `carnot trace` as a real process (the source through bun, or the compiled ./carnot) for the
 * end-to-end tests: waits for its "ready" line, stops it with a signal, and reads back what it wrote.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import type { TraceMetrics } from "../../src/trace/metrics.ts";
import { type ChainedObservation, ChainedObservationSchema } from "../../src/trace/observation.ts";

export const REPO = join(import.meta.dir, "..", "..");
export const COMPILED = join(REPO, "carnot");

/** Why the tracing tests cannot run here, or null when they can (root and BTF-capable kernel). */
export function traceSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (BPF uprobes)";
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "kernel without BTF (/sys/kernel/btf/vmlinux)";
  if (!existsSync(join(REPO, "bpf", "carnot.bpf.o"))) return "bpf/carnot.bpf.o not built (make bpf)";
  return null;
}

export interface TracerProcess {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** stderr so far */
  stderr(): string;
  /** stdout so far (the observations when the trace writes to stdout) */
  stdout(): string;
  /** SIGINT (or `signal`); resolves with the exit code and how long the exit took */
  stop(
    signal?: NodeJS.Signals,
  ): Promise<{ exitCode: number; exitMs: number; stderr: string; stdout: string }>;
}

/** Starts the tracer (the sources through bun, or a compiled `binary`) with `args`; resolves once it printed "ready" (it has attached). */
export async function startTracer(
  args: string[],
  opts: { binary?: string; env?: Record<string, string> } = {},
): Promise<TracerProcess> {
  const cmd = opts.binary
    ? [opts.binary, "trace", ...args]
    : [process.execPath, join(REPO, "src", "cli.ts"), "trace", ...args];
  const proc = Bun.spawn(cmd, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    cwd: REPO,
    env: { ...process.env, ...opts.env },
  });
  let err = "";
  let out = "";
  const decoder = new TextDecoder();
  const errDone = (async () => {
    for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  const outDone = (async () => {
    for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk);
  })();
  const deadline = Date.now() + 15_000;
  while (!/carnot: ready/.test(err)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      await proc.exited;
      await errDone;
      throw new Error(`tracer did not become ready: ${err.trim()}`);
    }
    await Bun.sleep(20);
  }
  return {
    proc,
    stderr: () => err,
    stdout: () => out,
    async stop(signal: NodeJS.Signals = "SIGINT") {
      const t0 = performance.now();
      proc.kill(signal);
      const exitCode = await proc.exited;
      const exitMs = performance.now() - t0;
      await Promise.all([errDone, outDone]);
      return { exitCode, exitMs, stderr: err, stdout: out };
    },
  };
}

/** Every line of a runtime.jsonl, each checked against the published schema (throws on the first bad one). */
export function readObservations(path: string): ChainedObservation[] {
  const text = readFileSync(path, "utf8");
  if (text !== "" && !text.endsWith("\n")) throw new Error(`${path}: last line is cut off`);
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((line, i) => {
      const parsed = v.safeParse(ChainedObservationSchema, JSON.parse(line));
      if (!parsed.success) throw new Error(`${path}:${i + 1}: ${v.summarize(parsed.issues)}`);
      return parsed.output;
    });
}

/** The metrics the tracer wrote with --metrics-json. */
export function readMetrics(path: string): TraceMetrics {
  return JSON.parse(readFileSync(path, "utf8")) as TraceMetrics;
}

/** The metrics line the tracer printed last, as numbers. */
export function lastMetrics(stderr: string): Record<string, number> {
  const lines = stderr.split("\n").filter((l) => l.includes("eventsReceived="));
  const last = lines[lines.length - 1] ?? "";
  return Object.fromEntries([...last.matchAll(/(\w+)=([\d.e-]+)/g)].map((m) => [m[1]!, Number(m[2])]));
}
