/**
 * Collapses a stream of EnhancedEvents into actions, in the order they complete. State is per live process
 * and open fd, so memory follows what is open at once, not the trace length. What each kind of record does
 * is in its family's module (fds, sockets, paths, processes); this is the dispatch and the per-process runs.
 */
import type { EnrichedRecord } from "../enriched-reader.ts";
import { Category, categoryOf } from "./categories.ts";
import { closeRangeCall, copy, dup, emitFd, fdCall, flushGroup, mmap } from "./fds.ts";
import { change, open, statPath } from "./paths.ts";
import { clone, emitFork, exec, exit, signal } from "./processes.ts";
import { accept, socket, socketCall } from "./sockets.ts";
import {
  type Action,
  type ActionKind,
  extendSpan,
  type FdUse,
  mergeSpan,
  type EarlyExec,
  type PendingSpawn,
  type ProcessState,
  type Span,
  sortedTags,
  startSpan,
} from "./state.ts";

export type { Action, ActionKind } from "./state.ts";

type Handler = (
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
  category: Category,
) => void;

/** A call that is plumbing; a flagged one (setuid, ptrace, …) is named on its own, never folded in. */
const runtimeCall: Handler = (c, state, record, line, ok) => {
  if (record.risk_tags && record.risk_tags.length > 0) {
    const failed = ok || record.retval === null ? "" : ` (failed: ${record.errno ?? "error"})`;
    c.action(
      state,
      "runtime",
      `called ${record.call}${failed}`,
      record.abs_path ?? null,
      startSpan(record, line),
    );
  } else c.runtime(state, record, line);
};

/** What each category of record does. */
const HANDLERS: Readonly<Record<Category, Handler>> = {
  [Category.Open]: open,
  [Category.Socket]: socket,
  [Category.Accept]: accept,
  [Category.Connect]: socketCall,
  [Category.Bind]: socketCall,
  [Category.Listen]: socketCall,
  [Category.Read]: fdCall,
  [Category.Write]: fdCall,
  [Category.Listing]: fdCall,
  [Category.FdMetadata]: fdCall,
  [Category.Close]: fdCall,
  [Category.Copy]: copy,
  [Category.CloseRange]: closeRangeCall,
  [Category.Dup]: dup,
  [Category.Mmap]: mmap,
  [Category.Lookup]: statPath,
  [Category.Exec]: exec,
  [Category.Clone]: clone,
  [Category.Exit]: exit,
  [Category.Signal]: signal,
  [Category.Change]: change,
  [Category.Runtime]: runtimeCall,
};

/** The collapser; its state and the steps below are shared with the families' handlers. */
export class ActionCollapser {
  readonly processes = new Map<number, ProcessState>();
  readonly spawns = new Map<number, PendingSpawn>();
  /** execve of processes no clone had named yet, by pid (the oldest go beyond EARLY_EXECS_KEPT) */
  readonly earlyExecs = new Map<number, EarlyExec>();
  readonly emit: (action: Action) => void;

  constructor(emit: (action: Action) => void) {
    this.emit = emit;
  }

  push(record: EnrichedRecord, line: number): void {
    const state = this.process(record);
    const category = categoryOf(record);
    const ok = record.retval !== null && record.retval >= 0;
    HANDLERS[category](this, state, record, line, ok, category);
  }

  /** Emits what is still open at the end of the trace: processes by pid, fds by number. */
  finish(): void {
    const pids = [...this.processes.keys()].sort((a, b) => a - b);
    for (const pid of pids) this.flushProcess(this.processes.get(pid)!);
    this.processes.clear();
    const children = [...this.spawns.keys()].sort((a, b) => a - b);
    for (const child of children) emitFork(this, child, this.spawns.get(child)!);
    this.spawns.clear();
    this.earlyExecs.clear();
  }

  process(record: EnrichedRecord): ProcessState {
    let state = this.processes.get(record.pid);
    if (!state) {
      state = { pid: record.pid, exe: null, fds: new Map(), lookup: null, runtime: null, group: null };
      this.processes.set(record.pid, state);
    }
    if (record.exe_path) state.exe = record.exe_path;
    return state;
  }

  action(state: ProcessState, kind: ActionKind, summary: string, target: string | null, span: Span): void {
    flushGroup(this, state);
    this.emitAction(state, kind, summary, target, span);
  }

  emitAction(
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

  runtime(state: ProcessState, record: EnrichedRecord, line: number): void {
    const run = state.runtime;
    if (!run) {
      state.runtime = { span: startSpan(record, line), calls: new Map([[record.call, 1]]) };
      return;
    }
    extendSpan(run.span, record, line);
    run.calls.set(record.call, (run.calls.get(record.call) ?? 0) + 1);
  }

  flushLookup(state: ProcessState): void {
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

  flushRuntime(state: ProcessState): void {
    const run = state.runtime;
    if (!run) return;
    state.runtime = null;
    const counts = [...run.calls.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const shown = counts.slice(0, 5).map(([name, n]) => (n > 1 ? `${name} ×${n}` : name));
    const more = counts.length > 5 ? `, +${counts.length - 5} more kinds` : "";
    this.action(state, "runtime", `runtime calls: ${shown.join(", ")}${more}`, null, run.span);
  }

  flushProcess(state: ProcessState): void {
    const fds = [...state.fds.keys()].sort((a, b) => a - b);
    const emitted = new Set<FdUse>();
    for (const fd of fds) {
      const use = state.fds.get(fd)!;
      if (!emitted.has(use)) emitFd(this, state, use);
      emitted.add(use);
    }
    state.fds.clear();
    flushGroup(this, state);
    this.flushLookup(state);
    this.flushRuntime(state);
  }

  foldIntoRuntime(state: ProcessState, span: Span): void {
    if (!state.runtime) {
      state.runtime = { span: { ...span, risk: span.risk ? new Set(span.risk) : null }, calls: new Map() };
      return;
    }
    mergeSpan(state.runtime.span, span);
  }
}
