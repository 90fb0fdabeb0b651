/** The fd table's own calls: close, close_range, dup*, fcntl, pipes, memfds and the event-like fds. */
import {
  annotationOf,
  argAnnotation,
  argValueAt,
  netFromAnnotation,
  parseNumber,
  stringArg,
} from "../args.ts";
import {
  CLOSE_RANGE_CLOEXEC,
  FD_CLOEXEC,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_SETFD,
  O_CLOEXEC,
} from "../constants.ts";
import { type ArgList, splitArgs } from "../scan.ts";
import { callSpec } from "../syscalls.ts";
import {
  type FdEntry,
  type FdTable,
  fileFromAnnotation,
  type OpenFile,
  type ProcessTable,
} from "../tables.ts";
import { type CallContext, type EntryFd, type Handler, int32 } from "./context.ts";
import { mergeNet } from "./net.ts";

/** Applies an fd annotation (the truth with -y/-yy) to the table; returns the entry. */
export function learnFd(files: FdTable, fd: number, annotation: string): FdEntry {
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

/**
 * The first half of a call: its fd argument is resolved now, while the number still means what the
 * caller meant. close frees the number as it begins, so another thread can get it before close returns.
 */
export function enterCall(table: ProcessTable, tid: number, call: string, args: ArgList): EntryFd | null {
  const at = callSpec(call).fd;
  if (at === undefined || args.length <= at) return null;
  const fd = int32(argValueAt(args.src, args.start(at), args.end(at)));
  return enterFd(table, tid, call, fd, fd === null || fd < 0 ? null : argAnnotation(args, at));
}

/** The fd a call acts on, resolved as the call begins (its annotation, when printed, is the truth for it). */
export function enterFd(
  table: ProcessTable,
  tid: number,
  call: string,
  fd: number | null,
  annotation: string | null,
): EntryFd | null {
  if (fd === null || fd < 0) return null;
  const files = table.task(tid).files;
  const entry = annotation !== null ? learnFd(files, fd, annotation) : files.fds.get(fd);
  if (call === "close") files.fds.delete(fd);
  return { fd, entry };
}

/** The fds listed in `[3<pipe:[9608]>, 4<pipe:[9608]>]` or `[3, 4]`. */
function fdPair(text: string | undefined): [number, string | null][] {
  if (text === undefined || !text.startsWith("[") || !text.endsWith("]")) return [];
  const list = splitArgs(text.slice(1, -1));
  const pair: [number, string | null][] = [];
  for (let i = 0; i < list.length; i++) {
    const a = list.at(i)!;
    const lt = a.indexOf("<");
    pair.push([parseNumber(lt > 0 ? a.slice(0, lt) : a), annotationOf(a)]);
  }
  return pair;
}

/** pipe and socketpair: both fds of the pair, each made from its annotation (or `make`'s guess). */
export function openPair(
  ctx: CallContext,
  pairArg: string | undefined,
  cloexec: boolean,
  make: (annotation: string | null) => OpenFile,
): void {
  const pair = fdPair(pairArg);
  for (const [n, a] of pair) {
    if (Number.isNaN(n)) continue;
    ctx.files.fds.set(n, { file: make(a), cloexec });
  }
  if (pair[0]) ctx.fd = pair[0][0];
}

const close: Handler = (ctx) => {
  const fd = ctx.fd;
  // a close read in two halves freed its fd when it began (enterCall)
  if (!ctx.c.entry && fd !== null && fd >= 0 && (ctx.ok || ctx.errno === "EINTR")) ctx.files.fds.delete(fd);
};

const closeRange: Handler = (ctx) => {
  const words = ctx.words;
  const first = words[0];
  const last = words[1] === null || words[1] === undefined ? null : words[1] < 0 ? 0xffffffff : words[1];
  const flags = words[2] ?? 0;
  if (ctx.ok && first !== null && first !== undefined && last !== null) {
    for (const [n, e] of ctx.files.fds) {
      if (n < first || n > last) continue;
      if ((flags & CLOSE_RANGE_CLOEXEC) !== 0) e.cloexec = true;
      else ctx.files.fds.delete(n);
    }
  }
};

const dup: Handler = (ctx) => {
  if (!ctx.ok) return;
  const retval = ctx.retval!;
  const files = ctx.files;
  const cloexec = ctx.call === "dup3" && ((ctx.words[2] ?? 0) & O_CLOEXEC) !== 0;
  // the target's old open file is replaced, never edited: other fds may still share it
  if (ctx.fdEntry) files.fds.set(retval, { file: ctx.fdEntry.file, cloexec });
  else if (ctx.retAnnotation !== null)
    files.fds.set(retval, { file: fileFromAnnotation(ctx.retAnnotation), cloexec });
  else files.fds.delete(retval);
  const now = files.fds.get(retval);
  ctx.resourceType = now?.file.type ?? null;
  ctx.net = now?.file.net ?? null;
  if (now?.file.path?.startsWith("/")) ctx.absPath = now.file.path;
};

const fcntl: Handler = (ctx) => {
  const cmd = ctx.words[1];
  if (ctx.ok && (cmd === F_DUPFD || cmd === F_DUPFD_CLOEXEC)) {
    const retval = ctx.retval!;
    if (ctx.fdEntry) ctx.files.fds.set(retval, { file: ctx.fdEntry.file, cloexec: cmd === F_DUPFD_CLOEXEC });
    else ctx.files.fds.delete(retval);
    ctx.fd = retval;
    ctx.operation = "DUP";
  } else if (ctx.ok && cmd === F_SETFD && ctx.fdEntry) {
    ctx.fdEntry.cloexec = ((ctx.words[2] ?? 0) & FD_CLOEXEC) !== 0;
  }
};

const pipe: Handler = (ctx) => {
  const flags = ctx.call === "pipe2" ? (ctx.words[1] ?? 0) : 0;
  if (ctx.ok)
    openPair(ctx, ctx.args.at(0), (flags & O_CLOEXEC) !== 0, (a) =>
      a !== null ? fileFromAnnotation(a) : { path: null, type: "PIPE", net: null },
    );
  ctx.resourceType = "PIPE";
};

const memfd: Handler = (ctx) => {
  ctx.resourceType = "SHM";
  if (!ctx.ok) return;
  const name = stringArg(ctx.args.at(0));
  const file: OpenFile =
    ctx.retAnnotation !== null
      ? fileFromAnnotation(ctx.retAnnotation)
      : { path: name === null ? null : `/memfd:${name}`, type: "SHM", net: null };
  file.type = "SHM";
  ctx.files.fds.set(ctx.retval!, { file, cloexec: ((ctx.words[1] ?? 0) & 1) !== 0 });
  ctx.absPath = file.path;
};

/** eventfd, epoll, timerfd, signalfd, inotify, pidfd, …: an fd on no file. */
const eventLike: Handler = (ctx) => {
  if (!ctx.ok) return;
  const call = ctx.call;
  const file: OpenFile =
    ctx.retAnnotation !== null
      ? fileFromAnnotation(ctx.retAnnotation)
      : { path: null, type: "EVENT", net: null };
  if (call === "userfaultfd" || call === "perf_event_open" || call === "io_uring_setup") {
    if (ctx.retAnnotation === null) file.type = "ANON";
  }
  const flagWord = ctx.words[call === "timerfd_create" || call === "signalfd4" ? 1 : 0] ?? 0;
  ctx.files.fds.set(ctx.retval!, {
    file,
    cloexec: call.startsWith("epoll") || call === "eventfd2" ? (flagWord & O_CLOEXEC) !== 0 : false,
  });
  ctx.resourceType = file.type;
};

export const FD_HANDLERS: Readonly<Record<string, Handler>> = {
  close,
  close_range: closeRange,
  dup,
  dup2: dup,
  dup3: dup,
  fcntl,
  pipe,
  pipe2: pipe,
  memfd_create: memfd,
  memfd_secret: memfd,
  eventfd: eventLike,
  eventfd2: eventLike,
  epoll_create: eventLike,
  epoll_create1: eventLike,
  timerfd_create: eventLike,
  signalfd4: eventLike,
  inotify_init: eventLike,
  inotify_init1: eventLike,
  fanotify_init: eventLike,
  pidfd_open: eventLike,
  userfaultfd: eventLike,
  perf_event_open: eventLike,
  io_uring_setup: eventLike,
};
