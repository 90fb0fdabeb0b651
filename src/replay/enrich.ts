/** One complete system call + the tables → one EnhancedEvent, updating the tables as the call did. */
import {
  annotationOf,
  argValue,
  argWords,
  fieldOf,
  netFromAnnotation,
  parseNumber,
  parseReturn,
  parseSockaddr,
  stringArg,
} from "./args.ts";
import { riskTags } from "./risk.ts";
import { splitArgs } from "./scan.ts";
import type { EnhancedEvent, Net } from "./schema.ts";
import { callSpec } from "./syscalls.ts";
import {
  classifyPath,
  type FdEntry,
  type FdTable,
  fileFromAnnotation,
  joinPath,
  type OpenFile,
  type ProcessTable,
  type Task,
} from "./tables.ts";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  CLONE_VFORK,
  CLONE_VM,
  CLOSE_RANGE_CLOEXEC,
  FD_CLOEXEC,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_SETFD,
  O_ACCMODE,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from "./constants.ts";

/** The fd a call acts on, as it was when the call began (its first half). */
export interface EntryFd {
  fd: number;
  entry: FdEntry | undefined;
}

/** A system call with both halves joined. */
export interface CompleteCall {
  tid: number;
  ts: number;
  call: string;
  argText: string;
  /** `argText` already split (whole lines), or null to split here. */
  args?: string[] | null;
  /** False for a resumed half with no pending half: its argument positions are unknown. */
  argsKnown: boolean;
  /** Null when the call was cut (no return line at all). */
  retText: string | null;
  latency: number | null;
  raw: string;
  /** Resolved when the first half was read; null or absent for a call read whole. */
  entry?: EntryFd | null;
}

const O_TMPFILE_DIR = 0o20000000;

/** int arguments are 32-bit: raw `0xffffff9c` is AT_FDCWD. */
const int32 = (v: number | null | undefined): number | null => (v === null || v === undefined ? null : v | 0);

const SOCK_PROTOCOLS: Record<string, Record<number, string>> = {
  AF_INET: { 1: "TCP", 2: "UDP", 3: "RAW", 5: "SCTP" },
  AF_INET6: { 1: "TCP", 2: "UDP", 3: "RAW", 5: "SCTP" },
  AF_UNIX: { 1: "STREAM", 2: "DGRAM", 5: "SEQPACKET" },
};
const IPPROTO_NAMES: Record<string, string> = {
  IPPROTO_TCP: "TCP",
  IPPROTO_UDP: "UDP",
  IPPROTO_ICMP: "ICMP",
  IPPROTO_ICMPV6: "ICMPV6",
  IPPROTO_SCTP: "SCTP",
  IPPROTO_RAW: "RAW",
  IPPROTO_UDPLITE: "UDPLITE",
  IPPROTO_MPTCP: "MPTCP",
};

function emptyNet(family: string | null, protocol: string | null): Net {
  return { family, protocol, local_addr: null, local_port: null, remote_addr: null, remote_port: null };
}

/** The fds listed in `[3<pipe:[9608]>, 4<pipe:[9608]>]` or `[3, 4]`. */
function fdPair(text: string | undefined): [number, string | null][] {
  if (text === undefined || !text.startsWith("[") || !text.endsWith("]")) return [];
  return splitArgs(text.slice(1, -1)).map((a) => {
    const lt = a.indexOf("<");
    return [parseNumber(lt > 0 ? a.slice(0, lt) : a), annotationOf(a)] as [number, string | null];
  });
}

/** Applies an fd annotation (the truth with -y/-yy) to the table; returns the entry. */
function learnFd(files: FdTable, fd: number, annotation: string): FdEntry {
  const known = files.fds.get(fd);
  if (known !== undefined && known.file.annotation === annotation) return known;
  const fromAnn = fileFromAnnotation(annotation);
  const net = fromAnn.type === "SOCKET" ? netFromAnnotation(annotation) : null;
  if (
    known &&
    known.file.path === fromAnn.path &&
    (known.file.type === fromAnn.type || known.file.type === null)
  ) {
    // the same open file; a socket's endpoints fill in as it is bound and connected
    known.file.type = fromAnn.type;
    known.file.annotation = annotation;
    if (net !== null) known.file.net = mergeNet(known.file.net, net);
    return known;
  }
  // an fd we had wrong (or never saw opened): a new open file, so fds dup'ed from the old one keep theirs
  const entry: FdEntry = { file: { ...fromAnn, net, annotation }, cloexec: known?.cloexec ?? false };
  files.fds.set(fd, entry);
  return entry;
}

/** Later facts win field by field; nothing known is thrown away. */
function mergeNet(old: Net | null, add: Net): Net {
  if (old === null) return add;
  return {
    family: add.family ?? old.family,
    protocol: add.protocol ?? old.protocol,
    local_addr: add.local_addr ?? old.local_addr,
    local_port: add.local_port ?? old.local_port,
    remote_addr: add.remote_addr ?? old.remote_addr,
    remote_port: add.remote_port ?? old.remote_port,
  };
}

/** Clone flags of a clone/clone3/fork/vfork call from its argument text. */
export function cloneFlags(call: string, argText: string): number {
  if (call === "fork") return 0;
  if (call === "vfork") return CLONE_VM | CLONE_VFORK;
  const flags = fieldOf(call === "clone3" ? argText.slice(argText.indexOf("{")) : `{${argText}}`, "flags");
  if (flags === null) return 0;
  const words = argWords([flags]);
  return words[0] ?? 0;
}

/** x86-64 clone(flags, stack, parent_tid, child_tid, tls): strace prints them by name, stack first. */
const CLONE_ARG_SLOTS: Record<string, number> = {
  flags: 0,
  child_stack: 1,
  parent_tid: 2,
  child_tidptr: 3,
  tls: 4,
};

function cloneWords(args: string[]): (number | null)[] {
  const out: (number | null)[] = [null, null, null, null, null, null];
  for (const a of args) {
    const eq = a.indexOf("=");
    const slot = eq > 0 ? CLONE_ARG_SLOTS[a.slice(0, eq)] : undefined;
    if (slot === undefined) return argWords(args);
    out[slot] = argWords([a.slice(eq + 1)])[0] ?? null;
  }
  return out;
}

/**
 * The first half of a call: its fd argument is resolved now, while the number still means what the
 * caller meant. close frees the number as it begins, so another thread can get it before close returns.
 */
export function enterCall(table: ProcessTable, tid: number, call: string, argText: string): EntryFd | null {
  const at = callSpec(call).fd;
  if (at === undefined) return null;
  const args = splitArgs(argText);
  if (args.length <= at) return null;
  const fd = int32(argValue(args[at]!));
  if (fd === null || fd < 0) return null;
  const files = table.task(tid).files;
  const a = annotationOf(args[at]!);
  const entry = a !== null ? learnFd(files, fd, a) : files.fds.get(fd);
  if (call === "close") files.fds.delete(fd);
  return { fd, entry };
}

/** The fd a path reopens: `/dev/fd/N`, `/proc/self/fd/N` (and the thread's, and this pid's), `/dev/stdin`. */
function reopenedFd(path: string, pid: number): number | null {
  if (path === "/dev/stdin") return 0;
  if (path === "/dev/stdout") return 1;
  if (path === "/dev/stderr") return 2;
  const m = /^\/(?:dev\/fd|proc\/(?:self|thread-self|(\d+)(?:\/task\/\d+)?)\/fd)\/(\d+)$/.exec(path);
  if (m === null || (m[1] !== undefined && Number(m[1]) !== pid)) return null;
  return Number(m[2]);
}

/** The file type `st_mode=S_IFDIR|0755` (stat) or `stx_mode=…` (statx) names; null when not printed. */
function typeFromStatMode(struct: string | undefined): string | null {
  if (struct === undefined || struct.charCodeAt(0) !== 123) return null;
  const text = fieldOf(struct, "st_mode") ?? fieldOf(struct, "stx_mode");
  const mode = text === null ? null : argValue(text);
  if (mode === null) return null;
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "DIR";
    case S_IFIFO:
      return "PIPE";
    case S_IFSOCK:
      return "SOCKET";
    case S_IFCHR:
    case S_IFBLK:
      return "DEVICE";
    case S_IFREG:
      return "FILE";
    default:
      return null;
  }
}

/** Where each stat call prints its struct. */
const STAT_STRUCT_ARG: Record<string, number> = {
  stat: 1,
  lstat: 1,
  fstat: 1,
  newfstatat: 2,
  fstatat64: 2,
  statx: 4,
};

const CLONE_CALLS = new Set(["clone", "clone2", "clone3", "fork", "vfork"]);
export const isCloneCall = (call: string): boolean => CLONE_CALLS.has(call);

export function enrichCall(table: ProcessTable, c: CompleteCall): EnhancedEvent {
  const task = table.task(c.tid);
  const call = c.call;
  const spec = callSpec(call);
  const args = c.argsKnown ? (c.args ?? splitArgs(c.argText)) : [];
  const words = call === "clone" ? cloneWords(args) : argWords(args, table.flagSets);
  const ret = c.retText === null ? { retval: null, errno: null, annotation: null } : parseReturn(c.retText);
  const retval = ret.retval;
  const ok = retval !== null && retval >= 0;
  const files = task.files;

  // what -y/-yy printed for fd arguments is the truth for those fds
  let fdEntry: FdEntry | undefined;
  let fd: number | null = -1;
  if (c.entry) {
    fd = c.entry.fd;
    fdEntry = c.entry.entry;
  } else if (spec.fd !== undefined && args.length > spec.fd) {
    fd = int32(words[spec.fd]);
    const a = annotationOf(args[spec.fd]!);
    if (fd !== null && fd >= 0) fdEntry = a !== null ? learnFd(files, fd, a) : files.fds.get(fd);
  } else if (spec.fd !== undefined) {
    fd = null;
  }

  // the path argument, resolved against its dirfd or the cwd
  let absPath: string | null = null;
  let dirfd: number | null = AT_FDCWD;
  if (spec.dirfd !== undefined) {
    dirfd = int32(words[spec.dirfd]);
    const a = args[spec.dirfd] === undefined ? null : annotationOf(args[spec.dirfd]!);
    if (a !== null) {
      if (dirfd === AT_FDCWD) task.fs.cwd = fileFromAnnotation(a).path;
      else if (dirfd !== null && dirfd >= 0) learnFd(files, dirfd, a);
    }
  }
  if (spec.path !== undefined) {
    const p = stringArg(args[spec.path]);
    if (p !== null) {
      const base = p.startsWith("/")
        ? "/"
        : dirfd === AT_FDCWD
          ? task.fs.cwd
          : dirfd === null
            ? null
            : (files.fds.get(dirfd)?.file.path ?? null);
      const flagsArg = spec.dirfd !== undefined ? (words[spec.dirfd + 2] ?? null) : null;
      const emptyPath = p === "" && flagsArg !== null && (flagsArg & AT_EMPTY_PATH) !== 0;
      absPath = p === "" && !emptyPath && call !== "execveat" ? null : joinPath(base, p);
      if (p === "" && dirfd !== null && dirfd >= 0) fdEntry = files.fds.get(dirfd);
    }
  }
  if (absPath === null && fdEntry?.file.path?.startsWith("/")) absPath = fdEntry.file.path;
  let destPath: string | null = null;
  if (spec.path2 !== undefined) {
    const p = stringArg(args[spec.path2]);
    const d = spec.dirfd2 === undefined ? AT_FDCWD : int32(words[spec.dirfd2]);
    const base = d === AT_FDCWD ? task.fs.cwd : d === null ? null : (files.fds.get(d)?.file.path ?? null);
    if (p !== null && p !== "") destPath = joinPath(base, p);
  }

  let resourceType: string | null = fdEntry?.file.type ?? null;
  let net: Net | null = fdEntry?.file.net ?? null;
  let perm: number | null = null;
  let openFlags: number | null = null;
  let byteCount: number | null = null;
  let socketFamily: string | null = null;
  let socketType: number | null = null;
  let targetIds: (number | null)[] | null = null;
  let kind = spec.kind;
  let operation = spec.operation;

  if (spec.mode !== undefined) {
    const m = words[spec.mode];
    if (m !== null && m !== undefined) perm = m & 0o7777;
  }
  if (spec.count !== undefined) byteCount = ok ? retval : (words[spec.count] ?? null);
  else if (operation === "READ" || operation === "WRITE") byteCount = ok ? retval : null;

  if (spec.returnsFd) fd = ok ? retval : -1;

  switch (call) {
    case "open":
    case "openat":
    case "openat2":
    case "creat": {
      const flagsIdx = call === "open" ? 1 : call === "creat" ? -1 : 2;
      let flags = flagsIdx < 0 ? 0o1101 : (words[flagsIdx] ?? null);
      if (call === "openat2") {
        const how = args[2] ? fieldOf(args[2], "flags") : null;
        flags = how === null ? null : (argWords([how])[0] ?? null);
      }
      openFlags = flags;
      // O_TMPFILE (which includes O_DIRECTORY's bit) makes an unnamed regular file in the directory
      const tmpfile = flags !== null && (flags & O_TMPFILE_DIR) !== 0;
      const directory = flags !== null && !tmpfile && (flags & O_DIRECTORY) !== 0;
      if (flags !== null) {
        if ((flags & O_CREAT) === 0 && !tmpfile) perm = null;
        const acc = flags & O_ACCMODE;
        if (acc !== 0 || (flags & O_CREAT) !== 0) kind = "FileWrite";
        if ((flags & O_CREAT) !== 0 || tmpfile) operation = "CREATE";
      }
      // `/dev/fd/N` opens what fd N is open on (bash's process substitution: a pipe)
      const reopened = absPath === null ? null : reopenedFd(absPath, task.proc.pid);
      const via = reopened === null ? undefined : files.fds.get(reopened);
      if (ok) {
        let file: OpenFile;
        if (ret.annotation !== null) file = fileFromAnnotation(ret.annotation);
        else if (via !== undefined) file = { path: via.file.path, type: via.file.type, net: via.file.net };
        else if (tmpfile) file = { path: null, type: "FILE", net: null };
        else file = { path: absPath, type: null, net: null };
        if (file.path === null && !tmpfile && via === undefined) file.path = absPath;
        if (tmpfile) file.type = "FILE";
        else if (reopened !== null && ret.annotation === null) file.type = via?.file.type ?? null;
        else if (file.type === null || file.type === "FILE") {
          const t = file.path === null ? null : classifyPath(file.path);
          file.type = directory && t === "FILE" ? "DIR" : t;
        }
        files.fds.set(retval, { file, cloexec: flags !== null && (flags & O_CLOEXEC) !== 0 });
        if (file.path?.startsWith("/")) absPath = file.path;
        resourceType = file.type;
      } else if (absPath !== null) {
        resourceType = tmpfile
          ? "FILE"
          : reopened !== null
            ? (via?.file.type ?? null)
            : directory
              ? "DIR"
              : classifyPath(absPath);
      }
      break;
    }
    case "close":
      // a close read in two halves freed its fd when it began (enterCall)
      if (!c.entry && fd !== null && fd >= 0 && (ok || ret.errno === "EINTR")) files.fds.delete(fd);
      break;
    case "close_range": {
      const first = words[0];
      const last = words[1] === null || words[1] === undefined ? null : words[1] < 0 ? 0xffffffff : words[1];
      const flags = words[2] ?? 0;
      if (ok && first !== null && first !== undefined && last !== null) {
        for (const [n, e] of files.fds) {
          if (n < first || n > last) continue;
          if ((flags & CLOSE_RANGE_CLOEXEC) !== 0) e.cloexec = true;
          else files.fds.delete(n);
        }
      }
      break;
    }
    case "dup":
    case "dup2":
    case "dup3":
      if (ok) {
        const cloexec = call === "dup3" && ((words[2] ?? 0) & O_CLOEXEC) !== 0;
        // the target's old open file is replaced, never edited: other fds may still share it
        if (fdEntry) files.fds.set(retval, { file: fdEntry.file, cloexec });
        else if (ret.annotation !== null)
          files.fds.set(retval, { file: fileFromAnnotation(ret.annotation), cloexec });
        else files.fds.delete(retval);
        const now = files.fds.get(retval);
        resourceType = now?.file.type ?? null;
        net = now?.file.net ?? null;
        if (now?.file.path?.startsWith("/")) absPath = now.file.path;
      }
      break;
    case "fcntl": {
      const cmd = words[1];
      if (ok && (cmd === F_DUPFD || cmd === F_DUPFD_CLOEXEC)) {
        if (fdEntry) files.fds.set(retval, { file: fdEntry.file, cloexec: cmd === F_DUPFD_CLOEXEC });
        else files.fds.delete(retval);
        fd = retval;
        operation = "DUP";
      } else if (ok && cmd === F_SETFD && fdEntry) {
        fdEntry.cloexec = ((words[2] ?? 0) & FD_CLOEXEC) !== 0;
      }
      break;
    }
    case "pipe":
    case "pipe2":
    case "socketpair": {
      const pairArg = call === "socketpair" ? args[3] : args[0];
      const cloexec = ((call === "pipe2" ? words[1] : call === "socketpair" ? words[1] : 0) ?? 0) & O_CLOEXEC;
      if (ok) {
        const pair = fdPair(pairArg);
        const family = call === "socketpair" ? (args[0] ?? null) : null;
        for (const [n, a] of pair) {
          if (Number.isNaN(n)) continue;
          const file: OpenFile =
            a !== null
              ? fileFromAnnotation(a)
              : { path: null, type: call === "socketpair" ? "SOCKET" : "PIPE", net: null };
          if (call === "socketpair")
            file.net = (a !== null ? netFromAnnotation(a) : null) ?? emptyNet(family, null);
          files.fds.set(n, { file, cloexec: cloexec !== 0 });
        }
        if (pair[0]) fd = pair[0][0];
      }
      resourceType = call === "socketpair" ? "SOCKET" : "PIPE";
      break;
    }
    case "socket": {
      socketFamily = args[0] ?? null;
      socketType = words[1] ?? null;
      const proto = args[2] === undefined ? undefined : IPPROTO_NAMES[args[2]];
      const base = socketType === null ? null : socketType & 0xf;
      const protocol =
        proto ??
        (socketFamily !== null && base !== null ? (SOCK_PROTOCOLS[socketFamily]?.[base] ?? null) : null);
      const n: Net = emptyNet(socketFamily, protocol);
      resourceType = "SOCKET";
      if (ok) {
        const annotated = ret.annotation === null ? null : netFromAnnotation(ret.annotation);
        const file: OpenFile = {
          path: null,
          type: "SOCKET",
          net: annotated === null ? n : mergeNet(n, annotated),
        };
        files.fds.set(retval, { file, cloexec: ((socketType ?? 0) & O_CLOEXEC) !== 0 });
        net = file.net;
      } else {
        net = n;
      }
      break;
    }
    case "connect":
    case "bind": {
      const sa = args[1] === undefined ? null : parseSockaddr(args[1]);
      resourceType = "SOCKET";
      if (sa !== null) {
        const add =
          call === "connect"
            ? { ...emptyNet(sa.family, null), remote_addr: sa.addr, remote_port: sa.port }
            : // port 0 asks the kernel to choose one: which, the trace tells only later (getsockname)
              {
                ...emptyNet(sa.family, null),
                local_addr: sa.addr,
                local_port: sa.port === 0 ? null : sa.port,
              };
        const merged = mergeNet(fdEntry?.file.net ?? null, add);
        net = merged;
        if (fdEntry && (ok || ret.errno === "EINPROGRESS")) fdEntry.file.net = merged;
      }
      break;
    }
    case "getsockname":
    case "getpeername": {
      // the kernel's answer: a port bound as 0 is known from here on
      const sa = ok && args[1] !== undefined ? parseSockaddr(args[1]) : null;
      if (sa !== null && fdEntry) {
        const add =
          call === "getsockname"
            ? { ...emptyNet(sa.family, null), local_addr: sa.addr, local_port: sa.port }
            : { ...emptyNet(sa.family, null), remote_addr: sa.addr, remote_port: sa.port };
        fdEntry.file.net = mergeNet(fdEntry.file.net, add);
        net = fdEntry.file.net;
      }
      break;
    }
    case "accept":
    case "accept4": {
      resourceType = "SOCKET";
      if (ok) {
        const sa = args[1] === undefined ? null : parseSockaddr(args[1]);
        const listening = fdEntry?.file.net ?? null;
        let n: Net = emptyNet(sa?.family ?? listening?.family ?? null, listening?.protocol ?? null);
        n.local_addr = listening?.local_addr ?? null;
        n.local_port = listening?.local_port ?? null;
        if (sa !== null) {
          n.remote_addr = sa.addr;
          n.remote_port = sa.port;
        }
        if (ret.annotation !== null) {
          const a = netFromAnnotation(ret.annotation);
          if (a !== null) n = mergeNet(n, a);
        }
        const cloexec = call === "accept4" && ((words[3] ?? 0) & O_CLOEXEC) !== 0;
        files.fds.set(retval, { file: { path: null, type: "SOCKET", net: n }, cloexec });
        net = n;
      }
      break;
    }
    case "memfd_create":
    case "memfd_secret": {
      resourceType = "SHM";
      if (ok) {
        const name = stringArg(args[0]);
        const file: OpenFile =
          ret.annotation !== null
            ? fileFromAnnotation(ret.annotation)
            : { path: name === null ? null : `/memfd:${name}`, type: "SHM", net: null };
        file.type = "SHM";
        files.fds.set(retval, { file, cloexec: ((words[1] ?? 0) & 1) !== 0 });
        absPath = file.path;
      }
      break;
    }
    case "eventfd":
    case "eventfd2":
    case "epoll_create":
    case "epoll_create1":
    case "timerfd_create":
    case "signalfd4":
    case "inotify_init":
    case "inotify_init1":
    case "fanotify_init":
    case "pidfd_open":
    case "userfaultfd":
    case "perf_event_open":
    case "io_uring_setup":
      if (ok) {
        const file: OpenFile =
          ret.annotation !== null
            ? fileFromAnnotation(ret.annotation)
            : { path: null, type: "EVENT", net: null };
        if (call === "userfaultfd" || call === "perf_event_open" || call === "io_uring_setup") {
          if (ret.annotation === null) file.type = "ANON";
        }
        const flagWord = words[call === "timerfd_create" || call === "signalfd4" ? 1 : 0] ?? 0;
        files.fds.set(retval, {
          file,
          cloexec: call.startsWith("epoll") || call === "eventfd2" ? (flagWord & O_CLOEXEC) !== 0 : false,
        });
        resourceType = file.type;
      }
      break;
    case "chdir":
      if (ok && absPath !== null) task.fs.cwd = absPath;
      resourceType = "DIR";
      break;
    case "fchdir":
      if (ok && fdEntry?.file.path) task.fs.cwd = fdEntry.file.path;
      resourceType = "DIR";
      break;
    case "getdents":
    case "getdents64":
      if (fdEntry) fdEntry.file.type = "DIR";
      resourceType = "DIR";
      break;
    case "execve":
    case "execveat":
      if (call === "execveat" && absPath === null && fdEntry?.file.path) absPath = fdEntry.file.path;
      if (absPath?.startsWith("/proc/")) {
        // fexecve through /proc/self/fd/N runs whatever fd N is (a memfd, a deleted file)
        const m = /^\/proc\/(?:self|thread-self|\d+)\/fd\/(\d+)$/.exec(absPath);
        const viaFd = m ? files.fds.get(Number(m[1])) : undefined;
        if (viaFd) fdEntry = viaFd;
      }
      if (absPath !== null) resourceType = classifyPath(absPath);
      if (retval === 0) {
        task.proc.exe = absPath;
        files.closeOnExec();
      }
      break;
    case "setuid":
    case "setgid":
    case "setfsuid":
    case "setfsgid":
    case "setreuid":
    case "setregid":
    case "setresuid":
    case "setresgid":
      targetIds = words.slice(0, call.startsWith("setres") ? 3 : call.startsWith("setre") ? 2 : 1);
      if (ok) applyIds(task, call, words);
      break;
    case "getuid":
      if (ok) task.proc.uid = retval;
      break;
    case "getgid":
      if (ok) task.proc.gid = retval;
      break;
    case "geteuid":
      if (ok) task.proc.euid = retval;
      break;
    case "getegid":
      if (ok) task.proc.egid = retval;
      break;
    case "getcwd": {
      const cwd = ok ? stringArg(args[0]) : null;
      if (cwd?.startsWith("/")) task.fs.cwd = cwd;
      break;
    }
    case "getppid":
      if (ok) task.proc.ppid = retval;
      break;
  }

  if (resourceType === null && absPath !== null && spec.path !== undefined)
    resourceType = classifyPath(absPath);
  const statArg = ok ? STAT_STRUCT_ARG[call] : undefined;
  if (statArg !== undefined) {
    // st_mode is the kernel's word on what the file is: a directory opened without O_DIRECTORY, a pipe
    const type = typeFromStatMode(args[statArg]);
    const onFd = fdEntry !== undefined || (spec.fd !== undefined && fd !== null && fd >= 0);
    const emptyPath = spec.path !== undefined && args[spec.path] === '""';
    if (type !== null && (onFd || emptyPath)) {
      const n = onFd ? fd : spec.dirfd === undefined ? null : int32(words[spec.dirfd]);
      if (fdEntry === undefined && n !== null && n >= 0) {
        fdEntry = { file: { path: null, type, net: null }, cloexec: false };
        files.fds.set(n, fdEntry);
      } else if (fdEntry !== undefined && (fdEntry.file.type === null || fdEntry.file.type === "FILE")) {
        fdEntry.file.type = type;
      }
      if (fdEntry !== undefined) resourceType = fdEntry.file.type;
    } else if (type !== null && (resourceType === null || resourceType === "FILE")) {
      resourceType = type;
    }
  }
  if (fdEntry && resourceType === "SOCKET") {
    if (kind === "FileRead") kind = "NetReceive";
    else if (kind === "FileWrite") kind = "NetSend";
  } else if (fdEntry && resourceType === "PIPE" && (kind === "FileRead" || kind === "FileWrite")) {
    kind = "Ipc";
  }

  const tags = riskTags({
    call,
    words,
    retval,
    absPath,
    destPath,
    fdType: fdEntry?.file.type ?? null,
    fdPath: fdEntry?.file.path ?? null,
    openFlags,
    targetIds,
    socketFamily,
    socketType,
  });

  const proc = task.proc;
  return {
    ts: c.ts,
    pid: proc.pid,
    tid: task.tid,
    ppid: proc.ppid,
    call,
    args: words,
    retval,
    errno: ret.errno,
    raw_line: c.raw,
    raw_hash: null,
    exe_path: proc.exe,
    cwd: task.fs.cwd,
    uid: proc.uid,
    gid: proc.gid,
    euid: proc.euid,
    egid: proc.egid,
    caps: null,
    fd,
    abs_path: absPath,
    resource_type: resourceType,
    operation,
    perm_bits: perm,
    byte_count: byteCount,
    net,
    latency_us: c.latency,
    risk_tags: tags,
    high_level_kind: kind,
  };
}

function applyIds(task: Task, call: string, w: (number | null)[]): void {
  const p = task.proc;
  const set = (v: number | null | undefined): number | null | undefined =>
    v === null || v === undefined || v === -1 || v === 0xffffffff ? undefined : v;
  const a = set(w[0]);
  const b = set(w[1]);
  switch (call) {
    case "setuid":
      if (a !== undefined) {
        if (p.euid === 0 || p.euid === null) p.uid = a;
        p.euid = a;
      }
      break;
    case "setgid":
      if (a !== undefined) {
        if (p.euid === 0 || p.euid === null) p.gid = a;
        p.egid = a;
      }
      break;
    case "setreuid":
    case "setresuid":
      if (a !== undefined) p.uid = a;
      if (b !== undefined) p.euid = b;
      break;
    case "setregid":
    case "setresgid":
      if (a !== undefined) p.gid = a;
      if (b !== undefined) p.egid = b;
      break;
  }
}
