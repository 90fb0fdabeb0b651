/**
 * The signals that stop a trace: SIGINT and SIGTERM always, even when the parent left them ignored (a
 * background job of a non-interactive shell inherits SIGINT ignored), and SIGHUP unless it was inherited
 * ignored (`nohup` means it). Each seals the output and exits 0; SIGHUP has no other meaning until the output
 * is rotated.
 *
 * `carnot trace` takes them from its first line (src/cli.ts) and keeps the first one that arrives while it is
 * still starting, so that the trace stops as soon as it is attached (src/trace/run.ts). The state is the
 * process's own, as signal dispositions are.
 */
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { Libc } from "../../ffi/libc.ts";

const ALWAYS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM"];

/** The first stop signal since holdStopSignals(), if any. */
let held: NodeJS.Signals | null = null;
let holding = false;

/** Whether this process ignores `signal` now (SigIgn of /proc/self/status). */
function ignored(signal: NodeJS.Signals): boolean {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const mask = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0"}`);
    return ((mask >> BigInt(constants.signals[signal] - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** The stop signals of this process: SIGHUP only when it is not ignored (by `nohup`, say). */
export function stopSignals(): NodeJS.Signals[] {
  return ignored("SIGHUP") ? [...ALWAYS] : [...ALWAYS, "SIGHUP"];
}

/** Signal numbers, for the signal mask and dispositions. */
export function signalNumbers(signals: readonly NodeJS.Signals[]): number[] {
  return signals.map((name) => constants.signals[name]);
}

const hold = (signal: NodeJS.Signals) => {
  held ??= signal;
};

/**
 * From now on the stop signals are caught and the first one is kept (heldStopSignal). Then they are
 * unblocked: the previous image of this process blocked them across its re-execution (src/trace/engine.ts),
 * so one that arrived meanwhile is pending, and is delivered now that it has a listener.
 */
export function holdStopSignals(): void {
  if (holding) return;
  holding = true;
  const signals = stopSignals();
  for (const signal of signals) process.on(signal, hold);
  new Libc().blockSignals(signalNumbers(signals), false);
}

/** The stop signal that arrived since holdStopSignals(), or null. */
export function heldStopSignal(): NodeJS.Signals | null {
  return held;
}
