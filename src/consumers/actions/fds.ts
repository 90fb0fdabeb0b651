/**
 * Actions on file descriptors: an fd's use from open (or first use) to its last close, what was read,
 * written, listed and mapped through it, dup'ed numbers, and similar files named once as a group.
 */
import { CLOSE_RANGE_CLOEXEC, O_ACCMODE, O_CLOEXEC, O_CREAT, PROT_EXEC } from "../../replay/constants.ts";
import type { EnrichedRecord } from "../enriched-reader.ts";
import { Category, fdArgumentOf } from "./categories.ts";
import type { ActionCollapser } from "./collapse.ts";
import { commonDirectory, directoryOf, formatBytes, formatMode, plural } from "./describe.ts";
import {
  type ActionKind,
  extendSpan,
  type FdGroup,
  type FdUse,
  type GroupVerb,
  mergeSpan,
  type ProcessState,
  type SocketUse,
  socketOf,
  startSpan,
  updateSocket,
} from "./state.ts";

/** An fd the process opened (open, socket, accept): its use starts here. */
export function openFd(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  fd: number,
): FdUse {
  // a number reused without a close we saw (close missing from the trace): the old file is done
  release(c, state, fd);
  const flagIndex = record.call === "open" ? 1 : record.call === "openat" ? 2 : -1;
  const flags = flagIndex >= 0 ? record.args[flagIndex] : record.call === "creat" ? O_CREAT | 1 : null;
  const use: FdUse = {
    span: startSpan(record, line),
    fd,
    path: record.abs_path ?? null,
    resource: record.resource_type ?? null,
    opened: true,
    flags: typeof flags === "number" ? flags : null,
    mode: record.perm_bits ?? null,
    reads: 0,
    readBytes: 0,
    writes: 0,
    writeBytes: 0,
    listings: 0,
    execMapped: false,
    mapped: false,
    socket: null,
    refs: 1,
  };
  state.fds.set(fd, use);
  return use;
}

/** The fd a call acts on; an fd this process inherited or got from pipe/dup is tracked from its first use. */
export function fdUse(state: ProcessState, record: EnrichedRecord, line: number, fd: number): FdUse {
  const known = state.fds.get(fd);
  if (known) {
    extendSpan(known.span, record, line);
    if (!known.path && record.abs_path) known.path = record.abs_path;
    if (!known.resource && record.resource_type) known.resource = record.resource_type;
    // addresses are filled once; connect/bind/accept update them explicitly
    if (known.socket && record.net && (known.socket.remote === null || known.socket.local === null))
      updateSocket(known.socket, record);
    return known;
  }
  const use: FdUse = {
    span: startSpan(record, line),
    fd,
    path: record.abs_path ?? null,
    resource: record.resource_type ?? null,
    opened: false,
    flags: null,
    mode: null,
    reads: 0,
    readBytes: 0,
    writes: 0,
    writeBytes: 0,
    listings: 0,
    execMapped: false,
    mapped: false,
    socket: record.resource_type === "SOCKET" || record.net ? socketOf(record) : null,
    refs: 1,
  };
  state.fds.set(fd, use);
  return use;
}

/** The fd argument of a call (its first), else the record's fd. */
export function fdArgument(record: EnrichedRecord): number | null {
  const fd = record.args[0];
  if (typeof fd === "number" && fd >= 0) return fd;
  return record.fd !== null && record.fd !== undefined && record.fd >= 0 ? record.fd : null;
}

/** dup/dup2/dup3: the new number names the same open file. */
export function dup(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  const from = fdArgument(record);
  if (!ok || from === null || record.retval === null || record.retval === from) {
    c.runtime(state, record, line);
    return;
  }
  alias(c, state, fdUse(state, record, line, from), record.retval);
}

export function alias(c: ActionCollapser, state: ProcessState, use: FdUse, fd: number): void {
  if (state.fds.get(fd) === use) return;
  release(c, state, fd);
  use.refs++;
  state.fds.set(fd, use);
}

/** close_range(first, last, flags): every number in the range is closed, or marked close-on-exec. */
export function closeRange(c: ActionCollapser, state: ProcessState, record: EnrichedRecord): void {
  const [first, last, flags] = record.args;
  if (typeof first !== "number" || typeof last !== "number") return;
  const end = last < 0 ? Number.POSITIVE_INFINITY : last;
  const cloexec = typeof flags === "number" && (flags & CLOSE_RANGE_CLOEXEC) !== 0;
  const fds = [...state.fds.keys()].filter((fd) => fd >= first && fd <= end).sort((a, b) => a - b);
  for (const fd of fds) {
    if (!cloexec) release(c, state, fd);
    else {
      const use = state.fds.get(fd)!;
      use.flags = (use.flags ?? 0) | O_CLOEXEC;
    }
  }
}

/** An fd number stops pointing at its file; the file's action is complete when no number is left. */
export function release(c: ActionCollapser, state: ProcessState, fd: number): void {
  const use = state.fds.get(fd);
  if (!use) return;
  state.fds.delete(fd);
  use.refs--;
  if (use.refs <= 0) emitFd(c, state, use);
}

/** A call on an open fd: counted into that fd's use (read, written, listed), or its close. */
export function fdCall(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
  category: Category,
): void {
  const fd = fdArgument(record);
  if (fd === null || (!ok && !state.fds.has(fd))) {
    c.runtime(state, record, line);
    return;
  }
  const use = fdUse(state, record, line, fd);
  const bytes = record.byte_count ?? (ok ? record.retval! : 0);
  if (category === Category.Read && ok) {
    use.reads++;
    use.readBytes += bytes;
  } else if (category === Category.Write && ok) {
    use.writes++;
    use.writeBytes += bytes;
  } else if (category === Category.Listing && ok) {
    use.listings++;
  } else if (category === Category.Close) {
    release(c, state, fd);
  }
}

/** sendfile(out, in, …), tee(in, out, …), copy_file_range and splice(in, off, out, …): a read and a write. */
export function copy(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  const [a, b, third] = record.args;
  const call = record.call;
  const from = call === "sendfile" ? b : a;
  const to = call === "sendfile" ? a : call === "tee" ? b : third;
  if (!ok || typeof from !== "number" || typeof to !== "number" || from < 0 || to < 0) {
    c.runtime(state, record, line);
    return;
  }
  const bytes = record.byte_count ?? record.retval!;
  const source = fdUse(state, record, line, from);
  source.reads++;
  source.readBytes += bytes;
  // the record is counted on the source; the destination only gets the bytes and the time
  let sink = state.fds.get(to);
  if (!sink) {
    sink = fdUse(state, { ...record, abs_path: null, resource_type: null, net: null }, line, to);
    sink.span.records--;
  } else if (sink !== source) {
    sink.span.end_ts = Math.max(sink.span.end_ts, record.ts);
    sink.span.last_line = line;
  }
  sink.writes++;
  sink.writeBytes += bytes;
}

export function emitFd(c: ActionCollapser, state: ProcessState, use: FdUse): void {
  // an inherited fd that was only closed (or dup'ed over) is plumbing, not an action
  const idle = use.reads === 0 && use.writes === 0 && use.listings === 0 && !use.mapped && !use.execMapped;
  if (!use.opened && idle && !use.socket?.connected && !use.socket?.listening) {
    c.foldIntoRuntime(state, use.span);
    return;
  }
  const { kind, summary } = describeFdUse(use);
  const target = use.socket?.remote ?? use.socket?.local ?? use.path;
  const verb = groupVerb(use, kind);
  if (verb === null || use.path === null) {
    c.action(state, kind, summary, target, use.span);
    return;
  }
  const directory = directoryOf(use.path);
  const group = state.group;
  if (group && group.verb === verb) {
    const common = commonDirectory(group.directory, directory);
    if (depth(common) >= Math.max(1, Math.min(depth(group.directory), depth(directory)) - 1)) {
      group.directory = common;
      group.names.push(use.path);
      group.files++;
      group.reads += use.reads;
      group.bytes += use.readBytes;
      mergeSpan(group.span, use.span);
      return;
    }
  }
  flushGroup(c, state);
  state.group = {
    span: { ...use.span, risk: use.span.risk ? new Set(use.span.risk) : null },
    verb,
    directory,
    names: [use.path],
    files: 1,
    reads: use.reads,
    bytes: use.readBytes,
    single: { kind, summary, target },
  };
}

export function flushGroup(c: ActionCollapser, state: ProcessState): void {
  const group = state.group;
  if (!group) return;
  state.group = null;
  const summary = group.files === 1 ? group.single.summary : describeGroup(group);
  const target = group.files === 1 ? group.single.target : group.directory;
  c.emitAction(state, group.single.kind, summary, target, group.span);
}

/** close_range: the record is plumbing; the numbers it closes end their files' actions. */
export function closeRangeCall(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  c.runtime(state, record, line);
  if (ok) closeRange(c, state, record);
}

/** mmap of an open fd is part of that fd's action (a library mapped executable); anonymous memory is plumbing. */
export function mmap(c: ActionCollapser, state: ProcessState, record: EnrichedRecord, line: number): void {
  const fd = fdArgumentOf(record);
  if (fd !== null && fd >= 0 && state.fds.has(fd)) {
    const use = state.fds.get(fd)!;
    extendSpan(use.span, record, line);
    const prot = record.args[2];
    if (typeof prot === "number" && (prot & PROT_EXEC) !== 0) use.execMapped = true;
    else use.mapped = true;
  } else c.runtime(state, record, line);
}

/** Number of components of an absolute directory ("/" → 0, "/usr/lib" → 2). */
function depth(directory: string): number {
  if (directory === "/") return 0;
  let count = 0;
  for (let i = 0; i < directory.length; i++) if (directory.charCodeAt(i) === 47) count++;
  return count;
}

function groupVerb(use: FdUse, kind: ActionKind): GroupVerb | null {
  if (kind === "library") return "loaded";
  if (kind === "file-read") return "read";
  if (kind !== "file-open") return null;
  return use.mapped ? "mapped" : "opened";
}

function describeGroup(group: FdGroup): string {
  const cut = group.directory === "/" ? 1 : group.directory.length + 1;
  const shown = group.names.slice(0, 4).map((name) => name.slice(cut));
  const names = `${shown.join(", ")}${group.names.length > 4 ? ", …" : ""}`;
  const files = plural(group.files, "file");
  switch (group.verb) {
    case "loaded":
      return `loaded ${plural(group.files, "library", "libraries")} from ${group.directory} (${names})`;
    case "mapped":
      return `mapped ${files} from ${group.directory} into memory (${names})`;
    case "read":
      return `read ${files} from ${group.directory} (${names}; ${plural(group.reads, "read")}, ${formatBytes(group.bytes)})`;
    default:
      return `opened ${files} in ${group.directory} (${names})`;
  }
}

function transferred(sent: number, received: number): string {
  const parts: string[] = [];
  if (sent > 0) parts.push(`sent ${formatBytes(sent)}`);
  if (received > 0) parts.push(`received ${formatBytes(received)}`);
  return parts.length ? `, ${parts.join(", ")}` : "";
}

/** The standard streams, by number. */
const STDIO_NAMES = ["stdin", "stdout", "stderr"];

/** "127.0.0.1:8000 over TCP", "unix socket /run/x" — transport named only where it says something. */
function endpoint(socket: SocketUse, address: string | null, fallback: string): string {
  if (socket.family === "AF_UNIX") return `unix socket ${address ?? "(unnamed)"}`;
  const over =
    socket.protocol && /^(TCP|UDP|SCTP|ICMP|ICMPV6|RAW)$/i.test(socket.protocol)
      ? ` over ${socket.protocol}`
      : "";
  return `${address ?? fallback}${over}`;
}

/** The one-line name of what an fd was used for. */
export function describeFdUse(use: FdUse): { kind: ActionKind; summary: string } {
  const socket = use.socket;
  // the standard streams a process inherited: named by role, whatever is behind them
  if (!use.opened && use.fd <= 2 && !socket?.connected && !socket?.listening) {
    const stream = STDIO_NAMES[use.fd]!;
    const parts: string[] = [];
    if (use.readBytes > 0 || use.reads > 0) parts.push(`read ${formatBytes(use.readBytes)} from ${stream}`);
    if (use.writeBytes > 0 || use.writes > 0) parts.push(`wrote ${formatBytes(use.writeBytes)} to ${stream}`);
    return {
      kind: use.writes > 0 ? "file-write" : "file-read",
      summary: parts.join(", ") || `used ${stream}`,
    };
  }
  if (socket) {
    const io = transferred(use.writeBytes, use.readBytes);
    if (socket.listening)
      return {
        kind: "net-listen",
        summary: `listened on ${endpoint(socket, socket.local, "a socket")}, accepted ${plural(socket.accepted, "connection")}`,
      };
    if (socket.acceptedFrom !== null)
      return {
        kind: "net-accept",
        summary: `served a connection from ${endpoint(socket, socket.acceptedFrom, "a client")}${socket.local ? ` on ${socket.local}` : ""}${io}`,
      };
    if (socket.connectError)
      return {
        kind: "net-connect",
        summary: `failed to connect to ${endpoint(socket, socket.remote, "a peer")} (${socket.connectError})`,
      };
    if (socket.connected)
      return {
        kind: "net-connect",
        summary: `connected to ${endpoint(socket, socket.remote, "a peer")}${io}`,
      };
    const family = socket.family === "AF_UNIX" ? "a unix" : socket.family ? `an ${socket.family}` : "a";
    return { kind: "net-socket", summary: `used ${family} socket${io}` };
  }
  const path = use.path ?? `fd ${use.fd}`;
  if (use.resource === "PIPE")
    return { kind: "pipe", summary: `used a pipe${transferred(use.writeBytes, use.readBytes)}` };
  if (use.execMapped) return { kind: "library", summary: `loaded ${path}` };
  if (use.listings > 0 || use.resource === "DIR")
    return { kind: "dir-list", summary: `listed directory ${path} (${plural(use.listings, "read")})` };
  const creating = use.flags !== null && (use.flags & O_CREAT) !== 0;
  const created = creating ? `created${use.mode !== null ? `, mode ${formatMode(use.mode)}` : ""}` : "";
  if (use.writes > 0) {
    const details = [created, `${plural(use.writes, "write")}, ${formatBytes(use.writeBytes)}`].filter(
      Boolean,
    );
    const verb = use.reads > 0 ? "read and wrote" : "wrote";
    return { kind: "file-write", summary: `${verb} ${path} (${details.join(", ")})` };
  }
  if (use.reads > 0)
    return {
      kind: "file-read",
      summary: `read ${path} (${plural(use.reads, "read")}, ${formatBytes(use.readBytes)})`,
    };
  if (use.mapped) return { kind: "file-open", summary: `mapped ${path} into memory` };
  if (creating)
    return {
      kind: "file-write",
      summary: `created ${path}${use.mode !== null ? ` (mode ${formatMode(use.mode)})` : ""}`,
    };
  const forWriting = use.flags !== null && (use.flags & O_ACCMODE) !== 0 ? " for writing" : "";
  return { kind: "file-open", summary: `opened ${path}${forWriting}` };
}
