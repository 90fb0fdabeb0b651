/**
 * The one way carnot writes a file it names: a temporary created beside the destination with an unpredictable
 * name, `O_CREAT | O_EXCL | O_NOFOLLOW` (a name planted in advance is never opened, never followed), written,
 * `fsync`ed and renamed over the destination. carnot runs as root in directories other users may write to: a
 * predictable temporary name that follows symlinks would let them aim root's writes at any file.
 *
 * The destination itself: an existing symlink is refused unless the caller allows following it, then the
 * link's target is written (by the same rename, in the target's directory).
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  realpathSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { constants as osConstants } from "node:os";
import { basename, dirname, join } from "node:path";
import { Libc } from "../../ffi/libc.ts";
import { CarnotError } from "../errors.ts";

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_TRUNC } = constants;
/** not in the typings; Linux x86-64 value */
const O_CLOEXEC = 0o2000000;

export interface SafeWriteOptions {
  /** permission bits of the new file (default 0o644) */
  mode?: number;
  /** an existing destination that is a symlink: write its target instead of refusing (`--follow-symlinks`) */
  followSymlinks?: boolean;
}

/** A destination refused (a usage error, exit 2): `code` is ELOOP for a symlink, ENOENT for a dangling one. */
export class UnsafePathError extends CarnotError {
  constructor(
    readonly path: string,
    readonly code: string,
    message: string,
  ) {
    super(message, { exitCode: 2 });
    this.name = "UnsafePathError";
  }
}

const refusedSymlink = (path: string) =>
  new UnsafePathError(
    path,
    "ELOOP",
    `${path} is a symbolic link (refused; --follow-symlinks writes its target)`,
  );

/**
 * Where a write to `path` really goes: `path` itself, or, for an existing symlink the caller allows, its
 * resolved target. A symlink otherwise throws UnsafePathError (code ELOOP).
 */
export function resolveDestination(path: string, followSymlinks = false): string {
  let isLink = false;
  try {
    isLink = lstatSync(path).isSymbolicLink();
  } catch {
    return path; // not there yet (or unreadable: the open below says why)
  }
  if (!isLink) return path;
  if (!followSymlinks) throw refusedSymlink(path);
  try {
    return realpathSync(path);
  } catch {
    throw new UnsafePathError(path, "ENOENT", `${path} is a symbolic link to nothing (refused)`);
  }
}

/** A temporary file beside `dest`, open for writing; `commit` renames it over `dest`, `discard` removes it. */
export interface TempFile {
  readonly fd: number;
  readonly path: string;
  /** fsync, close, rename over the destination */
  commit(): void;
  /** close (if still open) and unlink; never throws */
  discard(): void;
}

/** Create a fresh temporary beside `dest` (exclusive, never through a symlink, unpredictable name). */
export function createTempBeside(dest: string, mode = 0o644): TempFile {
  const dir = dirname(dest);
  const base = basename(dest);
  let fd = -1;
  let path = "";
  for (let attempt = 0; fd < 0; attempt++) {
    path = join(dir, `.${base}.${randomBytes(9).toString("base64url")}.tmp`);
    try {
      fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    } catch (err) {
      // a name taken (by chance or by design): draw again; anything else is the directory's answer
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 16) throw err;
    }
  }
  // the umask must not narrow what the caller asked for, nor widen it
  fchmodSync(fd, mode);
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      closeSync(fd);
    }
  };
  return {
    fd,
    path,
    commit() {
      try {
        fsyncSync(fd);
      } finally {
        close();
      }
      renameSync(path, dest);
    },
    discard() {
      try {
        close();
      } catch {}
      try {
        unlinkSync(path);
      } catch {}
    },
  };
}

/**
 * Open `path` for writing in place (truncated, created 0644), for an output that is written while it grows
 * (a live log). An existing symlink there is refused (UnsafePathError) unless `followSymlinks`, then its
 * target is opened. The open itself never follows a link (O_NOFOLLOW): one planted after the check is refused too.
 */
export function openInPlace(path: string, followSymlinks = false): number {
  const dest = resolveDestination(path, followSymlinks);
  try {
    return openSync(dest, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") throw refusedSymlink(path);
    throw err;
  }
}

/**
 * Rename `from` to `to` unless something (a file, a symlink) is already at `to`: then it throws with code
 * EEXIST and nothing changes. Throws the system's error (with its `code`) otherwise.
 */
export function renameNoReplace(from: string, to: string): void {
  const result = new Libc().renameNoReplace(from, to);
  if (result >= 0) return;
  const code = Object.entries(osConstants.errno).find(([, n]) => n === -result)?.[0] ?? `errno ${-result}`;
  throw Object.assign(new Error(`cannot rename ${from} to ${to}: ${code}`), { code });
}

/** Write `data` to `path` whole or not at all (see the module comment). Throws the system's error. */
export function writeFileSafely(path: string, data: string | Uint8Array, opts: SafeWriteOptions = {}): void {
  replaceFile(resolveDestination(path, opts.followSymlinks), data, opts.mode);
}

/**
 * Write `data` to a fresh temporary beside `dest` and rename it over `dest`, whatever is there now: a
 * symlink at `dest` is replaced, never followed (a seal, whose old version the writer removed itself).
 */
export function replaceFile(dest: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = createTempBeside(dest, mode);
  try {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(tmp.fd, bytes, off, bytes.length - off);
    tmp.commit();
  } catch (err) {
    tmp.discard();
    throw err;
  }
}
