/**
 * The files a command reads, from its arguments: paths, and glob patterns carnot expands itself, so that
 * `carnot bom 'hosts/*\/runtime.jsonl'` needs no shell (and no shell's limit on arguments). carnot runs as root
 * in directories other users can write to: a pattern never leads it through a symbolic link, nor to anything
 * but a regular file — a link planted at `hosts/x/runtime.jsonl` would otherwise copy root's files into a
 * report — and every match it passes over is named on stderr. A file is read once however often it is named.
 */
import {
  closeSync,
  constants,
  type Dirent,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { CarnotError, systemReason } from "../errors.ts";
import { log } from "../log.ts";

const { O_RDONLY, O_NOFOLLOW } = constants;
/** not in the typings; Linux x86-64 value */
const O_CLOEXEC = 0o2000000;

export interface InputFile {
  /** the path as named, or as the pattern matched it */
  readonly path: string;
  /** the pattern that matched it; null when it was named */
  readonly pattern: string | null;
  /** device and inode when it was found: the file opened later must be this one */
  readonly dev: number;
  readonly ino: number;
  /** where it is read from when that is not `path` (a stream staged in a private file) */
  readonly openPath?: string;
}

/** Characters that make an argument a pattern (when no file has that very name). */
const PATTERN_CHARS = /[*?[{]/;

/** Bytes asked of the system per read: a chunk, its text and its records stay in the CPU caches. */
export const READ_CHUNK_BYTES = 64 * 1024;

/** A line longer than this is not a record carnot wrote; refusing it keeps memory bounded. */
export const MAX_LINE_CHARS = 1024 * 1024;

/**
 * The input files of `args`, in order: a path that exists is read as named (also a link or a pipe such as
 * `<(…)`: it was named); otherwise an argument with `*?[{` is a pattern, matched relative to its fixed
 * directory part, one segment per directory level (`**`: any number), hidden names only by a segment that
 * starts them with a dot (as a shell does).
 * One warning per match passed over; an argument that gives no file is an error (exit 2).
 */
export function expandInputs(args: readonly string[]): InputFile[] {
  const files: InputFile[] = [];
  const byInode = new Map<string, string>();
  const add = (file: InputFile): boolean => {
    const id = `${file.dev}:${file.ino}`;
    const first = byInode.get(id);
    if (first !== undefined) {
      log.warn(`${file.path}: the same file as ${first} (read once)`);
      return false;
    }
    byInode.set(id, file.path);
    files.push(file);
    return true;
  };
  for (const arg of args) {
    if (arg === "") throw new CarnotError("an input path is empty", { exitCode: 2 });
    const named = statNamed(arg);
    if (named) {
      add(named);
      continue;
    }
    if (!PATTERN_CHARS.test(arg)) throw new CarnotError(`${arg}: cannot read: no such file or directory`);
    const matches = expandPattern(arg);
    if (matches.length === 0) throw new CarnotError(`no file matches '${arg}'`, { exitCode: 2 });
    for (const m of matches) add(m);
  }
  return files;
}

/** A path that exists, as named; null when there is nothing by that name. */
function statNamed(path: string): InputFile | null {
  try {
    lstatSync(path);
  } catch {
    return null;
  }
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (err) {
    throw new CarnotError(`${path}: cannot read: ${systemReason(err)}`);
  }
  if (st.isDirectory())
    throw new CarnotError(`${path}: is a directory (name files, or a pattern such as '${path}/*.jsonl')`, {
      exitCode: 2,
    });
  return { path, pattern: null, dev: st.dev, ino: st.ino };
}

/** `a/b/*\/c*.jsonl` → the directory before the first pattern character (`a/b`) and the rest (`*\/c*.jsonl`). */
export function splitPattern(pattern: string): { dir: string; rest: string } {
  const parts = pattern.split("/");
  const first = parts.findIndex((p) => PATTERN_CHARS.test(p));
  const fixed = parts.slice(0, first);
  const dir = fixed.length === 0 ? "." : fixed.length === 1 && fixed[0] === "" ? "/" : fixed.join("/");
  return { dir, rest: parts.slice(first).join("/") };
}

interface Match {
  /** relative to the pattern's directory */
  rel: string;
  /** what the directory entry is (its own type: a link is a link); "passage": a link where a directory was wanted */
  kind: "file" | "directory" | "link" | "other" | "passage";
}

const kindOf = (e: Dirent): Match["kind"] =>
  e.isFile() ? "file" : e.isDirectory() ? "directory" : e.isSymbolicLink() ? "link" : "other";

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The entries a pattern's segments match under `dir`, walked one directory level per segment (`**`: any
 * number of levels), never through a link. Bun.Glob matches each name; the walk is carnot's own because a
 * scan leaves out, without a word, what it does not return (FIFOs, devices, links it does not follow).
 */
function walk(dir: string, rel: string, segments: readonly string[], at: number, out: Match[]): void {
  const segment = segments[at]!;
  const last = at === segments.length - 1;
  const below = (name: string) => (rel === "" ? name : `${rel}/${name}`);
  let entries: Dirent[];
  try {
    entries = readdirSync(dir === "" ? "." : dir, { withFileTypes: true });
  } catch (err) {
    log.warn(`${dir}: cannot list: ${systemReason(err)}`);
    return;
  }
  entries.sort((a, b) => byteOrder(a.name, b.name));
  if (segment === "**") {
    // none of the levels, then each directory level in turn
    if (!last) walk(dir, rel, segments, at + 1, out);
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const kind = kindOf(e);
      if (last) out.push({ rel: below(e.name), kind });
      if (kind === "directory") walk(join(dir, e.name), below(e.name), segments, at, out);
      else if (kind === "link" && !last) out.push({ rel: below(e.name), kind: "passage" });
    }
    return;
  }
  const glob = new Bun.Glob(segment);
  for (const e of entries) {
    // as a shell: a hidden name only for a segment that starts it with a dot
    if (e.name.startsWith(".") && !segment.startsWith(".")) continue;
    if (!glob.match(e.name)) continue;
    const kind = kindOf(e);
    if (last) out.push({ rel: below(e.name), kind });
    else if (kind === "link") out.push({ rel: below(e.name), kind: "passage" });
    else if (kind === "directory") walk(join(dir, e.name), below(e.name), segments, at + 1, out);
  }
}

/** The regular files a pattern matches, in byte order of their paths; every other match is named and left. */
function expandPattern(pattern: string): InputFile[] {
  const { dir, rest } = splitPattern(pattern);
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch {
    return [];
  }
  const matches: Match[] = [];
  walk(
    dir,
    "",
    rest.split("/").filter((s) => s !== ""),
    0,
    matches,
  );
  const seen = new Set<string>();
  const files: InputFile[] = [];
  for (const { rel, kind } of matches.sort((a, b) => byteOrder(a.rel, b.rel))) {
    if (seen.has(rel)) continue;
    seen.add(rel);
    const path = dir === "." ? rel : dir === "/" ? `/${rel}` : `${dir}/${rel}`;
    const leave = (reason: string) => log.warn(`${path}: ${reason} (matched by '${pattern}', not read)`);
    if (kind === "directory") continue;
    if (kind === "link") {
      leave("a symbolic link; name it to read it");
      continue;
    }
    if (kind === "passage") {
      log.warn(`${path}: a symbolic link, not entered (on the way of '${pattern}')`);
      continue;
    }
    if (kind === "other") {
      leave("not a regular file");
      continue;
    }
    let st: ReturnType<typeof lstatSync>;
    let real: string | null = null;
    try {
      st = lstatSync(path);
      real = realpathSync(path);
    } catch (err) {
      leave(`cannot read: ${systemReason(err)}`);
      continue;
    }
    // a directory on the way that is a link (swapped in during the walk) leads elsewhere
    if (!st.isFile() || real !== join(realDir, rel)) {
      leave("changed while carnot looked at it");
      continue;
    }
    files.push({ path, pattern, dev: st.dev, ino: st.ino });
  }
  return files;
}

/**
 * Opens an input for reading: a pattern's match without following a link, and only if it is still the file
 * that was found (same device and inode); a named file as named.
 */
export function openInput(file: InputFile): number {
  let fd: number;
  try {
    fd = openSync(
      file.openPath ?? file.path,
      O_RDONLY | O_CLOEXEC | (file.pattern === null ? 0 : O_NOFOLLOW),
    );
  } catch (err) {
    throw new CarnotError(`${file.path}: cannot read: ${systemReason(err)}`);
  }
  const st = fstatSync(fd);
  if (st.dev !== file.dev || st.ino !== file.ino) {
    closeSync(fd);
    throw new CarnotError(`${file.path}: replaced by another file while carnot ran (refused)`);
  }
  return fd;
}

/** readSync of up to `len` bytes at `off`; waits out EAGAIN (a non-blocking pipe with nothing yet). */
function readSome(fd: number, buf: Uint8Array, off: number, len: number): number {
  for (;;) {
    try {
      return readSync(fd, buf, off, len, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Bun.sleepSync(1);
    }
  }
}

/**
 * A descriptor's bytes, read synchronously (no thread-pool hop per chunk). The buffer is reused: a chunk is
 * valid until the next one is asked for.
 */
export function* readChunks(fd: number, chunkBytes = READ_CHUNK_BYTES): Generator<Uint8Array> {
  const buf = Buffer.allocUnsafe(chunkBytes);
  for (;;) {
    const n = readSome(fd, buf, 0, chunkBytes);
    if (n === 0) return;
    yield buf.subarray(0, n);
  }
}

/**
 * Calls `onValue` with the JSON value of each non-blank line of an input and its 1-based number, holding one
 * chunk at a time. The engine parses a chunk's lines straight from its bytes (Bun.JSONL: no text decoded,
 * a quarter less time than JSON.parse per line, WORKLOG.md); a chunk that is not exactly one value per line
 * (a blank line, a value over two lines, an error) is read again line by line, so an error names its line:
 * `notJson(line)` is thrown for one that is not JSON. Returns the number of lines.
 */
export function forEachJsonLine(
  file: InputFile,
  onValue: (value: unknown, line: number) => void,
  notJson: (line: number) => Error,
): number {
  const fd = openInput(file);
  let buf = Buffer.allocUnsafe(4 * READ_CHUNK_BYTES);
  let have = 0;
  let lines = 0;
  /** the lines of buf[0, end), one by one: the way that names a bad line */
  const lineByLine = (end: number): void => {
    const text = buf.toString("utf8", 0, end);
    let start = 0;
    while (start < text.length) {
      let newline = text.indexOf("\n", start);
      if (newline === -1) newline = text.length;
      const line = ++lines;
      const trimmed = text.slice(start, newline).trim();
      start = newline + 1;
      if (trimmed === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(trimmed);
      } catch {
        throw notJson(line);
      }
      onValue(value, line);
    }
  };
  const tooLong = (line: number) =>
    new CarnotError(`${file.path}:${line}: a line longer than ${MAX_LINE_CHARS} bytes (refused)`);
  try {
    for (;;) {
      if (buf.length - have < READ_CHUNK_BYTES) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, have);
        buf = bigger;
      }
      let n: number;
      try {
        n = readSome(fd, buf, have, buf.length - have);
      } catch (err) {
        throw new CarnotError(`${file.path}: cannot read: ${systemReason(err)}`);
      }
      if (n === 0) break;
      have += n;
      // the newlines of the lines that are whole; each line is checked for its length on the way
      const filled = buf.subarray(0, have);
      let newlines = 0;
      let last = -1;
      for (let at = filled.indexOf(10); at !== -1; at = filled.indexOf(10, at + 1)) {
        if (at - last > MAX_LINE_CHARS + 1) throw tooLong(lines + newlines + 1);
        newlines++;
        last = at;
      }
      if (last === -1) {
        if (have > MAX_LINE_CHARS) throw tooLong(lines + 1);
        continue;
      }
      const parsed = Bun.JSONL.parseChunk(buf, 0, last + 1);
      if (parsed.error === null && parsed.values.length === newlines) {
        const base = lines;
        lines += newlines;
        for (let i = 0; i < newlines; i++) onValue(parsed.values[i], base + i + 1);
      } else lineByLine(last + 1);
      buf.copy(buf, 0, last + 1, have);
      have -= last + 1;
      if (have > MAX_LINE_CHARS) throw tooLong(lines + 1);
    }
    // a last line without its newline (a file cut off mid-write) is still a line
    if (have > 0) lineByLine(have);
    return lines;
  } finally {
    closeSync(fd);
  }
}

/** An input's whole text (a document such as a CryptoBOM), or a one-line error naming it. */
export function readInputText(file: InputFile): string {
  const fd = openInput(file);
  try {
    const decoder = new TextDecoder();
    let text = "";
    for (const chunk of readChunks(fd, 1 << 20)) text += decoder.decode(chunk, { stream: true });
    return text + decoder.decode();
  } catch (err) {
    throw new CarnotError(`${file.path}: cannot read: ${systemReason(err)}`);
  } finally {
    closeSync(fd);
  }
}
