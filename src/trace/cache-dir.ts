/**
 * The tracer's cache (verified calibrations, the engine's allowlist) is input like any other: another user
 * may have prepared the directory or a file in it. The directory is created 0700 and used only when it and
 * everything above it can be relied on (src/trace/trusted-path.ts); a file in it is read only when it is a
 * regular file (never through a symlink) owned by root or the invoking user and not group/other-writable, and
 * written only through the safe writer (a fresh temporary renamed over it).
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, realpathSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { writeFileSafely } from "../io/safe-file.ts";
import { invokingUid, untrustedReason } from "./trusted-path.ts";

/** Where the tracer caches what it computed (calibrations, the engine's allowlist): $CARNOT_CACHE_DIR, else /var/cache/carnot as root, else ~/.cache/carnot. */
export function traceCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CARNOT_CACHE_DIR) return env.CARNOT_CACHE_DIR;
  if (process.getuid?.() === 0) return "/var/cache/carnot";
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "carnot");
}

/** The cache directory, ready to use, or why it cannot be. */
export type CacheDir = { path: string; problem: null } | { path: null; problem: string };

/** Creates `dir` (0700) when missing and checks that it can be relied on; the path returned has no symlink. */
export function openCacheDir(dir: string = traceCacheDir()): CacheDir {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    return { path: null, problem: `cannot create ${dir} (${(err as NodeJS.ErrnoException).code ?? err})` };
  }
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (err) {
    return { path: null, problem: `${dir}: ${(err as NodeJS.ErrnoException).code ?? err}` };
  }
  const reason = untrustedReason(real);
  return reason === null ? { path: real, problem: null } : { path: null, problem: reason };
}

/** O_NONBLOCK: a FIFO planted in place of a file must not hang the open. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const MAX_CACHE_FILE = 1 << 20;

/**
 * The text of `name` in the cache directory, or null when it is missing or cannot be relied on (a symlink,
 * not a regular file, another owner, group/other-writable, larger than a cache file is).
 */
export function readCacheFile(dir: string, name: string): string | null {
  let fd: number;
  try {
    fd = openSync(join(dir, name), READ_FLAGS);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    const owners = new Set([0, invokingUid()]);
    if (!st.isFile() || !owners.has(st.uid) || (st.mode & 0o022) !== 0 || st.size > MAX_CACHE_FILE)
      return null;
    const bytes = new Uint8Array(st.size);
    let off = 0;
    while (off < bytes.length) {
      const n = readSync(fd, bytes, off, bytes.length - off, off);
      if (n <= 0) break;
      off += n;
    }
    return new TextDecoder().decode(bytes.subarray(0, off));
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Writes `name` in the cache directory whole or not at all (0600; a symlink in its place is refused). */
export function writeCacheFile(dir: string, name: string, text: string): void {
  writeFileSafely(join(dir, name), text, { mode: 0o600 });
}
