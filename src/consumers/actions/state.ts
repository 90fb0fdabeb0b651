/**
 * What the action collapser keeps while it reads: spans of records, the use of each open fd and socket,
 * runs of look-ups and plumbing calls, per process; and the actions it hands on.
 */
import type { EnrichedRecord } from "../enriched-reader.ts";

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
export interface Span {
  start_ts: number;
  end_ts: number;
  first_line: number;
  last_line: number;
  records: number;
  risk: Set<string> | null;
}

/** The span of one record. */
export function startSpan(record: EnrichedRecord, line: number): Span {
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

/** The span grows by a record (time, line range, count, risk tags). */
export function extendSpan(span: Span, record: EnrichedRecord, line: number): void {
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

/** Two spans as one. */
export function mergeSpan(into: Span, from: Span): void {
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

/** What a socket has been: its ends, whether it connected, listened, or was accepted. */
export interface SocketUse {
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
export interface FdUse {
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
export interface FdGroup {
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

export type GroupVerb = "loaded" | "mapped" | "read" | "opened";

/** Consecutive path look-ups (stat, access, failed opens and execs) of one process. */
export interface LookupRun {
  span: Span;
  paths: number;
  missing: number;
  first: string | null;
  directory: string | null;
}

/** Calls that are the program's plumbing (memory, signals, futexes, …), counted per name. */
export interface RuntimeRun {
  span: Span;
  calls: Map<string, number>;
}

/** One live process: its open fds and its runs in progress. */
export interface ProcessState {
  pid: number;
  exe: string | null;
  fds: Map<number, FdUse>;
  lookup: LookupRun | null;
  runtime: RuntimeRun | null;
  group: FdGroup | null;
}

/** A child process not yet executing anything: its parent's clone, waiting to be named spawn or fork. */
export interface PendingSpawn {
  parent: number;
  parentExe: string | null;
  span: Span;
}

/** A child's execve seen before its parent's clone returned (strace printed the child first). */
export interface EarlyExec {
  command: string;
  path: string | null;
  ts: number;
}

const FAMILY_NAMES: Record<number, string> = { 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK" };

/** "127.0.0.1:80", "[::1]:80", or the address alone. */
export function formatAddress(
  addr: string | null | undefined,
  port: number | null | undefined,
): string | null {
  if (!addr) return null;
  if (port === null || port === undefined) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The span's risk tags, sorted. */
export function sortedTags(span: Span): string[] {
  return span.risk ? [...span.risk].sort() : [];
}

/** A socket as the record first shows it; the family from socket()'s own argument. */
export function socketOf(record: EnrichedRecord): SocketUse {
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
  if (record.net) updateSocket(socket, record);
  return socket;
}

/** Family, protocol and addresses the record adds to what is known of the socket. */
export function updateSocket(socket: SocketUse, record: EnrichedRecord): void {
  const net = record.net!;
  if (net.family) socket.family = net.family;
  if (net.protocol) socket.protocol = net.protocol;
  const remote = formatAddress(net.remote_addr, net.remote_port);
  if (remote) socket.remote = remote;
  const local = formatAddress(net.local_addr, net.local_port);
  if (local) socket.local = local;
}
