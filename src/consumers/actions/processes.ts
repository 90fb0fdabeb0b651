/** Actions of processes: programs executed, children spawned or forked, threads started, exits, signals. */
import { O_CLOEXEC } from "../../replay/constants.ts";
import type { EnrichedRecord } from "../enriched-reader.ts";
import { fdArgumentOf } from "./categories.ts";
import type { ActionCollapser } from "./collapse.ts";
import { execArgv, formatCommand, signalName } from "./describe.ts";
import { flushGroup, release } from "./fds.ts";
import { lookup } from "./paths.ts";
import { type PendingSpawn, type ProcessState, sortedTags, startSpan } from "./state.ts";

/** Children whose execve came before their parent's clone returned, kept at most (a trace is anyone's input). */
const EARLY_EXECS_KEPT = 4096;

/** execve: the old program's actions end; the parent that spawned this child names the command. */
export function exec(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  if (!ok) {
    lookup(state, record, line, false);
    return;
  }
  // a new program: what the old one was doing is complete, its close-on-exec files are closed;
  // other fds (a shell's redirections) live on into the new program
  const closing = [...state.fds.entries()]
    .filter(([, use]) => use.flags !== null && (use.flags & O_CLOEXEC) !== 0)
    .map(([fd]) => fd)
    .sort((a, b) => a - b);
  for (const fd of closing) release(c, state, fd);
  flushGroup(c, state);
  c.flushLookup(state);
  c.flushRuntime(state);
  const path = record.exe_path ?? record.abs_path ?? null;
  state.exe = path;
  const command = formatCommand(path ?? "?", execArgv(record.raw_line));
  const span = startSpan(record, line);
  c.action(state, "exec", `executed ${command}`, path, span);
  const spawn = c.spawns.get(state.pid);
  if (spawn) {
    c.spawns.delete(state.pid);
    // the range reaches the child's execve; the records counted are the parent's
    spawn.span.end_ts = Math.max(spawn.span.end_ts, record.ts);
    spawn.span.last_line = line;
    emitSpawn(c, state.pid, spawn, command, path);
    return;
  }
  // the parent's clone may still return after this (strace prints whichever finishes first)
  if (c.earlyExecs.size >= EARLY_EXECS_KEPT) c.earlyExecs.delete(c.earlyExecs.keys().next().value!);
  c.earlyExecs.set(state.pid, { command, path, ts: record.ts });
}

function emitSpawn(
  c: ActionCollapser,
  child: number,
  spawn: PendingSpawn,
  command: string,
  path: string | null,
): void {
  c.emit({
    pid: spawn.parent,
    exe_path: spawn.parentExe,
    kind: "spawn",
    summary: `spawned ${command} (pid ${child})`,
    target: path,
    start_ts: spawn.span.start_ts,
    end_ts: spawn.span.end_ts,
    first_line: spawn.span.first_line,
    last_line: spawn.span.last_line,
    records: spawn.span.records,
    risk_tags: sortedTags(spawn.span),
  });
}

/** clone/fork: a thread is named at once; a child process waits to see whether it executes something. */
export function clone(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  if (!ok || record.retval === 0) {
    c.runtime(state, record, line);
    return;
  }
  const child = record.retval!;
  if (record.raw_line.includes("CLONE_THREAD")) {
    c.action(state, "thread", `started thread ${child}`, null, startSpan(record, line));
    return;
  }
  const spawn = { parent: state.pid, parentExe: state.exe, span: startSpan(record, line) };
  const early = c.earlyExecs.get(child);
  if (early !== undefined) {
    c.earlyExecs.delete(child);
    // the child executed while this clone was under way: it is this child (a pid used again would have
    // executed before the clone began)
    if (early.ts >= record.ts) {
      spawn.span.end_ts = Math.max(spawn.span.end_ts, early.ts);
      emitSpawn(c, child, spawn, early.command, early.path);
      return;
    }
  }
  c.spawns.set(child, spawn);
}

/** A child that exited (or outlived the trace) without executing anything: its parent forked it. */
export function emitFork(c: ActionCollapser, child: number, spawn: PendingSpawn): void {
  c.emit({
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

/** exit_group (or the main thread's exit): the process's actions end. */
export function exit(c: ActionCollapser, state: ProcessState, record: EnrichedRecord, line: number): void {
  // exit() of one thread ends only that thread; exit_group ends the process
  if (
    record.call === "exit" &&
    record.tid !== undefined &&
    record.tid !== null &&
    record.tid !== record.pid
  ) {
    c.runtime(state, record, line);
    return;
  }
  c.flushProcess(state);
  const status = record.args[0];
  const summary = typeof status === "number" ? `exited with status ${status}` : "exited";
  c.action(state, "exit", summary, null, startSpan(record, line));
  c.processes.delete(state.pid);
  const spawn = c.spawns.get(state.pid);
  if (spawn) {
    c.spawns.delete(state.pid);
    emitFork(c, state.pid, spawn);
  }
}

/** kill and the like: one action each. */
export function signal(c: ActionCollapser, state: ProcessState, record: EnrichedRecord, line: number): void {
  const target = record.args[0];
  const name =
    signalName(record.raw_line) ??
    (typeof record.args[1] === "number" ? `signal ${record.args[1]}` : "a signal");
  // pidfd_send_signal names its target by a pidfd, the others by a pid
  const pidfd = fdArgumentOf(record) !== null;
  const who =
    typeof target !== "number" ? "a process" : pidfd ? `the process of pidfd ${target}` : `pid ${target}`;
  const failed = record.retval === -1 ? ` (failed: ${record.errno ?? "error"})` : "";
  c.action(state, "signal", `sent ${name} to ${who}${failed}`, null, startSpan(record, line));
}
