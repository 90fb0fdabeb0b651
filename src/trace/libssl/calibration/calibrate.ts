/**
 * Struct offsets verified for one exact libssl file: found by the calibration child (child.ts, run
 * as `carnot __calibrate LIBSSL`), cached by file identity, and handed to the BPF side per library.
 *
 * The child runs the library in a separate process: with LD_LIBRARY_PATH set to the library's directory, or,
 * when that library needs a newer glibc than the host's, through the ld-linux loader found beside it.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as v from "valibot";
import { traceCacheDir } from "../../cache-dir.ts";
import { selfCommand } from "../../../self.ts";
import { makeCertificate } from "./child.ts";
import { calibrateExecutable, SCRIPT_CIPHER_CODES } from "./node.ts";
import { indexGroups } from "../../groups.ts";
import { type Calibration, CalibrationSchema } from "./types.ts";

/** Bump when the calibration's method changes: cached results of an older method are not reused. */
export const CALIBRATION_FORMAT = 4;

/** The file's identity: a calibration is reused only for the very same file. */
export function fileIdentity(path: string): string {
  const st = statSync(path);
  return `${st.dev}-${st.ino}-${st.size}-${Math.floor(st.mtimeMs)}`;
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

async function runChild(
  cmd: string[],
  env: Record<string, string | undefined>,
): Promise<{ out: string; err: string; code: number }> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
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
  const cacheDir = opts.cacheDir ?? traceCacheDir();
  let identity: string;
  try {
    identity = fileIdentity(libssl);
  } catch (err) {
    return { calibration: null, problem: `cannot stat ${libssl}: ${String(err)}`, cached: false };
  }
  const cacheFile = join(cacheDir, `offsets-v${CALIBRATION_FORMAT}-${identity}.json`);
  if (!opts.refresh && existsSync(cacheFile)) {
    const parsed = v.safeParse(CalibrationSchema, JSON.parse(readFileSync(cacheFile, "utf8")));
    if (parsed.success && parsed.output.library === libssl)
      return { calibration: parsed.output, problem: null, cached: true };
  }
  if (!/\/libssl[^/]*\.so/.test(libssl)) {
    const result = await calibrateNode(libssl);
    if (result.calibration) saveCalibration(cacheFile, cacheDir, result.calibration);
    return result;
  }
  const self = selfCommand();
  const attempts: { cmd: string[]; env: Record<string, string | undefined> }[] = [
    { cmd: [...self, "__calibrate", libssl], env: { ...process.env, LD_LIBRARY_PATH: dirname(libssl) } },
  ];
  const loader = loaderBeside(libssl);
  if (loader) {
    const env = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    attempts.push({ cmd: [loader, "--library-path", dirname(libssl), ...self, "__calibrate", libssl], env });
  }
  const failures: string[] = [];
  for (const attempt of attempts) {
    const { out, err, code } = await runChild(attempt.cmd, attempt.env);
    if (code !== 0) {
      failures.push(err.trim().split("\n").slice(-1)[0] || `exit ${code}`);
      continue;
    }
    const parsed = v.safeParse(CalibrationSchema, JSON.parse(out));
    if (!parsed.success) {
      failures.push(`unreadable calibration: ${v.summarize(parsed.issues)}`);
      continue;
    }
    saveCalibration(cacheFile, cacheDir, parsed.output);
    return { calibration: parsed.output, problem: null, cached: false };
  }
  return { calibration: null, problem: `calibration failed: ${failures.join("; ")}`, cached: false };
}

function saveCalibration(cacheFile: string, cacheDir: string, calibration: Calibration): void {
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cacheFile}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(calibration)}\n`);
    renameSync(tmp, cacheFile);
  } catch {
    // an unwritable cache only costs a calibration next time
  }
}

/** An executable with OpenSSL inside: only Node.js is known to be drivable (node.ts). */
async function calibrateNode(executable: string): Promise<CalibrationResult> {
  const version = Bun.spawnSync([executable, "-p", "process.versions.openssl"], {
    stdin: "ignore",
    env: { ...process.env, NODE_OPTIONS: "" },
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
    const { cert, key } = makeCertificate("libcrypto.so.3", dir);
    const groups = indexGroups();
    const calibration = await calibrateExecutable({
      executable,
      cert,
      key,
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
