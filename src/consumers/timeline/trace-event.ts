/**
 * The timeline as Chrome Trace Event JSON, the format Perfetto, Chrome DevTools and chrome://tracing open,
 * written while the records stream by. One track per process and per thread (`process_name` and
 * `thread_name` metadata), each call a complete slice ("X", `ts` and `dur` in µs) on its thread, a call whose
 * duration nobody measured an instant ("i"), each risk tag an instant on its thread, and each action of the
 * collapser an async span ("b"/"e") of its process. Memory follows the threads alive, not the records:
 * a thread holds only its latest call, written once its next call (or its end) shows where it must stop.
 */
import { type Action, ActionCollapser } from "../actions/collapse.ts";
import { formatAddress } from "../actions/state.ts";
import type { EnrichedRecord } from "../enriched-reader.ts";
import { isShown } from "./text.ts";

export interface TraceEventOptions {
  /** input named in the document's otherData */
  source: string;
  /** also the plumbing and look-up actions, as the other formats show them with --all */
  all: boolean;
}

/** What was written, by kind of event. */
export interface TraceEventCounts {
  records: number;
  /** calls with a latency: complete slices */
  slices: number;
  /** calls without a latency (`= ?`, no -T): instants */
  instants: number;
  /** slices cut at the start of their thread's next call (their latency reached past it) */
  clamped: number;
  actions: number;
  risk_tags: number;
}

/** A thread's latest call, not yet written: its end may have to stop at the next call's start. */
interface PendingCall {
  /** the call name, as JSON */
  name: string;
  ts: number;
  latency: number;
  /** the args object, as JSON */
  args: string;
}

interface ThreadTrack {
  tid: number;
  pending: PendingCall | null;
}

interface ProcessTrack {
  pid: number;
  /** the executable its track is named after */
  exe: string | null;
  threads: Map<number, ThreadTrack>;
}

const UNKNOWN_EXECUTABLE = "(executable unknown)";
/** events are handed on in pieces of about this many characters */
const CHUNK_CHARS = 1 << 15;
/** x86-64 has about 370 system calls */
const CALL_NAMES_KEPT = 1024;

/** The last part of a path: what `ps` shows as a thread's name. */
function baseName(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut === -1 || cut === path.length - 1 ? path : path.slice(cut + 1);
}

/** What the call acted on: its path, or the far end of its socket. */
function targetOf(record: EnrichedRecord): string | null {
  if (typeof record.abs_path === "string") return record.abs_path;
  const net = record.net;
  if (typeof net !== "object" || net === null || typeof net.remote_addr !== "string") return null;
  return formatAddress(net.remote_addr, Number.isInteger(net.remote_port) ? net.remote_port : null);
}

/** The latency in µs when the record has a true one, else null. */
function latencyOf(record: EnrichedRecord): number | null {
  const latency = record.latency_us;
  return Number.isSafeInteger(latency) && (latency as number) >= 0 ? (latency as number) : null;
}

/** The args of a call's event: where it is in the input, its result, what it touched, its latency. */
function callArgs(record: EnrichedRecord, line: number, latency: number | null): string {
  // written by hand: JSON.stringify of an object per record was a fifth of the writer's time
  let args = `{"line":${line},"retval":${record.retval}`;
  if (typeof record.errno === "string") args += `,"errno":${JSON.stringify(record.errno)}`;
  const target = targetOf(record);
  if (target !== null) args += `,"target":${JSON.stringify(target)}`;
  return `${args},"latency_us":${latency}}`;
}

/** Streams records in and Trace Event JSON out, through `write`; `finish` closes the document. */
export class TraceEventWriter {
  private readonly processes = new Map<number, ProcessTrack>();
  private readonly collapser: ActionCollapser;
  private readonly counts: TraceEventCounts = {
    records: 0,
    slices: 0,
    instants: 0,
    clamped: 0,
    actions: 0,
    risk_tags: 0,
  };
  /** whether the document's head is written: only with the first event, so no records write nothing */
  private started = false;
  /** events not yet handed to `write` */
  private chunk = "";
  private nextActionId = 1;
  /** call name → its JSON text: a few hundred names, met again and again (bounded: the input is anyone's) */
  private readonly callNames = new Map<string, string>();

  constructor(
    private readonly write: (text: string) => void,
    private readonly options: TraceEventOptions,
  ) {
    this.collapser = new ActionCollapser((action) => this.writeAction(action));
  }

  push(record: EnrichedRecord, line: number): void {
    this.counts.records++;
    const pid = record.pid;
    const tid = Number.isSafeInteger(record.tid) ? (record.tid as number) : pid;
    const ts = record.ts;
    const thread = this.thread(pid, tid, record, ts);
    if (thread.pending) this.writeCall(pid, tid, thread.pending, ts);
    const latency = latencyOf(record);
    let name = this.callNames.get(record.call);
    if (name === undefined) {
      name = JSON.stringify(record.call);
      if (this.callNames.size < CALL_NAMES_KEPT) this.callNames.set(record.call, name);
    }
    const args = callArgs(record, line, latency);
    if (latency === null) {
      this.counts.instants++;
      this.event(
        `{"name":${name},"cat":"syscall","ph":"i","s":"t","ts":${ts},"pid":${pid},"tid":${tid},"args":${args}}`,
      );
      thread.pending = null;
    } else thread.pending = { name, ts, latency, args };
    const tags = record.risk_tags;
    if (Array.isArray(tags)) {
      for (const tag of tags) {
        if (typeof tag !== "string") continue;
        this.counts.risk_tags++;
        this.event(
          `{"name":${JSON.stringify(tag)},"cat":"risk","ph":"i","s":"t","ts":${ts},"pid":${pid},"tid":${tid},` +
            `"args":{"call":${name},"line":${line}}}`,
        );
      }
    }
    this.collapser.push(record, line);
    // a thread that ended makes no more calls: its track is closed and forgotten
    if (record.call === "exit_group") this.endProcess(pid);
    else if (record.call === "exit") this.endThread(pid, tid);
  }

  /** Threads whose track is kept (each with at most one call): what the writer's memory follows. */
  get threadsHeld(): number {
    let threads = 0;
    for (const process of this.processes.values()) threads += process.threads.size;
    return threads;
  }

  /** Writes what is still held (processes by pid, threads by tid) and closes the document. */
  finish(): TraceEventCounts {
    const pids = [...this.processes.keys()].sort((a, b) => a - b);
    for (const pid of pids) this.endProcess(pid);
    this.collapser.finish();
    if (this.started) {
      const other = {
        generator: "carnot timeline",
        source: this.options.source,
        records: String(this.counts.records),
      };
      this.chunk += `\n],\n"otherData":${JSON.stringify(other)}}\n`;
      this.flush();
    }
    return { ...this.counts };
  }

  private event(text: string): void {
    if (this.started) this.chunk += `,\n${text}`;
    else {
      this.started = true;
      this.chunk = `{"traceEvents":[\n${text}`;
    }
    // handed on in pieces: one write per event was a tenth of the time
    if (this.chunk.length >= CHUNK_CHARS) this.flush();
  }

  private flush(): void {
    this.write(this.chunk);
    this.chunk = "";
  }

  /** The record's thread track; a process or thread seen first, or after an exec, is named (again). */
  private thread(pid: number, tid: number, record: EnrichedRecord, ts: number): ThreadTrack {
    const exe = typeof record.exe_path === "string" && record.exe_path !== "" ? record.exe_path : null;
    let process = this.processes.get(pid);
    if (!process) {
      process = { pid, exe, threads: new Map() };
      this.processes.set(pid, process);
      this.nameProcess(pid, exe, ts);
    }
    let thread = process.threads.get(tid);
    if (!thread) {
      thread = { tid, pending: null };
      process.threads.set(tid, thread);
      this.nameThread(pid, tid, process.exe, ts);
    }
    if (exe !== null && exe !== process.exe) {
      process.exe = exe;
      this.nameProcess(pid, exe, ts);
      this.nameThread(pid, tid, exe, ts);
    }
    return thread;
  }

  private nameProcess(pid: number, exe: string | null, ts: number): void {
    const name = JSON.stringify(exe ?? UNKNOWN_EXECUTABLE);
    this.event(
      `{"name":"process_name","ph":"M","ts":${ts},"pid":${pid},"tid":${pid},"args":{"name":${name}}}`,
    );
  }

  private nameThread(pid: number, tid: number, exe: string | null, ts: number): void {
    const name = JSON.stringify(exe === null ? UNKNOWN_EXECUTABLE : baseName(exe));
    this.event(
      `{"name":"thread_name","ph":"M","ts":${ts},"pid":${pid},"tid":${tid},"args":{"name":${name}}}`,
    );
  }

  /** A held call as a complete slice, ending no later than `nextTs` (the thread's next call), if after it. */
  private writeCall(pid: number, tid: number, call: PendingCall, nextTs: number): void {
    let dur = call.latency;
    if (nextTs >= call.ts && call.ts + dur > nextTs) {
      dur = nextTs - call.ts;
      this.counts.clamped++;
    }
    this.counts.slices++;
    this.event(
      `{"name":${call.name},"cat":"syscall","ph":"X","ts":${call.ts},"dur":${dur},"pid":${pid},"tid":${tid},"args":${call.args}}`,
    );
  }

  private endThread(pid: number, tid: number): void {
    const process = this.processes.get(pid);
    const thread = process?.threads.get(tid);
    if (!process || !thread) return;
    if (thread.pending) this.writeCall(pid, tid, thread.pending, Number.POSITIVE_INFINITY);
    process.threads.delete(tid);
    if (process.threads.size === 0) this.processes.delete(pid);
  }

  private endProcess(pid: number): void {
    const process = this.processes.get(pid);
    if (!process) return;
    const tids = [...process.threads.keys()].sort((a, b) => a - b);
    for (const tid of tids) {
      const pending = process.threads.get(tid)!.pending;
      if (pending) this.writeCall(pid, tid, pending, Number.POSITIVE_INFINITY);
    }
    this.processes.delete(pid);
  }

  /** An action as an async span of its process: "b" at its first record, "e" at its last. */
  private writeAction(action: Action): void {
    if (!isShown(action, this.options.all)) return;
    this.counts.actions++;
    const id = `{"local":"${this.nextActionId++}"}`;
    const head = `{"name":${JSON.stringify(action.summary)},"cat":"action"`;
    const where = `"pid":${action.pid},"tid":${action.pid},"id2":${id}`;
    const args = JSON.stringify({
      kind: action.kind,
      target: action.target,
      records: action.records,
      first_line: action.first_line,
      last_line: action.last_line,
      risk_tags: action.risk_tags,
    });
    this.event(`${head},"ph":"b","ts":${action.start_ts},${where},"args":${args}}`);
    this.event(`${head},"ph":"e","ts":${action.end_ts},${where}}`);
  }
}
