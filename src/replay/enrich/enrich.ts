/**
 * One complete system call + the tables → one EnhancedEvent, updating the tables as the call did. The steps
 * every call shares (its fd, its path against the dirfd or cwd, mode, byte count) are here; what a family
 * of calls does beyond them is in its handler table (files, fds, sockets, processes).
 */
import { argAnnotation, argWords, stringArg } from "../args.ts";
import { AT_EMPTY_PATH, AT_FDCWD } from "../constants.ts";
import { mayHaveRisk, riskTags } from "../risk.ts";
import type { EnhancedEvent } from "../schema.ts";
import { callSpec } from "../syscalls.ts";
import { classifyPath, fileFromAnnotation, joinPath, type ProcessTable } from "../tables.ts";
import { type CallContext, type CompleteCall, type Handler, int32 } from "./context.ts";
import { FD_HANDLERS, learnFd } from "./fds.ts";
import { FILE_HANDLERS } from "./files.ts";
import { cloneWords, PROCESS_HANDLERS } from "./processes.ts";
import { SOCKET_HANDLERS } from "./sockets.ts";

export type { CompleteCall, EntryFd } from "./context.ts";
export { enterCall, enterFd } from "./fds.ts";
export { cloneFlags, isCloneCall } from "./processes.ts";

/** Each call's handler beyond the common steps, by name. */
const HANDLERS: ReadonlyMap<string, Handler> = new Map(
  Object.entries({ ...FILE_HANDLERS, ...FD_HANDLERS, ...SOCKET_HANDLERS, ...PROCESS_HANDLERS }),
);

export function enrichCall(table: ProcessTable, c: CompleteCall): EnhancedEvent {
  const task = table.task(c.tid);
  const call = c.call;
  const spec = c.spec ?? callSpec(call);
  const args = c.args;
  const words = c.words ?? (call === "clone" ? cloneWords(args) : argWords(args, table.flagSets));
  const retval = c.retval;
  const ok = retval !== null && retval >= 0;
  const ctx: CallContext = {
    table,
    task,
    files: task.files,
    c,
    call,
    spec,
    args,
    words,
    retval,
    errno: c.errno,
    retAnnotation: c.retAnnotation,
    ok,
    fd: -1,
    fdEntry: undefined,
    absPath: null,
    destPath: null,
    resourceType: null,
    net: null,
    perm: null,
    openFlags: null,
    byteCount: null,
    socketFamily: null,
    socketType: null,
    targetIds: null,
    kind: spec.kind,
    operation: spec.operation,
  };
  resolveFd(ctx);
  resolvePaths(ctx);
  ctx.resourceType = ctx.fdEntry?.file.type ?? null;
  ctx.net = ctx.fdEntry?.file.net ?? null;
  if (spec.mode !== undefined) {
    const m = words[spec.mode];
    if (m !== null && m !== undefined) ctx.perm = m & 0o7777;
  }
  if (spec.count !== undefined) ctx.byteCount = ok ? retval : (words[spec.count] ?? null);
  else if (ctx.operation === "READ" || ctx.operation === "WRITE") ctx.byteCount = ok ? retval : null;
  if (spec.returnsFd) ctx.fd = ok ? retval : -1;

  HANDLERS.get(call)?.(ctx);

  if (ctx.resourceType === null && ctx.absPath !== null && spec.path !== undefined)
    ctx.resourceType = classifyPath(ctx.absPath);
  adjustKind(ctx);
  return record(ctx);
}

/** The fd the call acts on; what -y/-yy printed for it is the truth for that fd. */
function resolveFd(ctx: CallContext): void {
  const { c, spec, args } = ctx;
  if (c.entry) {
    ctx.fd = c.entry.fd;
    ctx.fdEntry = c.entry.entry;
  } else if (spec.fd !== undefined && args.length > spec.fd) {
    const fd = int32(ctx.words[spec.fd]);
    ctx.fd = fd;
    const a = argAnnotation(args, spec.fd);
    if (fd !== null && fd >= 0) ctx.fdEntry = a !== null ? learnFd(ctx.files, fd, a) : ctx.files.fds.get(fd);
  } else if (spec.fd !== undefined) {
    ctx.fd = null;
  }
}

/** The path argument resolved against its dirfd or the cwd, and a second path (rename's destination). */
function resolvePaths(ctx: CallContext): void {
  const { spec, args, words, task, files } = ctx;
  let dirfd: number | null = AT_FDCWD;
  if (spec.dirfd !== undefined) {
    dirfd = int32(words[spec.dirfd]);
    const a = argAnnotation(args, spec.dirfd);
    if (a !== null) {
      if (dirfd === AT_FDCWD) task.fs.cwd = fileFromAnnotation(a).path;
      else if (dirfd !== null && dirfd >= 0) learnFd(files, dirfd, a);
    }
  }
  if (spec.path !== undefined) {
    const p = stringArg(args.at(spec.path));
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
      ctx.absPath = p === "" && !emptyPath && ctx.call !== "execveat" ? null : joinPath(base, p);
      if (p === "" && dirfd !== null && dirfd >= 0) ctx.fdEntry = files.fds.get(dirfd);
    }
  }
  const fdPath = ctx.fdEntry?.file.path;
  if (ctx.absPath === null && fdPath?.startsWith("/")) ctx.absPath = fdPath;
  if (spec.path2 !== undefined) {
    const p = stringArg(args.at(spec.path2));
    const d = spec.dirfd2 === undefined ? AT_FDCWD : int32(words[spec.dirfd2]);
    const base = d === AT_FDCWD ? task.fs.cwd : d === null ? null : (files.fds.get(d)?.file.path ?? null);
    if (p !== null && p !== "") ctx.destPath = joinPath(base, p);
  }
}

/** Reads and writes on a socket are network traffic; on a pipe, talk between processes. */
function adjustKind(ctx: CallContext): void {
  if (!ctx.fdEntry) return;
  const kind = ctx.kind;
  if (ctx.resourceType === "SOCKET") {
    if (kind === "FileRead") ctx.kind = "NetReceive";
    else if (kind === "FileWrite") ctx.kind = "NetSend";
  } else if (ctx.resourceType === "PIPE" && (kind === "FileRead" || kind === "FileWrite")) {
    ctx.kind = "Ipc";
  }
}

function record(ctx: CallContext): EnhancedEvent {
  const { task, c, call, fdEntry } = ctx;
  const tags = !mayHaveRisk(call, ctx.openFlags)
    ? []
    : riskTags({
        call,
        words: ctx.words,
        retval: ctx.retval,
        absPath: ctx.absPath,
        destPath: ctx.destPath,
        fdType: fdEntry?.file.type ?? null,
        fdPath: fdEntry?.file.path ?? null,
        openFlags: ctx.openFlags,
        targetIds: ctx.targetIds,
        socketFamily: ctx.socketFamily,
        socketType: ctx.socketType,
      });
  const proc = task.proc;
  return {
    ts: c.ts,
    pid: proc.pid,
    tid: task.tid,
    ppid: proc.ppid,
    call,
    args: ctx.words,
    retval: ctx.retval,
    errno: ctx.errno,
    raw_line: c.raw,
    raw_hash: null,
    exe_path: proc.exe,
    cwd: task.fs.cwd,
    uid: proc.uid,
    gid: proc.gid,
    euid: proc.euid,
    egid: proc.egid,
    caps: proc.caps,
    fd: ctx.fd,
    abs_path: ctx.absPath,
    resource_type: ctx.resourceType,
    operation: ctx.operation,
    perm_bits: ctx.perm,
    byte_count: ctx.byteCount,
    net: ctx.net,
    latency_us: c.latency,
    risk_tags: tags,
    high_level_kind: ctx.kind,
  };
}
