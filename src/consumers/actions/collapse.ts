import type { EnrichedRecord } from "../enriched-reader.ts";
import {
  commonDirectory,
  directoryOf,
  execArgv,
  formatBytes,
  formatCommand,
  formatMode,
  plural,
  signalName,
} from "./describe.ts";
import { CLOSE_RANGE_CLOEXEC, O_ACCMODE, O_CLOEXEC, O_CREAT, PROT_EXEC } from "../../replay/constants.ts";
import { callSpec } from "../../replay/syscalls.ts";

export type ActionKind =
  | "exec"
  | "spawn"
  | "fork"
  | "thread"
  | "exit"
  | "signal"
  | "file-read"
  | "file-write"
  | "file-open"
  | "library"
  | "dir-list"
  | "lookup"
  | "file-change"
  | "net-connect"
  | "net-listen"
  | "net-accept"
  | "net-socket"
  | "pipe"
  | "runtime";

/** What a person would name: a run of correlated calls of one process, with where it came from. */
export interface Action {
  pid: number;
  exe_path: string | null;
  kind: ActionKind;
  summary: string;
  /** the path, address or command the action is about */
  target: string | null;
  start_ts: number;
  end_ts: number;
  /** 1-based lines of the enriched.jsonl the action's records came from */
  first_line: number;
  last_line: number;
  records: number;
  risk_tags: string[];
}

/** Time, line range, record count and risk tags of a run of records. */
interface Span {
  start_ts: number;
  end_ts: number;
  first_line: number;
  last_line: number;
  records: number;
  risk: Set<string> | null;
}

function startSpan(record: EnrichedRecord, line: number): Span {
  const span: Span = {
    start_ts: record.ts,
    end_ts: record.ts,
    first_line: line,
    last_line: line,
    records: 0,
    risk: null,
  };
  extendSpan(span, record, line);
  return span;
}

function extendSpan(span: Span, record: EnrichedRecord, line: number): void {
  if (span.records > 0) {
    if (record.ts > span.end_ts) span.end_ts = record.ts;
    span.last_line = line;
  }
  span.records++;
  const tags = record.risk_tags;
  if (tags && tags.length > 0) {
    span.risk ??= new Set();
    for (const tag of tags) span.risk.add(tag);
  }
}

function mergeSpan(into: Span, from: Span): void {
  into.start_ts = Math.min(into.start_ts, from.start_ts);
  into.end_ts = Math.max(into.end_ts, from.end_ts);
  into.first_line = Math.min(into.first_line, from.first_line);
  into.last_line = Math.max(into.last_line, from.last_line);
  into.records += from.records;
  if (from.risk) {
    into.risk ??= new Set();
    for (const tag of from.risk) into.risk.add(tag);
  }
}

interface SocketUse {
  family: string | null;
  protocol: string | null;
  remote: string | null;
  local: string | null;
  connected: boolean;
  connectError: string | null;
  listening: boolean;
  accepted: number;
  acceptedFrom: string | null;
}

/** Everything one open file descriptor has been used for since it was opened. */
interface FdUse {
  span: Span;
  fd: number;
  path: string | null;
  resource: string | null;
  opened: boolean;
  flags: number | null;
  mode: number | null;
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  listings: number;
  execMapped: boolean;
  mapped: boolean;
  socket: SocketUse | null;
  /** how many fd numbers of the process point at it (dup, dup2, fcntl F_DUPFD) */
  refs: number;
}

/** Consecutive similar file actions of one process (libraries, locale files), named once. */
interface FdGroup {
  span: Span;
  verb: GroupVerb;
  directory: string;
  names: string[];
  files: number;
  reads: number;
  bytes: number;
  /** what the first file alone would be called */
  single: { kind: ActionKind; summary: string; target: string | null };
}

type GroupVerb = "loaded" | "mapped" | "read" | "opened";

/** Consecutive path look-ups (stat, access, failed opens and execs) of one process. */
interface LookupRun {
  span: Span;
  paths: number;
  missing: number;
  first: string | null;
  directory: string | null;
}

/** Calls that are the program's plumbing (memory, signals, futexes, …), counted per name. */
interface RuntimeRun {
  span: Span;
  calls: Map<string, number>;
}

interface ProcessState {
  pid: number;
  exe: string | null;
  fds: Map<number, FdUse>;
  lookup: LookupRun | null;
  runtime: RuntimeRun | null;
  group: FdGroup | null;
}

interface PendingSpawn {
  parent: number;
  parentExe: string | null;
  span: Span;
}

enum Category {
  Open,
  Socket,
  Accept,
  Connect,
  Bind,
  Listen,
  Read,
  Write,
  Copy,
  Listing,
  FdMetadata,
  Mmap,
  Close,
  CloseRange,
  Dup,
  Lookup,
  Exec,
  Clone,
  Exit,
  Signal,
  Change,
  Runtime,
}

const operationOf = (record: EnrichedRecord): string | null =>
  record.operation ?? callSpec(record.call).operation;

/** The argument holding the fd a call acts on (mmap's fifth), as the replay's table has it. */
function fdArgumentOf(record: EnrichedRecord): number | null {
  const at = callSpec(record.call).fd;
  const fd = at === undefined ? null : record.args[at];
  return typeof fd === "number" ? fd : null;
}

/**
 * The action category of a record, from its `operation` and `high_level_kind` — the replay's one
 * description of each call (src/replay/syscalls.ts), which also fills them in for a record that lacks them.
 */
function categoryOf(record: EnrichedRecord): Category {
  const spec = callSpec(record.call);
  const kind = record.high_level_kind ?? spec.kind;
  // the call acts on an fd it is given (fstat, read), not on a path (stat) or its own memory (getrandom)
  const onFd = spec.fd !== undefined;
  switch (operationOf(record)) {
    case "OPEN":
      return Category.Open;
    case "CREATE":
      // a socket, a file opened (creat, O_CREAT), a name made (mkdir, link); pipes and the like are plumbing
      if (kind === "NetSocket") return Category.Socket;
      if (kind !== "FileRead" && kind !== "FileWrite") return Category.Runtime;
      return spec.returnsFd ? Category.Open : Category.Change;
    case "ACCEPT":
      return Category.Accept;
    case "CONNECT":
      return Category.Connect;
    case "BIND":
      return Category.Bind;
    case "LISTEN":
      return Category.Listen;
    case "READ":
      if (!onFd) return Category.Runtime;
      // getdents: the replay records every read of a directory as one
      return record.resource_type === "DIR" ? Category.Listing : Category.Read;
    case "WRITE":
      return onFd ? Category.Write : Category.Runtime;
    case "COPY":
      return Category.Copy;
    case "STAT":
      return onFd ? Category.FdMetadata : Category.Lookup;
    case "FCNTL":
    case "IOCTL":
    case "SEEK":
    case "LOCK":
    case "FLUSH":
    case "ALLOCATE":
      return Category.FdMetadata;
    case "TRUNCATE":
      return onFd ? Category.FdMetadata : Category.Change;
    case "MMAP":
      return Category.Mmap;
    case "CLOSE":
      return onFd ? Category.Close : Category.CloseRange;
    case "DUP":
      return Category.Dup;
    case "EXEC":
      return Category.Exec;
    case "CLONE":
      return Category.Clone;
    case "EXIT":
      return Category.Exit;
    case "SIGNAL":
      return Category.Signal;
    case "DELETE":
    case "RENAME":
    case "CHMOD":
    case "CHOWN":
      return Category.Change;
    default:
      return Category.Runtime;
  }
}

const FAMILY_NAMES: Record<number, string> = { 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK" };

function formatAddress(addr: string | null | undefined, port: number | null | undefined): string | null {
  if (!addr) return null;
  if (port === null || port === undefined) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function sortedTags(span: Span): string[] {
  return span.risk ? [...span.risk].sort() : [];
}

/**
 * Collapses a stream of EnhancedEvents into actions, in the order they complete. State is
 * per live process and open fd, so memory follows what is open at once, not the trace length.
 */
export class ActionCollapser {
  private readonly processes = new Map<number, ProcessState>();
  private readonly spawns = new Map<number, PendingSpawn>();
  private readonly emit: (action: Action) => void;

  constructor(emit: (action: Action) => void) {
    this.emit = emit;
  }

  push(record: EnrichedRecord, line: number): void {
    const state = this.process(record);
    const category = categoryOf(record);
    const ok = record.retval !== null && record.retval >= 0;
    switch (category) {
      case Category.Open:
        if (ok) {
          this.openFd(state, record, line, record.retval!);
        } else this.lookup(state, record, line, false);
        return;
      case Category.Socket:
        if (ok) {
          const use = this.openFd(state, record, line, record.retval!);
          use.socket = this.socketOf(record);
        } else this.runtime(state, record, line);
        return;
      case Category.Accept:
        this.accept(state, record, line, ok);
        return;
      case Category.Connect:
      case Category.Bind:
      case Category.Listen:
        this.socketCall(state, record, line, category, ok);
        return;
      case Category.Read:
      case Category.Write:
      case Category.Listing:
      case Category.FdMetadata:
      case Category.Close:
        this.fdCall(state, record, line, category, ok);
        return;
      case Category.Copy:
        this.copy(state, record, line, ok);
        return;
      case Category.CloseRange:
        this.runtime(state, record, line);
        if (ok) this.closeRange(state, record);
        return;
      case Category.Dup:
        this.dup(state, record, line, ok);
        return;
      case Category.Mmap: {
        const fd = fdArgumentOf(record);
        if (fd !== null && fd >= 0 && state.fds.has(fd)) {
          const use = state.fds.get(fd)!;
          extendSpan(use.span, record, line);
          const prot = record.args[2];
          if (typeof prot === "number" && (prot & PROT_EXEC) !== 0) use.execMapped = true;
          else use.mapped = true;
        } else this.runtime(state, record, line);
        return;
      }
      case Category.Lookup: {
        // fstat through newfstatat/statx(fd, "", AT_EMPTY_PATH) is about the open fd, not a path
        const fd = record.args[0];
        if (typeof fd === "number" && state.fds.has(fd) && record.raw_line.includes("AT_EMPTY_PATH"))
          this.fdCall(state, record, line, Category.FdMetadata, ok);
        else this.lookup(state, record, line, ok);
        return;
      }
      case Category.Exec:
        this.exec(state, record, line, ok);
        return;
      case Category.Clone:
        this.clone(state, record, line, ok);
        return;
      case Category.Exit:
        this.exit(state, record, line);
        return;
      case Category.Signal:
        this.signal(state, record, line);
        return;
      case Category.Change:
        this.change(state, record, line, ok);
        return;
      default:
        // a flagged call (setuid, ptrace, …) is named on its own, never folded into the plumbing
        if (record.risk_tags && record.risk_tags.length > 0) {
          const failed = ok || record.retval === null ? "" : ` (failed: ${record.errno ?? "error"})`;
          this.action(
            state,
            "runtime",
            `called ${record.call}${failed}`,
            record.abs_path ?? null,
            startSpan(record, line),
          );
        } else this.runtime(state, record, line);
    }
  }

  /** Emits what is still open at the end of the trace: processes by pid, fds by number. */
  finish(): void {
    const pids = [...this.processes.keys()].sort((a, b) => a - b);
    for (const pid of pids) this.flushProcess(this.processes.get(pid)!);
    this.processes.clear();
    const children = [...this.spawns.keys()].sort((a, b) => a - b);
    for (const child of children) this.emitFork(child, this.spawns.get(child)!);
    this.spawns.clear();
  }

  private process(record: EnrichedRecord): ProcessState {
    let state = this.processes.get(record.pid);
    if (!state) {
      state = { pid: record.pid, exe: null, fds: new Map(), lookup: null, runtime: null, group: null };
      this.processes.set(record.pid, state);
    }
    if (record.exe_path) state.exe = record.exe_path;
    return state;
  }

  private action(
    state: ProcessState,
    kind: ActionKind,
    summary: string,
    target: string | null,
    span: Span,
  ): void {
    this.flushGroup(state);
    this.emitAction(state, kind, summary, target, span);
  }

  private emitAction(
    state: ProcessState,
    kind: ActionKind,
    summary: string,
    target: string | null,
    span: Span,
  ): void {
    this.emit({
      pid: state.pid,
      exe_path: state.exe,
      kind,
      summary,
      target,
      start_ts: span.start_ts,
      end_ts: span.end_ts,
      first_line: span.first_line,
      last_line: span.last_line,
      records: span.records,
      risk_tags: sortedTags(span),
    });
  }

  private openFd(state: ProcessState, record: EnrichedRecord, line: number, fd: number): FdUse {
    // a number reused without a close we saw (close missing from the trace): the old file is done
    this.release(state, fd);
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
  private fdUse(state: ProcessState, record: EnrichedRecord, line: number, fd: number): FdUse {
    const known = state.fds.get(fd);
    if (known) {
      extendSpan(known.span, record, line);
      if (!known.path && record.abs_path) known.path = record.abs_path;
      if (!known.resource && record.resource_type) known.resource = record.resource_type;
      // addresses are filled once; connect/bind/accept update them explicitly
      if (known.socket && record.net && (known.socket.remote === null || known.socket.local === null))
        this.updateSocket(known.socket, record);
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
      socket: record.resource_type === "SOCKET" || record.net ? this.socketOf(record) : null,
      refs: 1,
    };
    state.fds.set(fd, use);
    return use;
  }

  private socketOf(record: EnrichedRecord): SocketUse {
    const domain = record.call === "socket" ? record.args[0] : null;
    const socket: SocketUse = {
      family: typeof domain === "number" ? (FAMILY_NAMES[domain] ?? `family ${domain}`) : null,
      protocol: null,
      remote: null,
      local: null,
      connected: false,
      connectError: null,
      listening: false,
      accepted: 0,
      acceptedFrom: null,
    };
    if (record.net) this.updateSocket(socket, record);
    return socket;
  }

  private updateSocket(socket: SocketUse, record: EnrichedRecord): void {
    const net = record.net!;
    if (net.family) socket.family = net.family;
    if (net.protocol) socket.protocol = net.protocol;
    const remote = formatAddress(net.remote_addr, net.remote_port);
    if (remote) socket.remote = remote;
    const local = formatAddress(net.local_addr, net.local_port);
    if (local) socket.local = local;
  }

  private fdArgument(record: EnrichedRecord): number | null {
    const fd = record.args[0];
    if (typeof fd === "number" && fd >= 0) return fd;
    return record.fd !== null && record.fd !== undefined && record.fd >= 0 ? record.fd : null;
  }

  /** dup/dup2/dup3: the new number names the same open file. */
  private dup(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    const from = this.fdArgument(record);
    if (!ok || from === null || record.retval === null || record.retval === from) {
      this.runtime(state, record, line);
      return;
    }
    this.alias(state, this.fdUse(state, record, line, from), record.retval);
  }

  private alias(state: ProcessState, use: FdUse, fd: number): void {
    if (state.fds.get(fd) === use) return;
    this.release(state, fd);
    use.refs++;
    state.fds.set(fd, use);
  }

  /** close_range(first, last, flags): every number in the range is closed, or marked close-on-exec. */
  private closeRange(state: ProcessState, record: EnrichedRecord): void {
    const [first, last, flags] = record.args;
    if (typeof first !== "number" || typeof last !== "number") return;
    const end = last < 0 ? Number.POSITIVE_INFINITY : last;
    const cloexec = typeof flags === "number" && (flags & CLOSE_RANGE_CLOEXEC) !== 0;
    const fds = [...state.fds.keys()].filter((fd) => fd >= first && fd <= end).sort((a, b) => a - b);
    for (const fd of fds) {
      if (!cloexec) this.release(state, fd);
      else {
        const use = state.fds.get(fd)!;
        use.flags = (use.flags ?? 0) | O_CLOEXEC;
      }
    }
  }

  /** An fd number stops pointing at its file; the file's action is complete when no number is left. */
  private release(state: ProcessState, fd: number): void {
    const use = state.fds.get(fd);
    if (!use) return;
    state.fds.delete(fd);
    use.refs--;
    if (use.refs <= 0) this.emitFd(state, use);
  }

  private fdCall(
    state: ProcessState,
    record: EnrichedRecord,
    line: number,
    category: Category,
    ok: boolean,
  ): void {
    const fd = this.fdArgument(record);
    if (fd === null || (!ok && !state.fds.has(fd))) {
      this.runtime(state, record, line);
      return;
    }
    const use = this.fdUse(state, record, line, fd);
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
      this.release(state, fd);
    }
  }

  /** sendfile(out, in, …), copy_file_range(in, off, out, …), splice(in, off, out, …): a read and a write. */
  private copy(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    const [a, , c] = record.args;
    const from = record.call === "sendfile" ? record.args[1] : a;
    const to = record.call === "sendfile" ? a : c;
    if (!ok || typeof from !== "number" || typeof to !== "number" || from < 0 || to < 0) {
      this.runtime(state, record, line);
      return;
    }
    const bytes = record.byte_count ?? record.retval!;
    const source = this.fdUse(state, record, line, from);
    source.reads++;
    source.readBytes += bytes;
    // the record is counted on the source; the destination only gets the bytes and the time
    let sink = state.fds.get(to);
    if (!sink) {
      sink = this.fdUse(state, { ...record, abs_path: null, resource_type: null, net: null }, line, to);
      sink.span.records--;
    } else if (sink !== source) {
      sink.span.end_ts = Math.max(sink.span.end_ts, record.ts);
      sink.span.last_line = line;
    }
    sink.writes++;
    sink.writeBytes += bytes;
  }

  private socketCall(
    state: ProcessState,
    record: EnrichedRecord,
    line: number,
    category: Category,
    ok: boolean,
  ): void {
    const fd = this.fdArgument(record);
    if (fd === null) {
      this.runtime(state, record, line);
      return;
    }
    const use = this.fdUse(state, record, line, fd);
    use.socket ??= this.socketOf(record);
    const socket = use.socket;
    if (record.net) this.updateSocket(socket, record);
    if (category === Category.Connect) {
      // a non-blocking connect reports EINPROGRESS and completes later
      if (ok || record.errno === "EINPROGRESS") {
        socket.connected = true;
        socket.connectError = null;
      } else socket.connectError = record.errno ?? "failed";
    } else if (category === Category.Listen && ok) socket.listening = true;
  }

  private accept(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    const listener = this.fdArgument(record);
    if (listener !== null && state.fds.has(listener)) {
      const use = this.fdUse(state, record, line, listener);
      use.socket ??= this.socketOf(record);
      if (ok) use.socket.accepted++;
    }
    if (!ok) {
      if (listener === null || !state.fds.has(listener)) this.runtime(state, record, line);
      return;
    }
    const use = this.openFd(state, record, line, record.retval!);
    use.socket = this.socketOf(record);
    use.socket.connected = true;
    use.socket.acceptedFrom = use.socket.remote;
  }

  private lookup(state: ProcessState, record: EnrichedRecord, line: number, found: boolean): void {
    const path = record.abs_path ?? null;
    const run = state.lookup;
    if (!run) {
      state.lookup = {
        span: startSpan(record, line),
        paths: 1,
        missing: found ? 0 : 1,
        first: path,
        directory: path ? directoryOf(path) : null,
      };
      return;
    }
    extendSpan(run.span, record, line);
    run.paths++;
    if (!found) run.missing++;
    if (path) {
      run.first ??= path;
      run.directory = run.directory ? commonDirectory(run.directory, directoryOf(path)) : directoryOf(path);
    }
  }

  private runtime(state: ProcessState, record: EnrichedRecord, line: number): void {
    const run = state.runtime;
    if (!run) {
      state.runtime = { span: startSpan(record, line), calls: new Map([[record.call, 1]]) };
      return;
    }
    extendSpan(run.span, record, line);
    run.calls.set(record.call, (run.calls.get(record.call) ?? 0) + 1);
  }

  private exec(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    if (!ok) {
      this.lookup(state, record, line, false);
      return;
    }
    // a new program: what the old one was doing is complete, its close-on-exec files are closed;
    // other fds (a shell's redirections) live on into the new program
    const closing = [...state.fds.entries()]
      .filter(([, use]) => use.flags !== null && (use.flags & O_CLOEXEC) !== 0)
      .map(([fd]) => fd)
      .sort((a, b) => a - b);
    for (const fd of closing) this.release(state, fd);
    this.flushGroup(state);
    this.flushLookup(state);
    this.flushRuntime(state);
    const path = record.exe_path ?? record.abs_path ?? null;
    state.exe = path;
    const command = formatCommand(path ?? "?", execArgv(record.raw_line));
    const span = startSpan(record, line);
    this.action(state, "exec", `executed ${command}`, path, span);
    const spawn = this.spawns.get(state.pid);
    if (spawn) {
      this.spawns.delete(state.pid);
      // the range reaches the child's execve; the records counted are the parent's
      spawn.span.end_ts = Math.max(spawn.span.end_ts, record.ts);
      spawn.span.last_line = line;
      this.emit({
        pid: spawn.parent,
        exe_path: spawn.parentExe,
        kind: "spawn",
        summary: `spawned ${command} (pid ${state.pid})`,
        target: path,
        start_ts: spawn.span.start_ts,
        end_ts: spawn.span.end_ts,
        first_line: spawn.span.first_line,
        last_line: spawn.span.last_line,
        records: spawn.span.records,
        risk_tags: sortedTags(spawn.span),
      });
    }
  }

  private clone(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    if (!ok || record.retval === 0) {
      this.runtime(state, record, line);
      return;
    }
    const child = record.retval!;
    if (record.raw_line.includes("CLONE_THREAD")) {
      this.action(state, "thread", `started thread ${child}`, null, startSpan(record, line));
      return;
    }
    this.spawns.set(child, { parent: state.pid, parentExe: state.exe, span: startSpan(record, line) });
  }

  private emitFork(child: number, spawn: PendingSpawn): void {
    this.emit({
      pid: spawn.parent,
      exe_path: spawn.parentExe,
      kind: "fork",
      summary: `forked pid ${child} (same program, no exec)`,
      target: null,
      start_ts: spawn.span.start_ts,
      end_ts: spawn.span.end_ts,
      first_line: spawn.span.first_line,
      last_line: spawn.span.last_line,
      records: spawn.span.records,
      risk_tags: sortedTags(spawn.span),
    });
  }

  private exit(state: ProcessState, record: EnrichedRecord, line: number): void {
    // exit() of one thread ends only that thread; exit_group ends the process
    if (
      record.call === "exit" &&
      record.tid !== undefined &&
      record.tid !== null &&
      record.tid !== record.pid
    ) {
      this.runtime(state, record, line);
      return;
    }
    this.flushProcess(state);
    const status = record.args[0];
    const summary = typeof status === "number" ? `exited with status ${status}` : "exited";
    this.action(state, "exit", summary, null, startSpan(record, line));
    this.processes.delete(state.pid);
    const spawn = this.spawns.get(state.pid);
    if (spawn) {
      this.spawns.delete(state.pid);
      this.emitFork(state.pid, spawn);
    }
  }

  private signal(state: ProcessState, record: EnrichedRecord, line: number): void {
    const target = record.args[0];
    const name =
      signalName(record.raw_line) ??
      (typeof record.args[1] === "number" ? `signal ${record.args[1]}` : "a signal");
    // pidfd_send_signal names its target by a pidfd, the others by a pid
    const pidfd = fdArgumentOf(record) !== null;
    const who =
      typeof target !== "number" ? "a process" : pidfd ? `the process of pidfd ${target}` : `pid ${target}`;
    const failed = record.retval === -1 ? ` (failed: ${record.errno ?? "error"})` : "";
    this.action(state, "signal", `sent ${name} to ${who}${failed}`, null, startSpan(record, line));
  }

  private change(state: ProcessState, record: EnrichedRecord, line: number, ok: boolean): void {
    const path = record.abs_path ?? null;
    const where = path ?? "a path";
    const operation = operationOf(record);
    const mode = record.perm_bits ?? null;
    let summary: string;
    if (operation === "CHMOD" && mode !== null) summary = `changed mode of ${where} to ${formatMode(mode)}`;
    else if (operation === "CHOWN") summary = `changed owner of ${where}`;
    else {
      summary = `${changeVerb(record.call, operation)} ${where}`;
      if (record.call.startsWith("mkdir") && mode !== null) summary += ` (mode ${formatMode(mode)})`;
    }
    if (!ok) summary += ` (failed: ${record.errno ?? "error"})`;
    this.action(state, "file-change", summary, path, startSpan(record, line));
  }

  private flushLookup(state: ProcessState): void {
    const run = state.lookup;
    if (!run) return;
    state.lookup = null;
    const where = run.directory && run.paths > 1 ? ` under ${run.directory}` : "";
    let summary: string;
    if (run.paths === 1)
      summary = `${run.missing ? "looked for" : "checked"} ${run.first ?? "a path"}${run.missing ? " (not found)" : ""}`;
    else if (run.missing === run.paths) summary = `looked for ${run.paths} paths${where}, none found`;
    else if (run.missing === 0) summary = `checked ${run.paths} paths${where}`;
    else summary = `checked ${run.paths} paths${where} (${run.missing} not found)`;
    this.action(state, "lookup", summary, run.paths === 1 ? run.first : (run.directory ?? null), run.span);
  }

  private flushRuntime(state: ProcessState): void {
    const run = state.runtime;
    if (!run) return;
    state.runtime = null;
    const counts = [...run.calls.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const shown = counts.slice(0, 5).map(([name, n]) => (n > 1 ? `${name} ×${n}` : name));
    const more = counts.length > 5 ? `, +${counts.length - 5} more kinds` : "";
    this.action(state, "runtime", `runtime calls: ${shown.join(", ")}${more}`, null, run.span);
  }

  private flushProcess(state: ProcessState): void {
    const fds = [...state.fds.keys()].sort((a, b) => a - b);
    const emitted = new Set<FdUse>();
    for (const fd of fds) {
      const use = state.fds.get(fd)!;
      if (!emitted.has(use)) this.emitFd(state, use);
      emitted.add(use);
    }
    state.fds.clear();
    this.flushGroup(state);
    this.flushLookup(state);
    this.flushRuntime(state);
  }

  private emitFd(state: ProcessState, use: FdUse): void {
    // an inherited fd that was only closed (or dup'ed over) is plumbing, not an action
    const idle = use.reads === 0 && use.writes === 0 && use.listings === 0 && !use.mapped && !use.execMapped;
    if (!use.opened && idle && !use.socket?.connected && !use.socket?.listening) {
      this.foldIntoRuntime(state, use.span);
      return;
    }
    const { kind, summary } = describeFdUse(use);
    const target = use.socket?.remote ?? use.socket?.local ?? use.path;
    const verb = groupVerb(use, kind);
    if (verb === null || use.path === null) {
      this.action(state, kind, summary, target, use.span);
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
    this.flushGroup(state);
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

  private flushGroup(state: ProcessState): void {
    const group = state.group;
    if (!group) return;
    state.group = null;
    const summary = group.files === 1 ? group.single.summary : describeGroup(group);
    const target = group.files === 1 ? group.single.target : group.directory;
    this.emitAction(state, group.single.kind, summary, target, group.span);
  }

  private foldIntoRuntime(state: ProcessState, span: Span): void {
    if (!state.runtime) {
      state.runtime = { span: { ...span, risk: span.risk ? new Set(span.risk) : null }, calls: new Map() };
      return;
    }
    mergeSpan(state.runtime.span, span);
  }
}

/** What a file change did, by operation; the calls that share one are told apart by name. */
function changeVerb(call: string, operation: string | null): string {
  switch (operation) {
    case "DELETE":
      return call === "rmdir" ? "removed directory" : "deleted";
    case "RENAME":
      return "renamed";
    case "CREATE":
      if (call.startsWith("mkdir")) return "created directory";
      if (call.startsWith("symlink")) return "created symlink";
      return call.startsWith("link") ? "hard-linked" : "created";
    case "TRUNCATE":
      return "truncated";
    default:
      return "changed";
  }
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

/** The one-line name of what an fd was used for. */
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
