import { type Action, ActionCollapser } from "../actions/collapse.ts";
import type { EnrichedRecord } from "../enriched-reader.ts";

/** Per process, the actions kept for display; the rest are counted (flat memory on long traces). */
export const ACTIONS_KEPT_PER_PROCESS = 400;
/** Actions with risk tags are kept past the limit, up to this many more. */
export const RISK_ACTIONS_KEPT_PER_PROCESS = 400;

export interface TimelineProcess {
  pid: number;
  ppid: number | null;
  /** executables in the order the process ran them (exec chain) */
  executables: string[];
  start_ts: number;
  end_ts: number;
  first_line: number;
  last_line: number;
  records: number;
  threads: number;
  exit_status: number | null;
  /** risk tag → number of records carrying it */
  risk: Record<string, number>;
  actions: Action[];
  actions_omitted: number;
  children: TimelineProcess[];
}

export interface Timeline {
  records: number;
  start_ts: number;
  end_ts: number;
  processes: number;
  /** risk tag → number of records carrying it, over the whole trace */
  risk: Record<string, number>;
  roots: TimelineProcess[];
}

interface ProcessEntry extends Omit<TimelineProcess, "children" | "risk"> {
  risk: Map<string, number>;
  threadIds: Set<number>;
}

function sortedCounts(map: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of [...map.keys()].sort()) out[key] = map.get(key)!;
  return out;
}

/**
 * Builds the per-process tree (fork/exec parentage) with each process's actions, streaming:
 * records go through the action collapser; memory grows with processes, not with records.
 */
export class TimelineBuilder {
  private readonly processes = new Map<number, ProcessEntry>();
  /** child pid → parent pid, from the parent's clone/fork return value */
  private readonly parentOf = new Map<number, number>();
  private readonly risk = new Map<string, number>();
  private readonly collapser: ActionCollapser;
  private records = 0;
  private startTs = Number.POSITIVE_INFINITY;
  private endTs = 0;

  constructor() {
    this.collapser = new ActionCollapser((action) => this.addAction(action));
  }

  push(record: EnrichedRecord, line: number): void {
    this.records++;
    if (record.ts < this.startTs) this.startTs = record.ts;
    if (record.ts > this.endTs) this.endTs = record.ts;
    const entry = this.entry(record.pid, record.ts, line);
    entry.records++;
    if (record.ts > entry.end_ts) entry.end_ts = record.ts;
    entry.last_line = line;
    if (entry.ppid === null) entry.ppid = record.ppid ?? this.parentOf.get(record.pid) ?? null;
    if (record.tid !== null && record.tid !== undefined && record.tid !== record.pid)
      entry.threadIds.add(record.tid);
    const exe = record.exe_path;
    if (exe && entry.executables[entry.executables.length - 1] !== exe) entry.executables.push(exe);
    const call = record.call;
    if (
      (call === "clone" || call === "clone3" || call === "fork" || call === "vfork") &&
      (record.retval ?? 0) > 0
    ) {
      if (!record.raw_line.includes("CLONE_THREAD")) this.parentOf.set(record.retval!, record.pid);
      else entry.threadIds.add(record.retval!);
    }
    if (call === "exit_group" || (call === "exit" && (record.tid ?? record.pid) === record.pid)) {
      const status = record.args[0];
      if (typeof status === "number") entry.exit_status = status;
    }
    const tags = record.risk_tags;
    if (tags && tags.length > 0) {
      for (const tag of tags) {
        entry.risk.set(tag, (entry.risk.get(tag) ?? 0) + 1);
        this.risk.set(tag, (this.risk.get(tag) ?? 0) + 1);
      }
    }
    this.collapser.push(record, line);
  }

  /** The tree: roots are processes whose parent is not in the trace; children by start time, then pid. */
  finish(): Timeline {
    this.collapser.finish();
    const nodes = new Map<number, TimelineProcess>();
    for (const entry of this.processes.values()) {
      const { risk, threadIds, ...rest } = entry;
      nodes.set(entry.pid, { ...rest, threads: threadIds.size, risk: sortedCounts(risk), children: [] });
    }
    const roots: TimelineProcess[] = [];
    for (const node of nodes.values()) {
      const parent = node.ppid === null ? undefined : nodes.get(node.ppid);
      if (parent && parent !== node) parent.children.push(node);
      else roots.push(node);
    }
    const byStart = (a: TimelineProcess, b: TimelineProcess) => a.start_ts - b.start_ts || a.pid - b.pid;
    for (const node of nodes.values()) node.children.sort(byStart);
    roots.sort(byStart);
    return {
      records: this.records,
      start_ts: this.records > 0 ? this.startTs : 0,
      end_ts: this.endTs,
      processes: nodes.size,
      risk: sortedCounts(this.risk),
      roots,
    };
  }

  private entry(pid: number, ts: number, line: number): ProcessEntry {
    let entry = this.processes.get(pid);
    if (!entry) {
      entry = {
        pid,
        ppid: this.parentOf.get(pid) ?? null,
        executables: [],
        start_ts: ts,
        end_ts: ts,
        first_line: line,
        last_line: line,
        records: 0,
        threads: 0,
        exit_status: null,
        risk: new Map(),
        actions: [],
        actions_omitted: 0,
        threadIds: new Set(),
      };
      this.processes.set(pid, entry);
      this.parentOf.delete(pid);
    }
    return entry;
  }

  private addAction(action: Action): void {
    const entry = this.entry(action.pid, action.start_ts, action.first_line);
    const kept = entry.actions.length;
    if (kept < ACTIONS_KEPT_PER_PROCESS) entry.actions.push(action);
    else if (action.risk_tags.length > 0 && kept < ACTIONS_KEPT_PER_PROCESS + RISK_ACTIONS_KEPT_PER_PROCESS)
      entry.actions.push(action);
    else entry.actions_omitted++;
  }
}

/** A process's actions in time order (they are collected in the order they complete). */
export function actionsInTimeOrder(process: TimelineProcess): Action[] {
  return [...process.actions].sort((a, b) => a.start_ts - b.start_ts || a.first_line - b.first_line);
}

/** Depth-first walk of the tree, parents before children. */
export function* walkTimeline(roots: TimelineProcess[]): Generator<TimelineProcess> {
  for (const root of roots) {
    yield root;
    yield* walkTimeline(root.children);
  }
}
