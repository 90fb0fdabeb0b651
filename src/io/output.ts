/**
 * Where every command writes its text (reports, profiles, actions, timelines, messages for stdout): stdout, or
 * a named file that appears whole (src/io/safe-file.ts). Writes are synchronous and buffered, so a failure is
 * an exception at the call that caused it — never an 'error' event or a rejected promise Bun reports later
 * with its own stack — and a closed pipe stops the command at once (BrokenPipeError, exit 141).
 */
import { writeSync } from "node:fs";
import { writeFailure } from "../errors.ts";
import { createTempBeside, resolveDestination, type TempFile } from "./safe-file.ts";

/** Text is handed to the system in pieces of about this size. */
const BUFFER_BYTES = 1 << 16;

/** A command's output: text written in order, then committed (a file appears) or discarded. */
export interface TextOutput {
  /** "stdout" or the path, for messages */
  readonly name: string;
  write(text: string): void;
  /** Write what is buffered; a file is then fsynced and renamed into place. */
  commit(): void;
  /** After an error: a file's temporary is removed, stdout gets what is buffered (never throws). */
  discard(): void;
}

export interface OutputOptions {
  /** write through an existing symlink at the path (`--follow-symlinks`); refused otherwise */
  followSymlinks?: boolean;
  /** permission bits of a new file (default 0o644) */
  mode?: number;
}

/** True for the names that mean stdout: none, `-` and `/dev/stdout` (a symlink, but the system's own). */
export function isStdoutPath(path: string | null | undefined): boolean {
  return path === undefined || path === null || path === "" || path === "-" || path === "/dev/stdout";
}

/**
 * writeSync of the whole range; waits out EAGAIN (a non-blocking pipe that is full). With `position`, written
 * there (pwrite: a retry after a failed write lands where the failed one began, not past it).
 */
export function writeFully(fd: number, buf: Uint8Array, off: number, len: number, position?: number): void {
  const end = off + len;
  const start = off;
  while (off < end) {
    try {
      off +=
        position === undefined
          ? writeSync(fd, buf, off, end - off)
          : writeSync(fd, buf, off, end - off, position + (off - start));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Bun.sleepSync(1);
    }
  }
}

/** Text encoded into one reused buffer and written to `fd` when it fills. */
class BufferedFd {
  private buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private pos = 0;

  constructor(
    private readonly fd: number,
    private readonly name: string,
  ) {}

  write(text: string): void {
    // at most 3 bytes per UTF-16 unit: a text that may not fit goes out after what is buffered
    if (this.pos + text.length * 3 > this.buf.length) {
      this.flush();
      if (text.length * 3 > this.buf.length) {
        const bytes = Buffer.from(text, "utf8");
        this.send(bytes, bytes.length);
        return;
      }
    }
    this.pos += this.buf.write(text, this.pos);
  }

  flush(): void {
    const len = this.pos;
    this.pos = 0;
    if (len > 0) this.send(this.buf, len);
  }

  private send(bytes: Uint8Array, len: number): void {
    try {
      writeFully(this.fd, bytes, 0, len);
    } catch (err) {
      throw writeFailure(this.name, err);
    }
  }
}

/** Open the output of a command: stdout for no path, `-` or /dev/stdout, else a file that appears on commit. */
export function openTextOutput(path: string | null | undefined, opts: OutputOptions = {}): TextOutput {
  if (isStdoutPath(path)) {
    const out = new BufferedFd(1, "stdout");
    // a stream: what was produced before the error still goes out, as it would have a moment later
    const discard = () => {
      try {
        out.flush();
      } catch {}
    };
    return { name: "stdout", write: (t) => out.write(t), commit: () => out.flush(), discard };
  }
  const name = path as string;
  let tmp: TempFile;
  try {
    tmp = createTempBeside(resolveDestination(name, opts.followSymlinks), opts.mode ?? 0o644);
  } catch (err) {
    throw writeFailure(name, err, "cannot create");
  }
  const out = new BufferedFd(tmp.fd, name);
  return {
    name,
    write: (t) => out.write(t),
    commit() {
      try {
        out.flush();
        tmp.commit();
      } catch (err) {
        tmp.discard();
        throw writeFailure(name, err);
      }
    },
    discard: () => tmp.discard(),
  };
}

/** Write a whole text to stdout or a file (see openTextOutput). */
export function writeTextOutput(
  path: string | null | undefined,
  text: string,
  opts: OutputOptions = {},
): void {
  const out = openTextOutput(path, opts);
  try {
    out.write(text);
    out.commit();
  } catch (err) {
    out.discard();
    throw err;
  }
}

/** Runs `produce` against an output and commits it, or discards it when `produce` throws. */
export async function writeThrough<T>(
  path: string | null | undefined,
  opts: OutputOptions,
  produce: (out: TextOutput) => Promise<T> | T,
): Promise<T> {
  const out = openTextOutput(path, opts);
  try {
    const result = await produce(out);
    out.commit();
    return result;
  } catch (err) {
    out.discard();
    throw err;
  }
}

/** A message for stdout (verify's verdict, the files attest wrote, help): written now, whole. */
export function writeStdout(text: string): void {
  writeTextOutput(null, text);
}

/** A message for stderr, written now; if stderr itself cannot be written there is no one left to tell. */
export function writeStderr(text: string): void {
  try {
    const bytes = Buffer.from(text, "utf8");
    writeFully(2, bytes, 0, bytes.length);
  } catch {}
}
