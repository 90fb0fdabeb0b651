/**
 * Struct offsets verified for one exact libssl file: found by the calibration child (child.ts, run
 * as `carnot __calibrate LIBSSL`), cached by file identity with a digest of the file's bytes (a cached record is
 * used only when it checks out: src/trace/cache-dir.ts says which files are read at all), and handed to the BPF
 * side per library.
 *
 * The child runs the library in a separate process, confined (sandbox.ts: no privilege, no network): with
 * LD_LIBRARY_PATH set to the library's directory, or, when that library needs a newer glibc than the host's,
 * through the ld-linux loader found beside it.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as v from "valibot";
import { openCacheDir, readCacheFile, traceCacheDir, writeCacheFile } from "../../cache-dir.ts";
import { describeError } from "../../../errors.ts";
import { selfCommand } from "../../../self.ts";
import { untrustedReason } from "../../trusted-path.ts";
import { libcryptoBeside, makeCertificate } from "./child.ts";
import { sandboxed, sandboxEnv } from "./sandbox.ts";
import { calibrateExecutable, SCRIPT_CIPHER_CODES } from "./node.ts";
import { indexGroups } from "../../groups.ts";
import { type Calibration, CalibrationSchema } from "./types.ts";

/** Bump when the calibration's method changes: cached results of an older method are not reused. */
export const CALIBRATION_FORMAT = 5;

/** The file's identity: a calibration is reused only for the very same file. */
export function fileIdentity(path: string): string {
  const st = statSync(path);
  return `${st.dev}-${st.ino}-${st.size}-${Math.floor(st.mtimeMs)}`;
}

/** A cached record: the calibration and the digest of the library it describes. */
export const CachedCalibrationSchema = v.object({
  ...CalibrationSchema.entries,
  libraryDigest: v.pipe(v.string(), v.regex(/^sha256:[0-9a-f]{64}$/)),
});

/** The name of a library's record in the cache directory. */
export function cacheFileName(libssl: string): string {
  return `offsets-v${CALIBRATION_FORMAT}-${fileIdentity(libssl)}.json`;
}

/** SHA-256 of a file's bytes (`sha256:hex`), read in pieces: an executable such as node is ~100 MB. */
export function fileDigest(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const chunk = new Uint8Array(1 << 20);
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return `sha256:${hash.digest("hex")}`;
}

/** The cached calibration of `libssl`, when its record is whole, valid and describes these very bytes. */
function cachedCalibration(dir: string, name: string, libssl: string, digest: string): Calibration | null {
  const text = readCacheFile(dir, name);
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null; // empty or cut short: calibrated again
  }
  const parsed = v.safeParse(CachedCalibrationSchema, json);
  if (!parsed.success || parsed.output.library !== libssl || parsed.output.libraryDigest !== digest)
    return null;
  const { libraryDigest: _, ...calibration } = parsed.output;
  return calibration;
}

/** The ld-linux loader shipped beside a library (a downloaded distribution tree), or null. */
export function loaderBeside(libssl: string): string | null {
  for (const dir of [dirname(libssl), join(dirname(libssl), "..", "..", "lib64")]) {
    const loader = join(dir, "ld-linux-x86-64.so.2");
    if (existsSync(loader)) return loader;
  }
  return null;
}

export interface CalibrationResult {
  calibration: Calibration | null;
  /** why there is none, or what was found wanting (shown once, with the library and version) */
  problem: string | null;
  cached: boolean;
}

/**
 * Runs `cmd` confined (sandbox.ts) with `env`; `files` are handed over open as descriptors 3, 4, … (a path the
 * unprivileged child could not reach is still read).
 */
async function runConfined(
  cmd: string[],
  env: Record<string, string>,
  files: number[],
): Promise<{ out: string; err: string; code: number }> {
  const proc = Bun.spawn(sandboxed(cmd, files.length), {
    stdio: ["ignore", "pipe", "pipe", ...files],
    env,
  }) as Bun.Subprocess<"ignore", "pipe", "pipe">;
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { out, err, code };
}

/**
 * The verified offsets of `libssl` (a resolved path), from the cache or from a calibration child. Never
 * throws: a library that cannot be calibrated (an executable such as node, a crash) gives a `problem`.
 */
export async function calibrate(
  libssl: string,
  opts: { cacheDir?: string; refresh?: boolean } = {},
): Promise<CalibrationResult> {
  const cache = openCacheDir(opts.cacheDir ?? traceCacheDir());
  let digest: string;
  let name: string;
  try {
    digest = fileDigest(libssl);
    name = cacheFileName(libssl);
  } catch (err) {
    return { calibration: null, problem: `cannot read ${libssl}: ${describeError(err)}`, cached: false };
  }
  if (!opts.refresh && cache.path !== null) {
    const cached = cachedCalibration(cache.path, name, libssl, digest);
    if (cached) return { calibration: cached, problem: null, cached: true };
  }
  const save = (calibration: Calibration) => {
    if (cache.path !== null) saveCalibration(cache.path, name, { ...calibration, libraryDigest: digest });
  };
  if (!/\/libssl[^/]*\.so/.test(libssl)) {
    const result = await calibrateNode(libssl);
    if (result.calibration) save(result.calibration);
    return result;
  }
  const self = selfCommand();
  // the library and its libcrypto, opened here and loaded by the child through /proc/self/fd/3 and 4
  const crypto = libcryptoBeside(libssl);
  const files: number[] = [];
  try {
    files.push(openSync(libssl, "r"));
    if (crypto.startsWith("/")) files.push(openSync(crypto, "r"));
  } catch (err) {
    for (const fd of files) closeSync(fd);
    return { calibration: null, problem: `cannot open ${libssl}: ${describeError(err)}`, cached: false };
  }
  const child = [
    ...self,
    "__calibrate",
    libssl,
    "--fd",
    "3",
    ...(files.length > 1 ? ["--crypto-fd", "4"] : []),
  ];
  const attempts: { cmd: string[]; env: Record<string, string> }[] = [
    { cmd: child, env: sandboxEnv({ LD_LIBRARY_PATH: dirname(libssl) }) },
  ];
  const failures: string[] = [];
  const loader = loaderBeside(libssl);
  if (loader) {
    // the loader and the C library beside it run too: only from where the library itself may come from
    const untrusted = untrustedReason(loader, { siblingsUsed: true });
    if (untrusted === null)
      attempts.push({ cmd: [loader, "--library-path", dirname(libssl), ...child], env: sandboxEnv() });
    else failures.push(`loader ${loader} not used: ${untrusted}`);
  }
  try {
    for (const attempt of attempts) {
      const { out, err, code } = await runConfined(attempt.cmd, attempt.env, files);
      if (code !== 0) {
        failures.push(err.trim().split("\n").slice(-1)[0] || `exit ${code}`);
        continue;
      }
      let json: unknown = null;
      try {
        json = JSON.parse(out);
      } catch {}
      const parsed = v.safeParse(CalibrationSchema, json);
      if (!parsed.success) {
        failures.push(`unreadable calibration: ${v.summarize(parsed.issues)}`);
        continue;
      }
      save(parsed.output);
      return { calibration: parsed.output, problem: null, cached: false };
    }
  } finally {
    for (const fd of files) closeSync(fd);
  }
  return { calibration: null, problem: `calibration failed: ${failures.join("; ")}`, cached: false };
}

function saveCalibration(
  dir: string,
  name: string,
  record: v.InferOutput<typeof CachedCalibrationSchema>,
): void {
  try {
    writeCacheFile(dir, name, `${JSON.stringify(record)}\n`);
  } catch {
    // an unwritable cache only costs a calibration next time
  }
}

/** An executable with OpenSSL inside: only Node.js is known to be drivable (node.ts). */
async function calibrateNode(executable: string): Promise<CalibrationResult> {
  const version = Bun.spawnSync(sandboxed([executable, "-p", "process.versions.openssl"]), {
    stdin: "ignore",
    env: sandboxEnv({ NODE_OPTIONS: "" }),
    timeout: 10_000,
  });
  if (version.exitCode !== 0) {
    return {
      calibration: null,
      problem: "an executable that is not Node.js: no way to verify its struct offsets",
      cached: false,
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "carnot-calibrate-"));
  try {
    // the system's libcrypto makes it, in this process: nothing of the executable runs here
    const { cert, key } = makeCertificate("libcrypto.so.3", dir);
    const groups = indexGroups();
    const calibration = await calibrateExecutable({
      executable,
      cert: readFileSync(cert, "utf8"),
      key: readFileSync(key, "utf8"),
      groupCode: (name) => groups.byLowerName.get(name.toLowerCase())?.codePoint ?? null,
      cipherCode: (name) => SCRIPT_CIPHER_CODES[name] ?? null,
    });
    return { calibration, problem: null, cached: false };
  } catch (err) {
    return {
      calibration: null,
      problem: `calibration of the executable failed: ${err instanceof Error ? err.message : String(err)}`,
      cached: false,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
