/** Files and directories: opened, listed, stat'ed, moved into (chdir), and the cwd as the kernel reports it. */
import { argValue, fieldOf, stringArg } from "../args.ts";
import {
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
} from "../constants.ts";
import { classifyPath, fileFromAnnotation, type OpenFile } from "../tables.ts";
import { type Handler, int32 } from "./context.ts";

/** O_TMPFILE's own bit (O_TMPFILE also carries O_DIRECTORY's). */
const O_TMPFILE_DIR = 0o20000000;

/**
 * The fd a path reopens: `/dev/fd/N`, `/proc/self/fd/N` (and the thread's, and pid's when `pid` is given;
 * any pid's when it is null), `/dev/stdin`.
 */
export function reopenedFd(path: string, pid: number | null): number | null {
  if (path === "/dev/stdin") return 0;
  if (path === "/dev/stdout") return 1;
  if (path === "/dev/stderr") return 2;
  const m = /^\/(?:dev\/fd|proc\/(?:self|thread-self|(\d+)(?:\/task\/\d+)?)\/fd)\/(\d+)$/.exec(path);
  if (m === null || (pid !== null && m[1] !== undefined && Number(m[1]) !== pid)) return null;
  return Number(m[2]);
}

const open: Handler = (ctx) => {
  const { call, words, files } = ctx;
  const flagsIdx = call === "open" ? 1 : call === "creat" ? -1 : 2;
  let flags = flagsIdx < 0 ? 0o1101 : (words[flagsIdx] ?? null);
  if (call === "openat2") {
    const struct = ctx.args.at(2);
    const how = struct ? fieldOf(struct, "flags") : null;
    flags = how === null ? null : argValue(how);
  }
  ctx.openFlags = flags;
  // O_TMPFILE (which includes O_DIRECTORY's bit) makes an unnamed regular file in the directory
  const tmpfile = flags !== null && (flags & O_TMPFILE_DIR) !== 0;
  const directory = flags !== null && !tmpfile && (flags & O_DIRECTORY) !== 0;
  if (flags !== null) {
    if ((flags & O_CREAT) === 0 && !tmpfile) ctx.perm = null;
    const acc = flags & O_ACCMODE;
    if (acc !== 0 || (flags & O_CREAT) !== 0) ctx.kind = "FileWrite";
    if ((flags & O_CREAT) !== 0 || tmpfile) ctx.operation = "CREATE";
  }
  const absPath = ctx.absPath;
  // `/dev/fd/N` opens what fd N is open on (bash's process substitution: a pipe)
  const reopened = absPath === null ? null : reopenedFd(absPath, ctx.task.proc.pid);
  const via = reopened === null ? undefined : files.fds.get(reopened);
  if (ctx.ok) {
    let file: OpenFile;
    if (ctx.retAnnotation !== null) file = fileFromAnnotation(ctx.retAnnotation);
    else if (via !== undefined) file = { path: via.file.path, type: via.file.type, net: via.file.net };
    else if (tmpfile) file = { path: null, type: "FILE", net: null };
    else file = { path: absPath, type: null, net: null };
    if (file.path === null && !tmpfile && via === undefined) file.path = absPath;
    if (tmpfile) file.type = "FILE";
    else if (reopened !== null && ctx.retAnnotation === null) file.type = via?.file.type ?? null;
    else if (file.type === null || file.type === "FILE") {
      const t = file.path === null ? null : classifyPath(file.path);
      file.type = directory && t === "FILE" ? "DIR" : t;
    }
    files.fds.set(ctx.retval!, { file, cloexec: flags !== null && (flags & O_CLOEXEC) !== 0 });
    if (file.path?.startsWith("/")) ctx.absPath = file.path;
    ctx.resourceType = file.type;
  } else if (absPath !== null) {
    ctx.resourceType = tmpfile
      ? "FILE"
      : reopened !== null
        ? (via?.file.type ?? null)
        : directory
          ? "DIR"
          : classifyPath(absPath);
  }
};

const chdir: Handler = (ctx) => {
  if (ctx.ok && ctx.absPath !== null) ctx.task.fs.cwd = ctx.absPath;
  ctx.resourceType = "DIR";
};

const fchdir: Handler = (ctx) => {
  const path = ctx.fdEntry?.file.path;
  if (ctx.ok && path) ctx.task.fs.cwd = path;
  ctx.resourceType = "DIR";
};

const getdents: Handler = (ctx) => {
  if (ctx.fdEntry) ctx.fdEntry.file.type = "DIR";
  ctx.resourceType = "DIR";
};

const getcwd: Handler = (ctx) => {
  const cwd = ctx.ok ? stringArg(ctx.args.at(0)) : null;
  if (cwd?.startsWith("/")) ctx.task.fs.cwd = cwd;
};

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

/** A stat call, its struct the argument at `structArg`: st_mode is the kernel's word on what the file is. */
const stat =
  (structArg: number): Handler =>
  (ctx) => {
    const { spec, args } = ctx;
    if (ctx.resourceType === null && ctx.absPath !== null && spec.path !== undefined)
      ctx.resourceType = classifyPath(ctx.absPath);
    if (!ctx.ok) return;
    // a directory opened without O_DIRECTORY, a pipe inherited from outside the trace
    const type = typeFromStatMode(args.at(structArg));
    const fd = ctx.fd;
    const onFd = ctx.fdEntry !== undefined || (spec.fd !== undefined && fd !== null && fd >= 0);
    const emptyPath = spec.path !== undefined && args.at(spec.path) === '""';
    if (type !== null && (onFd || emptyPath)) {
      const n = onFd ? fd : spec.dirfd === undefined ? null : int32(ctx.words[spec.dirfd]);
      if (ctx.fdEntry === undefined && n !== null && n >= 0) {
        ctx.fdEntry = { file: { path: null, type, net: null }, cloexec: false };
        ctx.files.fds.set(n, ctx.fdEntry);
      } else if (
        ctx.fdEntry !== undefined &&
        (ctx.fdEntry.file.type === null || ctx.fdEntry.file.type === "FILE")
      ) {
        ctx.fdEntry.file.type = type;
      }
      if (ctx.fdEntry !== undefined) ctx.resourceType = ctx.fdEntry.file.type;
    } else if (type !== null && (ctx.resourceType === null || ctx.resourceType === "FILE")) {
      ctx.resourceType = type;
    }
  };

export const FILE_HANDLERS: Readonly<Record<string, Handler>> = {
  open,
  openat: open,
  openat2: open,
  creat: open,
  chdir,
  fchdir,
  getdents,
  getdents64: getdents,
  getcwd,
  stat: stat(1),
  lstat: stat(1),
  fstat: stat(1),
  newfstatat: stat(2),
  fstatat64: stat(2),
  statx: stat(4),
};
