/** The process table and fd tables, rebuilt from the trace itself (no look at /proc). */
import { decodeEscapes, FlagSetCache } from "./args.ts";
import type { Net } from "./schema.ts";

/** An open file description: shared by every fd dup'ed from it. */
export interface OpenFile {
  path: string | null;
  type: string | null;
  net: Net | null;
  /** The last `-y` annotation seen for it: the same text again needs no work. */
  annotation?: string;
}

export interface FdEntry {
  file: OpenFile;
  cloexec: boolean;
}

/** One fd table; threads created with CLONE_FILES share the same object. */
export class FdTable {
  readonly fds = new Map<number, FdEntry>();

  copy(): FdTable {
    const t = new FdTable();
    for (const [fd, e] of this.fds) t.fds.set(fd, { file: e.file, cloexec: e.cloexec });
    return t;
  }

  /** execve: every O_CLOEXEC fd is closed. */
  closeOnExec(): void {
    for (const [fd, e] of this.fds) if (e.cloexec) this.fds.delete(fd);
  }
}

/** Filesystem context; shared under CLONE_FS. */
export interface FsContext {
  cwd: string | null;
}

/** What the threads of one process (thread group) share. */
export interface ProcessInfo {
  pid: number;
  ppid: number | null;
  exe: string | null;
  uid: number | null;
  gid: number | null;
  euid: number | null;
  egid: number | null;
  /** effective capability mask (from the kernel when recording live; a trace does not show it) */
  caps: number | null;
}

export interface Task {
  tid: number;
  proc: ProcessInfo;
  fs: FsContext;
  files: FdTable;
  /** Created from a clone we saw (parent known), not just from a first appearance. */
  linked: boolean;
}

export const CLONE_FS = 0x200;
export const CLONE_FILES = 0x400;
export const CLONE_PARENT = 0x8000;
export const CLONE_THREAD = 0x10000;

export class ProcessTable {
  readonly tasks = new Map<number, Task>();
  /** Flag sets parsed so far in this trace (argument decoding, not process state). */
  readonly flagSets = new FlagSetCache();

  /** The task for a tid; one seen for the first time is its own process with nothing known yet. */
  task(tid: number): Task {
    let t = this.tasks.get(tid);
    if (t === undefined) {
      t = {
        tid,
        proc: { pid: tid, ppid: null, exe: null, uid: null, gid: null, euid: null, egid: null, caps: null },
        fs: { cwd: null },
        files: new FdTable(),
        linked: false,
      };
      this.tasks.set(tid, t);
    }
    return t;
  }

  /** A clone/fork/vfork returned `childTid` in `parent`: set up (or correct) the child from the flags. */
  spawn(parent: Task, childTid: number, flags: number): Task {
    const existing = this.tasks.get(childTid);
    if (existing?.linked) return existing;
    const thread = (flags & CLONE_THREAD) !== 0;
    const proc: ProcessInfo = thread
      ? parent.proc
      : {
          pid: childTid,
          ppid: (flags & CLONE_PARENT) !== 0 ? parent.proc.ppid : parent.proc.pid,
          exe: parent.proc.exe,
          uid: parent.proc.uid,
          gid: parent.proc.gid,
          euid: parent.proc.euid,
          egid: parent.proc.egid,
          caps: parent.proc.caps,
        };
    const fs = (flags & CLONE_FS) !== 0 ? parent.fs : { cwd: existing?.fs.cwd ?? parent.fs.cwd };
    let files: FdTable;
    if ((flags & CLONE_FILES) !== 0) {
      files = parent.files;
    } else {
      files = parent.files.copy();
      // fds the child already opened before we learned who its parent was stay its own
      if (existing) for (const [fd, e] of existing.files.fds) files.fds.set(fd, e);
    }
    const t: Task = { tid: childTid, proc, fs, files, linked: true };
    if (existing && !thread) {
      // keep ids the child revealed itself
      proc.exe = existing.proc.exe ?? proc.exe;
      proc.uid = existing.proc.uid ?? proc.uid;
      proc.gid = existing.proc.gid ?? proc.gid;
    }
    this.tasks.set(childTid, t);
    return t;
  }

  /** A tid became another (exec from a non-leader thread takes the leader's pid; a placeholder learns its id). */
  rename(from: number, to: number): Task | undefined {
    const t = this.tasks.get(from);
    if (t === undefined) return undefined;
    this.tasks.delete(from);
    t.tid = to;
    if (t.proc.pid === from) t.proc.pid = to;
    for (const other of this.tasks.values()) if (other.proc.ppid === from) other.proc.ppid = to;
    this.tasks.set(to, t);
    return t;
  }

  remove(tid: number): void {
    this.tasks.delete(tid);
  }
}

/** Normalises an absolute path: `.`, `..` and repeated slashes go; no symlink resolution (not in the trace). */
export function normalisePath(p: string): string {
  if (p.indexOf("/.") < 0 && p.indexOf("//") < 0 && (p.length === 1 || !p.endsWith("/"))) return p;
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/** `rel` against `base`; null when the base is unknown. */
export function joinPath(base: string | null, rel: string): string | null {
  if (rel.startsWith("/")) return normalisePath(rel);
  if (base === null || !base.startsWith("/")) return null;
  if (rel === "") return base;
  return normalisePath(`${base}/${rel}`);
}

/** Resource type of a path or fd annotation. */
export function classifyPath(p: string): string {
  const c = p.charCodeAt(0);
  if (c === 47) {
    if (p.startsWith("/proc/") || p === "/proc") return "PROCFS";
    if (p.startsWith("/dev/shm/") || p.startsWith("/memfd:")) return "SHM";
    if (p.startsWith("/dev/")) return "DEVICE";
    if (p.startsWith("/sys/")) return "SYSFS";
    return "FILE";
  }
  if (p.startsWith("pipe:")) return "PIPE";
  if (p.startsWith("anon_inode:")) {
    return /eventfd|eventpoll|timerfd|signalfd|inotify|fanotify|pidfd|io_uring/.test(p) ? "EVENT" : "ANON";
  }
  if (p.includes(":[")) return "SOCKET";
  return "ANON";
}

/**
 * A `-y`/`-yy` annotation → the fd's facts: `/dev/null<char 1:3>` is a DEVICE at `/dev/null`,
 * `/memfd:blob (deleted)` keeps its marker, `TCP:[…]` is a SOCKET with no path.
 */
export function fileFromAnnotation(a: string): OpenFile {
  if (a.charCodeAt(0) === 47) {
    let path = a;
    let type: string | null = null;
    if (a.endsWith(">")) {
      const lt = a.lastIndexOf("<");
      if (lt > 0) {
        const dev = a.slice(lt + 1, -1);
        path = a.slice(0, lt);
        if (dev.startsWith("char ") || dev.startsWith("block ")) type = "DEVICE";
      }
    }
    // paths inside annotations are C-escaped (`\76` for `>`, `\n`)
    return { path: decodeEscapes(path), type: type ?? classifyPath(path), net: null };
  }
  return { path: null, type: classifyPath(a), net: null };
}
