/**
 * The record stage: kernel events in order → EnhancedEvents. An entry waits for its exit (per thread), the pair
 * is rendered as strace would print it and enriched by the replay's enrichment with the same process and fd
 * tables, which the kernel's fork, exec and exit events keep exact. Processes carnot did not see start are read
 * from /proc once. Pure but for those /proc reads; records are handed to the caller's array.
 */
import { type CompleteCall, enrichCall, enterFd } from "../replay/enrich/enrich.ts";
import type { EnhancedEvent } from "../replay/schema.ts";
import { callSpec } from "../replay/syscalls.ts";
import {
  CLONE_FILES,
  CLONE_FS,
  CLONE_PARENT,
  CLONE_THREAD,
  ProcessTable,
  type Task,
} from "../replay/tables.ts";
import { type CallInfo, callInfo } from "./calls.ts";
import { RecordEvent, RecordKind, Share } from "./events.ts";
import type { ProcSnapshot } from "./proc.ts";
import { renderCall } from "./render.ts";

export const ENRICH_TIMEOUT = "ENRICH_TIMEOUT";
export const PIPE_BACKPRESSURE = "PIPE_BACKPRESSURE";

export interface RecordCounts {
  /** events decoded from the ring buffer */
  events: number;
  /** records handed on */
  records: number;
  /** exits whose entry never came (lost, or the call began before carnot attached) */
  withoutEntry: number;
  /** records written without enrichment because events came faster than they were enriched */
  backpressure: number;
  /** records whose enrichment went past its budget */
  enrichTimeout: number;
  /** processes that ended while followed */
  processesEnded: number;
}

export interface RecordSessionOptions {
  /** CLOCK_MONOTONIC ns of the start: records' `ts` are µs since then */
  startNs: number;
  /** /proc of a process seen for the first time (null: gone); `withFds` for a process, not a new thread */
  snapshot: (pid: number, tid: number, withFds: boolean) => ProcSnapshot | null;
  /** the enrichment budget of one record, in ms (the spec's 2 ms) */
  budgetMs?: number;
  /** a clock in ms (performance.now) */
  now?: () => number;
  /** the process carnot started: its executable is the gate's until its execve, so it is not taken from /proc */
  gatedPid?: () => number | undefined;
}

/** An entry waiting for its exit. */
interface Pending {
  ev: RecordEvent;
  info: CallInfo;
  entry: ReturnType<typeof enterFd>;
}

const BUDGET_MS = 2;

export class RecordSession {
  readonly counts: RecordCounts = {
    events: 0,
    records: 0,
    withoutEntry: 0,
    backpressure: 0,
    enrichTimeout: 0,
    processesEnded: 0,
  };
  readonly table = new ProcessTable();
  /** processes followed and not yet ended, as far as the events tell */
  readonly live = new Set<number>();
  private readonly pending = new Map<number, Pending>();
  /** event objects free for the decoder (the entries that were pending, and every other event) */
  private readonly spare: RecordEvent[] = [];
  /** threads whose /proc snapshot went past the budget: their next record says so */
  private readonly late = new Set<number>();
  private readonly budgetMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: RecordSessionOptions) {
    this.budgetMs = opts.budgetMs ?? BUDGET_MS;
    this.now = opts.now ?? (() => performance.now());
  }

  /** An event object to decode the next event into: one the session no longer needs, else a new one. */
  freeEvent(): RecordEvent {
    return this.spare.pop() ?? new RecordEvent();
  }

  /**
   * Feeds one event; `degraded` when the ring buffer fills faster than records are enriched. The session owns
   * `ev` from now on: an entry is kept until its exit, every other event is free again once this returns.
   */
  push(ev: RecordEvent, out: EnhancedEvent[], degraded = false): void {
    this.counts.events++;
    switch (ev.kind) {
      case RecordKind.Enter:
        this.enter(ev, out, degraded);
        return;
      case RecordKind.Exit:
        this.exit(ev, out, degraded);
        break;
      case RecordKind.Fork:
        this.fork(ev);
        break;
      case RecordKind.Exec:
        this.exec(ev, out, degraded);
        break;
      case RecordKind.Gone:
        this.gone(ev, out, degraded);
        break;
    }
    this.spare.push(ev);
  }

  /** The end: calls still waiting for their exit are written as cut (retval null). */
  finish(out: EnhancedEvent[]): void {
    for (const tid of [...this.pending.keys()].sort((a, b) => a - b)) this.flush(tid, out, false);
  }

  /**
   * A process known before its first event (the command carnot started, stopped at its gate; the tree of
   * --pid): its /proc snapshot, taken while carnot waits, has no budget.
   */
  preload(pid: number): void {
    this.live.add(pid);
    const snap = this.opts.snapshot(pid, pid, true);
    if (snap !== null) this.apply(this.table.task(pid), snap);
  }

  /** A task seen for the first time: its process from the tables, else from /proc (once, within the budget). */
  private taskOf(ev: RecordEvent): Task {
    const known = this.table.tasks.get(ev.tid);
    if (known !== undefined) return known;
    const leader = this.table.tasks.get(ev.pid);
    if (leader !== undefined) {
      // a thread older than the recording: it shares its process's tables
      return this.table.spawn(leader, ev.tid, CLONE_THREAD | CLONE_FILES | CLONE_FS);
    }
    this.live.add(ev.pid);
    const start = this.now();
    const snap = this.opts.snapshot(ev.pid, ev.tid, true);
    const task = this.table.task(ev.pid);
    // reading /proc blocked past the budget: what it said is left out, and the record says so
    if (this.now() - start > this.budgetMs) this.late.add(ev.tid);
    else if (snap !== null) this.apply(task, snap);
    if (ev.tid === ev.pid) return task;
    return this.table.spawn(task, ev.tid, CLONE_THREAD | CLONE_FILES | CLONE_FS);
  }

  private apply(task: Task, snap: ProcSnapshot): void {
    const p = task.proc;
    p.ppid = snap.ppid;
    p.uid = snap.uid;
    p.gid = snap.gid;
    p.euid = snap.euid;
    p.egid = snap.egid;
    p.caps = snap.caps;
    // the command's gate is carnot's shell, not the command: its executable comes with its execve
    if (task.proc.pid !== this.opts.gatedPid?.()) p.exe = snap.exe;
    task.fs.cwd = snap.cwd?.startsWith("/") ? snap.cwd : null;
    for (const [fd, file] of snap.fds) task.files.fds.set(fd, { file, cloexec: false });
  }

  private enter(ev: RecordEvent, out: EnhancedEvent[], degraded: boolean): void {
    if (this.pending.has(ev.tid)) this.flush(ev.tid, out, degraded);
    this.taskOf(ev);
    const info = callInfo(ev.nr);
    const at = info.spec.fd;
    const fd = at === undefined ? null : ev.argLo[at]! | 0;
    this.pending.set(ev.tid, {
      ev,
      info,
      entry: fd === null ? null : enterFd(this.table, ev.tid, info.name, fd, null),
    });
  }

  private exit(ev: RecordEvent, out: EnhancedEvent[], degraded: boolean): void {
    const p = this.pending.get(ev.tid);
    this.taskOf(ev);
    if (p !== undefined && p.ev.nr === ev.nr) {
      this.pending.delete(ev.tid);
      this.emit(p.info, p.ev, ev, p.entry, out, degraded);
      this.spare.push(p.ev);
      return;
    }
    if (p !== undefined) this.flush(ev.tid, out, degraded);
    this.counts.withoutEntry++;
    this.emit(callInfo(ev.nr), null, ev, null, out, degraded);
  }

  private flush(tid: number, out: EnhancedEvent[], degraded: boolean): void {
    const p = this.pending.get(tid);
    if (p === undefined) return;
    this.pending.delete(tid);
    this.emit(p.info, p.ev, null, p.entry, out, degraded);
    this.spare.push(p.ev);
  }

  /** A followed task made another: the new one gets its tables exactly as the kernel shared them. */
  private fork(ev: RecordEvent): void {
    const parent = this.taskOf(ev);
    const share = ev.argLo[1]!;
    const childPid = ev.argLo[0]!;
    let flags = 0;
    if ((share & Share.Thread) !== 0) flags |= CLONE_THREAD;
    if ((share & Share.Files) !== 0) flags |= CLONE_FILES;
    if ((share & Share.Fs) !== 0) flags |= CLONE_FS;
    if ((share & Share.Thread) === 0 && ev.argLo[2] !== parent.proc.pid) flags |= CLONE_PARENT;
    this.table.spawn(parent, ev.ret, flags);
    if ((share & Share.Thread) === 0) this.live.add(childPid);
  }

  /** A new program: a non-leader thread that called execve takes the leader's id; ids and caps as exec set them. */
  private exec(ev: RecordEvent, out: EnhancedEvent[], degraded: boolean): void {
    const old = ev.ret;
    if (old !== ev.tid) {
      this.flush(ev.tid, out, degraded);
      const moved = this.pending.get(old);
      this.pending.delete(old);
      if (moved) this.pending.set(ev.tid, moved);
      if (this.table.tasks.has(old)) {
        this.table.remove(ev.tid);
        this.table.rename(old, ev.tid);
      }
    }
    const proc = this.taskOf(ev).proc;
    proc.uid = ev.argLo[0]!;
    proc.gid = ev.argLo[1]!;
    proc.euid = ev.argLo[2]!;
    proc.egid = ev.argLo[3]!;
    proc.caps = ev.argHi[4]! * 0x1_0000_0000 + ev.argLo[4]!;
  }

  /** A task ended: its call in progress (exit_group's) is written as cut. */
  private gone(ev: RecordEvent, out: EnhancedEvent[], degraded: boolean): void {
    this.flush(ev.tid, out, degraded);
    this.table.remove(ev.tid);
    if (ev.argLo[0] === 1) {
      this.live.delete(ev.pid);
      this.counts.processesEnded++;
    }
  }

  private emit(
    info: CallInfo,
    enter: RecordEvent | null,
    exit: RecordEvent | null,
    entry: ReturnType<typeof enterFd>,
    out: EnhancedEvent[],
    degraded: boolean,
  ): void {
    const first = (enter ?? exit)!;
    const tid = first.tid;
    const call = info.name;
    const r = renderCall(info, enter, exit);
    const ts = Math.max(0, Math.round((first.tsNs - this.opts.startNs) / 1000));
    const latency =
      enter !== null && exit !== null ? Math.max(0, Math.round((exit.tsNs - enter.tsNs) / 1000)) : null;
    const c: CompleteCall = {
      tid,
      ts,
      call,
      args: r.args,
      retval: r.retval,
      errno: r.errno,
      retAnnotation: null,
      latency,
      raw: r.line,
      entry,
      words: r.words,
      spec: info.spec,
    };
    this.counts.records++;
    if (degraded) {
      this.counts.backpressure++;
      out.push(this.unenriched(c, exit, PIPE_BACKPRESSURE));
      return;
    }
    const rec = enrichCall(this.table, c);
    if (this.late.delete(tid)) {
      this.counts.enrichTimeout++;
      clearEnrichment(rec);
      rec.risk_tags = [ENRICH_TIMEOUT];
    }
    out.push(rec);
  }

  /**
   * A record of what the kernel said alone. The tables learn nothing from the call, so what it changed is
   * forgotten (an fd it opened or closed, the cwd it set, the program it ran): later records say null, not a guess.
   */
  private unenriched(c: CompleteCall, exit: RecordEvent | null, tag: string): EnhancedEvent {
    const task = this.table.task(c.tid);
    const spec = callSpec(c.call);
    forgetEffects(task, c, exit);
    return {
      ts: c.ts,
      pid: task.proc.pid,
      tid: c.tid,
      ppid: task.proc.ppid,
      call: c.call,
      args: c.words!,
      retval: c.retval,
      errno: c.errno,
      raw_line: c.raw,
      raw_hash: null,
      exe_path: null,
      cwd: null,
      uid: null,
      gid: null,
      euid: null,
      egid: null,
      caps: null,
      fd: null,
      abs_path: null,
      resource_type: null,
      operation: spec.operation,
      perm_bits: null,
      byte_count: null,
      net: null,
      latency_us: c.latency,
      risk_tags: [tag],
      high_level_kind: spec.kind,
    };
  }
}

/** The optional fields of a record back to null (the Must fields and the call's taxonomy stay). */
function clearEnrichment(rec: EnhancedEvent): void {
  rec.exe_path = null;
  rec.cwd = null;
  rec.uid = null;
  rec.gid = null;
  rec.euid = null;
  rec.egid = null;
  rec.caps = null;
  rec.fd = null;
  rec.abs_path = null;
  rec.resource_type = null;
  rec.perm_bits = null;
  rec.byte_count = null;
  rec.net = null;
}

const FD_PAIR_CALLS = new Set(["pipe", "pipe2", "socketpair"]);
const ID_CALLS = new Set(["setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid"]);

/** What a call not enriched may have changed in the tables, made unknown. */
function forgetEffects(task: Task, c: CompleteCall, exit: RecordEvent | null): void {
  const { call, words, retval } = c;
  const files = task.files.fds;
  const ok = retval !== null && retval >= 0;
  if (callSpec(call).returnsFd && ok) files.delete(retval);
  if (call === "close" && words![0] !== null) files.delete(words![0]!);
  if ((call === "dup2" || call === "dup3") && words![1] !== null) files.delete(words![1]!);
  if (call === "fcntl" && ok) files.delete(retval);
  if (call === "close_range" && ok) files.clear();
  if (FD_PAIR_CALLS.has(call) && exit?.blob && exit.blob.length >= 8) {
    const view = new DataView(exit.blob.buffer, exit.blob.byteOffset, 8);
    files.delete(view.getInt32(0, true));
    files.delete(view.getInt32(4, true));
  }
  if ((call === "chdir" || call === "fchdir") && ok) task.fs.cwd = null;
  if ((call === "execve" || call === "execveat") && retval === 0) {
    task.proc.exe = null;
    // which fds were close-on-exec is still known; what was opened unseen is already forgotten
    task.files.closeOnExec();
  }
  if (ID_CALLS.has(call) && ok) {
    task.proc.uid = null;
    task.proc.gid = null;
    task.proc.euid = null;
    task.proc.egid = null;
  }
}
