/** An error the CLI reports as one line; `exitCode` is what the process exits with. */
export class CarnotError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CarnotError";
    this.exitCode = options.exitCode ?? 1;
  }
}

/** The shell's status for a process that SIGPIPE ended (128 + 13): what `yes | head -1` gives for `yes`. */
export const BROKEN_PIPE_EXIT = 141;

/**
 * The reader of the output went away (EPIPE): not a fault to report. The CLI ends quietly with
 * BROKEN_PIPE_EXIT, as a program that SIGPIPE killed would (Bun ignores SIGPIPE, so it never is).
 */
export class BrokenPipeError extends CarnotError {
  constructor(readonly output: string) {
    super(`cannot write ${output}: the reader closed the pipe (EPIPE)`, { exitCode: BROKEN_PIPE_EXIT });
    this.name = "BrokenPipeError";
  }
}

/** True when `err`, or an error it was caused by, is a closed pipe. */
export function isBrokenPipe(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof BrokenPipeError || (e as NodeJS.ErrnoException).code === "EPIPE") return true;
  }
  return false;
}

/** One line for a human: the message, and the cause's message when it adds something. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}

/** What an errno means, in the words of a one-line message. */
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ELOOP: "is a symbolic link (refused)",
  ENOSPC: "no space left on device (ENOSPC)",
  EDQUOT: "disk quota exceeded (EDQUOT)",
  EFBIG: "file too large (EFBIG)",
  EPIPE: "the reader closed the pipe (EPIPE)",
  EROFS: "read-only file system",
  EIO: "input/output error (EIO)",
  EADDRINUSE: "address already in use (EADDRINUSE)",
  EADDRNOTAVAIL: "address not available on this host (EADDRNOTAVAIL)",
  ECONNREFUSED: "connection refused (ECONNREFUSED)",
};

/** Why a system call failed, without the paths and call names Node puts in its messages. */
export function systemReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string") return ERRNO_TEXT[code] ?? code;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A failed write to `output` (a path, or "stdout") as the error to throw: a BrokenPipeError for EPIPE,
 * else one line `WHAT OUTPUT: reason`.
 */
export function writeFailure(output: string, err: unknown, what = "cannot write", exitCode = 1): CarnotError {
  if (err instanceof CarnotError) return err;
  if ((err as NodeJS.ErrnoException | null)?.code === "EPIPE") return new BrokenPipeError(output);
  return new CarnotError(`${what} ${output}: ${systemReason(err)}`, { exitCode });
}
