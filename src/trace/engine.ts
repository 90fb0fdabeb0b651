/**
 * Engine options of a tracing process. JavaScriptCore reads its options (BUN_JSC_*) once, when the process
 * starts, so `carnot trace` re-executes itself with them before doing anything else: same pid, same
 * descriptors, same arguments, nothing attached yet.
 *
 * The option: only BLAKE3's compression function may reach the optimizing FTL tier (BUN_JSC_ftlAllowlist).
 * With FTL for everything, its compiler thread recompiled the record pipeline again and again while a trace
 * ran (a quarter of the tracer's CPU); with FTL for nothing, hashing — most of the work per record — ran
 * about 40 % slower in the tier below. The allowlist is a file, written to carnot's cache directory. Where
 * that is not possible, or the build renamed the function (minified identifiers: the list could not name
 * it), FTL is turned off instead. WORKLOG.md has the figures. An engine option already in the environment
 * (the user's own, or set by the first execution) is left alone, which also ends the re-execution.
 * With them goes one setting of the memory allocator (ALLOCATOR_ENV).
 */
import { join } from "node:path";
import { Libc } from "../../ffi/libc.ts";
import { COMPRESS_FUNCTION_NAME } from "../chain/blake3.ts";
import { log } from "../log.ts";
import { selfCommand } from "../self.ts";
import { describeError } from "../errors.ts";
import { openCacheDir, readCacheFile, traceCacheDir, writeCacheFile } from "./cache-dir.ts";
import { heldStopSignal, signalNumbers, stopSignals } from "./stop-signals.ts";

/**
 * The allocator (mimalloc, read from the environment at start-up too) keeps the memory it frees for reuse
 * instead of returning it to the kernel after 100 ms and faulting it back in: the record pipeline frees and
 * allocates the same few megabytes all the time. Halves the tracer's kernel time per handshake (WORKLOG.md).
 */
const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MIMALLOC_PURGE_DELAY: "-1" };

/** The variables this module sets; any of them already present means the engine was configured. */
const ENGINE_VARIABLES = ["BUN_JSC_ftlAllowlist", "BUN_JSC_useFTLJIT"] as const;

const ALLOWLIST_FILE = "ftl-allowlist";

/** The engine options for a tracer: the FTL allowlist when it can be written, else FTL off. */
export function tracerEngineEnv(cacheDir = traceCacheDir()): Record<string, string> {
  const name = COMPRESS_FUNCTION_NAME;
  if (name !== "compress") {
    log.debug(`trace: the compression function is named ${name} in this build: FTL off`);
    return { BUN_JSC_useFTLJIT: "0" };
  }
  // the engine reads the file it is given: only from a directory no one else can write to
  const dir = openCacheDir(cacheDir);
  if (dir.path === null) {
    log.debug(`trace: cache directory not used (${dir.problem}): FTL off`);
    return { BUN_JSC_useFTLJIT: "0" };
  }
  try {
    if (readCacheFile(dir.path, ALLOWLIST_FILE) !== `${name}\n`)
      writeCacheFile(dir.path, ALLOWLIST_FILE, `${name}\n`);
    return { BUN_JSC_ftlAllowlist: join(dir.path, ALLOWLIST_FILE) };
  } catch (err) {
    log.debug(`trace: cannot write ${join(dir.path, ALLOWLIST_FILE)} (${describeError(err)}): FTL off`);
    return { BUN_JSC_useFTLJIT: "0" };
  }
}

/**
 * Re-executes this process with the tracer's engine options unless the environment already has engine
 * options; returns (and the trace runs with the engine's defaults) only if re-execution is not possible, or
 * a stop signal came first (holdStopSignals caught it; this process then stops the trace itself).
 *
 * A stop signal must not be lost on the way: one taken by a thread of the runtime just before execve would be
 * (its listener never runs). So the stop signals get their default action (until execve has replaced the
 * image one ends the process at once, which has done nothing yet) and are blocked on this thread, the one
 * execve keeps: after it one waits pending until the new image listens for it (src/trace/stop-signals.ts).
 * The listeners hear those caught before the switch first. (The compiled executable keeps them blocked until
 * its first line; run from source, Bun's module loader waits in its event loop, signals unblocked, before.)
 */
export async function restartWithEngineOptions(): Promise<void> {
  if (ENGINE_VARIABLES.some((name) => process.env[name] !== undefined)) return;
  // the user's own settings win
  const options = Object.fromEntries(
    Object.entries({ ...tracerEngineEnv(), ...ALLOCATOR_ENV }).filter(
      ([name]) => process.env[name] === undefined,
    ),
  );
  const env = { ...process.env, ...options };
  const lines = Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `${name}=${value}`);
  const libc = new Libc();
  const signals = signalNumbers(stopSignals());
  const saved: [number, Uint8Array][] = [];
  const restore = () => {
    for (const [signal, disposition] of saved) libc.restoreDisposition(signal, disposition);
    libc.blockSignals(signals, false);
  };
  let reason: string;
  try {
    for (const signal of signals) saved.push([signal, libc.defaultDisposition(signal)]);
    libc.blockSignals(signals, true);
    // one caught before the switch reaches its listener in this turn of the event loop
    await new Promise((resolve) => setImmediate(resolve));
    if (heldStopSignal() !== null) {
      restore();
      log.debug(`trace: ${heldStopSignal()} during start-up: not re-executed`);
      return;
    }
    reason = libc.strerror(
      libc.execve(process.execPath, [...selfCommand(), ...process.argv.slice(2)], lines),
    );
  } catch (err) {
    reason = describeError(err);
  }
  restore();
  const names = Object.entries(options)
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
  log.debug(`trace: cannot re-execute with ${names} (${reason}): running with the engine's defaults`);
}
