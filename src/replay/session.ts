/**
 * The replay stage: lines in order → EnhancedEvents, merging unfinished/resumed halves, keeping the process
 * and fd tables, and accounting for every line. Pure: no I/O; records are handed to the caller's array.
 */
import {
  type CompleteCall,
  cloneFlags,
  type EntryFd,
  enrichCall,
  enterCall,
  isCloneCall,
} from "./enrich/enrich.ts";
import { type CallLine, type ParsedLine, parseLine, type TimeForm } from "./parse.ts";
import { type ArgList, joinHalves, NO_ARGS } from "./scan.ts";
import type { EnhancedEvent } from "./schema.ts";
import { CLONE_THREAD, ProcessTable } from "./tables.ts";

export interface ReplayCounts {
  lines: number;
  events: number;
  merged: number;
  stateOnly: number;
  unparsed: number;
  /** Line numbers (1-based) of the first unparsed lines. */
  firstUnparsed: number[];
}

export interface ReplayOptions {
  /** The tracee's pid when the trace has no pid prefixes and it is known (`strace -ff -o x` → x.PID). */
  soleTid?: number | null;
  /** How many unparsed line numbers to keep. */
  keepUnparsed?: number;
}

/** The first half of a call, waiting for `<... X resumed>`. */
interface Pending {
  call: string;
  /** Its arguments so far, and where their text is in `args.src`. */
  args: ArgList;
  argStart: number;
  argEnd: number;
  ts: number;
  raw: string;
  /** The fd the call acts on, as it was when the call began (another thread may reuse the number). */
  entry: EntryFd | null;
}

/** Calls waiting for their second half, by tid; the clones among them apart (a new tid looks only at those). */
class PendingCalls {
  readonly all = new Map<number, Pending>();
  readonly clones = new Map<number, Pending>();

  get(tid: number): Pending | undefined {
    return this.all.get(tid);
  }

  /** The tid must have nothing pending (callers flush it first), so both maps keep arrival order. */
  set(tid: number, p: Pending): void {
    this.all.set(tid, p);
    if (isCloneCall(p.call)) this.clones.set(tid, p);
  }

  delete(tid: number): void {
    if (this.all.delete(tid)) this.clones.delete(tid);
  }
}

/** While a prefix-less trace has not yet revealed its pid, records wait (bounded) so they can get it. */
const MAX_HELD = 4096;
/** The tid used for a prefix-less tracee until its real id shows up (set_tid_address, getpid, …). */
const UNKNOWN_TID = 0;
const HOUR_US = 3_600_000_000;
const DAY_US = 86_400_000_000;

export class ReplaySession {
  readonly counts: ReplayCounts = {
    lines: 0,
    events: 0,
    merged: 0,
    stateOnly: 0,
    unparsed: 0,
    firstUnparsed: [],
  };
  private readonly table = new ProcessTable();
  private readonly pending = new PendingCalls();
  private readonly keepUnparsed: number;
  /** The parser's scratch space, reused line after line. */
  private readonly commas: number[] = [];
  /** The last record, kept back so `-k` stack lines that follow can join its raw_line. */
  private last: EnhancedEvent | null = null;
  /** Records waiting for the prefix-less tracee's pid; null when nothing is waiting. */
  private held: EnhancedEvent[] | null = null;
  private soleTid: number | null;
  /** A line a diagnostic cut in two (`vfork(strace: Process N attached`), waiting for its rest. */
  private fragment: { text: string; raw: string } | null = null;
  // time keeping
  private base: number | null = null;
  private lastClock = -1;
  private dayOffset = 0;
  private relativeNow = 0;
  private lastTs = 0;

  constructor(options: ReplayOptions = {}) {
    this.soleTid = options.soleTid ?? null;
    this.keepUnparsed = options.keepUnparsed ?? 10;
  }

  /** Feeds one line (without `\n`); finished records are pushed onto `out`. */
  push(line: string, lineNo: number, out: EnhancedEvent[]): void {
    this.counts.lines++;
    if (this.fragment !== null) {
      const frag = this.fragment;
      this.fragment = null;
      const joined = parseLine(frag.text + line, this.commas);
      if (joined.kind === "call") {
        this.counts.merged++;
        this.handle(joined, `${frag.raw}\n${line}`, lineNo, out);
        return;
      }
      // the rest never came: the diagnostic line stands alone
      this.counts.stateOnly++;
    }
    const parsed = parseLine(line, this.commas);
    if (parsed.kind === "stack") {
      if (this.last !== null) {
        this.last.raw_line += `\n${line}`;
        this.counts.merged++;
      } else {
        this.counts.stateOnly++;
      }
      return;
    }
    this.handle(parsed, line, lineNo, out);
  }

  /** End of input: calls still waiting for their second half are written as cut (retval null). */
  finish(out: EnhancedEvent[]): void {
    if (this.fragment !== null) {
      this.counts.stateOnly++;
      this.fragment = null;
    }
    for (const tid of [...this.pending.all.keys()].sort((a, b) => a - b)) this.flushPending(tid, out);
    this.release(out, true);
  }

  /** The input stops here (--strict): every record counted so far is handed on, also those kept back. */
  flushRecords(out: EnhancedEvent[]): void {
    this.release(out, true);
  }

  private handle(p: ParsedLine, raw: string, lineNo: number, out: EnhancedEvent[]): void {
    switch (p.kind) {
      case "unparsed":
      case "stack":
        this.unparsed(lineNo);
        return;
      case "continuation":
        this.unparsed(lineNo);
        return;
      case "call":
        this.handleCall(p, raw, out);
        return;
      case "diagnostic": {
        if (p.fragment !== "") {
          // the call text before the diagnostic continues on the next line
          this.fragment = { text: raw.slice(0, raw.length - p.text.length), raw };
        } else {
          this.counts.stateOnly++;
        }
        if (p.attached !== null && this.table.tasks.size === 0 && this.soleTid === null) {
          this.learnSoleTid(p.attached, out);
        }
        this.timeOf(p.time, p.timeForm);
        return;
      }
      case "signal": {
        this.counts.stateOnly++;
        this.timeOf(p.time, p.timeForm);
        // si_uid is the sender's real uid: certain for a sender we trace
        const pidAt = p.info.indexOf("si_pid=");
        const uidAt = p.info.indexOf("si_uid=");
        if (pidAt >= 0 && uidAt >= 0) {
          const sender = this.table.tasks.get(Number.parseInt(p.info.slice(pidAt + 7), 10));
          const uid = Number.parseInt(p.info.slice(uidAt + 7), 10);
          if (sender && sender.proc.uid === null && Number.isInteger(uid)) sender.proc.uid = uid;
        }
        return;
      }
      case "exited":
      case "killed": {
        this.counts.stateOnly++;
        this.timeOf(p.time, p.timeForm);
        const tid = this.tidOf(p.tid);
        this.flushPending(tid, out);
        this.table.remove(tid);
        return;
      }
      case "superseded": {
        this.counts.stateOnly++;
        this.timeOf(p.time, p.timeForm);
        // exec from a non-leader thread: the leader's pending call dies, the exec'ing thread takes its pid
        const leader = this.tidOf(p.tid);
        this.flushPending(leader, out);
        const moved = this.pending.get(p.oldTid);
        this.pending.delete(p.oldTid);
        if (moved) this.pending.set(leader, moved);
        if (this.table.tasks.has(p.oldTid)) {
          this.table.remove(leader);
          this.table.rename(p.oldTid, leader);
        }
        return;
      }
    }
  }

  private unparsed(lineNo: number): void {
    this.counts.unparsed++;
    if (this.counts.firstUnparsed.length < this.keepUnparsed) this.counts.firstUnparsed.push(lineNo);
  }

  /** Absolute µs → µs since the trace start; never backwards across midnight. */
  private timeOf(time: number | null, form: TimeForm): number {
    if (time === null) return this.lastTs;
    let abs: number;
    if (form === "clock") {
      if (this.lastClock >= 0 && time + HOUR_US < this.lastClock) this.dayOffset += DAY_US;
      this.lastClock = time;
      abs = time + this.dayOffset;
    } else if (form === "relative") {
      this.relativeNow += time;
      abs = this.relativeNow;
    } else {
      abs = time;
    }
    if (this.base === null) this.base = abs;
    const ts = abs - this.base;
    this.lastTs = Math.max(ts, 0);
    return this.lastTs;
  }

  /** The tid a line belongs to; a prefix-less line belongs to the one live tracee. */
  private tidOf(tid: number | null): number {
    if (tid !== null) return tid;
    if (this.table.tasks.size === 1) {
      const only = this.table.tasks.keys().next().value as number;
      if (only !== UNKNOWN_TID) this.soleTid = only;
      return only;
    }
    if (this.soleTid !== null) return this.soleTid;
    if (this.held === null && !this.table.tasks.has(UNKNOWN_TID)) this.held = [];
    return UNKNOWN_TID;
  }

  private handleCall(p: CallLine, raw: string, out: EnhancedEvent[]): void {
    const ts = this.timeOf(p.time, p.timeForm);
    const tid = this.callerOf(p, out);
    if (p.resumed) this.secondHalf(p, tid, ts, raw, out);
    else if (p.finished) this.wholeCall(p, tid, ts, raw, out);
    else this.firstHalf(p, tid, ts, raw, out);
  }

  /** The tid a call line belongs to, placed in the tables if it is new. */
  private callerOf(p: CallLine, out: EnhancedEvent[]): number {
    let tid = this.tidOf(p.tid);
    if (
      p.resumed &&
      p.tid !== null &&
      !this.table.tasks.has(tid) &&
      this.pending.get(UNKNOWN_TID)?.call === p.call
    ) {
      // a prefix-less tracee waiting for this very call is this tid (stderr output with -f)
      this.learnSoleTid(tid, out);
      tid = p.tid;
    }
    if (!this.table.tasks.has(tid)) this.placeNewTask(tid);
    return tid;
  }

  private wholeCall(p: CallLine, tid: number, ts: number, raw: string, out: EnhancedEvent[]): void {
    this.counts.events++;
    this.emit(
      {
        tid,
        ts,
        call: p.call,
        args: p.args,
        retval: p.retval,
        errno: p.errno,
        retAnnotation: p.retAnnotation,
        latency: p.latency,
        raw,
        entry: null,
      },
      out,
    );
  }

  /** `X(… <unfinished ...>`: kept until its other half comes, its fd resolved now. */
  private firstHalf(p: CallLine, tid: number, ts: number, raw: string, out: EnhancedEvent[]): void {
    this.flushPending(tid, out);
    const entry = enterCall(this.table, tid, p.call, p.args);
    this.pending.set(tid, {
      call: p.call,
      args: p.args,
      argStart: p.argStart,
      argEnd: p.argEnd,
      ts,
      raw,
      entry,
    });
  }

  /** `<... X resumed>`: joined to its first half, or a call whose first half the trace does not have. */
  private secondHalf(p: CallLine, tid: number, ts: number, raw: string, out: EnhancedEvent[]): void {
    const first = this.pending.get(tid);
    if (first !== undefined && first.call === p.call) {
      this.counts.merged++;
      if (!p.finished) {
        first.args = joinHalves(first.args, first.argStart, first.argEnd, p.args, p.argStart, p.argEnd);
        first.argStart = 0;
        first.argEnd = first.args.src.length;
        first.raw += `\n${raw}`;
        return;
      }
      this.pending.delete(tid);
      this.counts.events++;
      const latency = p.latency ?? (p.time === null ? null : Math.max(0, ts - first.ts));
      this.emit(
        {
          tid,
          ts: first.ts,
          call: p.call,
          args: joinHalves(first.args, first.argStart, first.argEnd, p.args, p.argStart, p.argEnd),
          retval: p.retval,
          errno: p.errno,
          retAnnotation: p.retAnnotation,
          latency,
          raw: `${first.raw}\n${raw}`,
          entry: first.entry,
        },
        out,
      );
      return;
    }
    // no first half (trace started mid-call, or the half was lost): argument positions unknown
    if (!p.finished) {
      // another call of this tid still waiting has lost its second half: it is written as cut
      this.flushPending(tid, out);
      this.pending.set(tid, { call: p.call, args: NO_ARGS, argStart: 0, argEnd: 0, ts, raw, entry: null });
      return;
    }
    this.counts.events++;
    this.emit(
      {
        tid,
        ts,
        call: p.call,
        args: NO_ARGS,
        retval: p.retval,
        errno: p.errno,
        retAnnotation: p.retAnnotation,
        latency: p.latency,
        raw,
        entry: null,
      },
      out,
    );
  }

  /**
   * A tid seen for the first time. If exactly one clone is in flight, the tid is its child (strace can show
   * the child's first lines before the parent's clone returns), so it gets the right process and tables.
   */
  private placeNewTask(tid: number): void {
    let parent: number | null = null;
    let flags = 0;
    let candidates = 0;
    for (const [ptid, pend] of this.pending.clones) {
      candidates++;
      const f = cloneFlags(pend.call, pend.args.text());
      const ptask = this.table.tasks.get(ptid);
      // several clones in flight agree when they share a process and the thread/process choice
      if (parent !== null) {
        const prev = this.table.tasks.get(parent);
        if (prev?.proc !== ptask?.proc || (f & CLONE_THREAD) !== (flags & CLONE_THREAD))
          return void this.table.task(tid);
      }
      parent = ptid;
      flags = f;
    }
    if (candidates === 0 || parent === null || (candidates > 1 && (flags & CLONE_THREAD) === 0)) {
      this.table.task(tid);
      return;
    }
    const child = this.table.spawn(this.table.task(parent), tid, flags);
    // a process child's link is confirmed (and corrected) when the clone returns
    child.linked = candidates === 1;
  }

  private flushPending(tid: number, out: EnhancedEvent[]): void {
    const p = this.pending.get(tid);
    if (p === undefined) return;
    this.pending.delete(tid);
    this.counts.events++;
    this.emit(
      {
        tid,
        ts: p.ts,
        call: p.call,
        args: p.args,
        retval: null,
        errno: null,
        retAnnotation: null,
        latency: null,
        raw: p.raw,
        entry: p.entry,
      },
      out,
    );
  }

  private emit(c: CompleteCall, out: EnhancedEvent[]): void {
    const parent = this.table.tasks.get(c.tid);
    const rec = enrichCall(this.table, c);
    if (parent && rec.retval !== null && rec.retval > 0 && isCloneCall(c.call)) {
      this.table.spawn(parent, rec.retval, cloneFlags(c.call, c.args.text()));
    }
    if (c.tid === UNKNOWN_TID && this.held !== null && rec.retval !== null && rec.retval > 0) {
      // calls that return the caller's own id reveal the prefix-less tracee
      if (c.call === "set_tid_address" || c.call === "gettid" || c.call === "getpid")
        this.learnSoleTid(rec.retval, out, rec);
    }
    if (this.last !== null) this.release1(this.last, out);
    this.last = rec;
  }

  private learnSoleTid(tid: number, out: EnhancedEvent[], current?: EnhancedEvent): void {
    this.soleTid = tid;
    if (this.table.tasks.has(UNKNOWN_TID)) this.table.rename(UNKNOWN_TID, tid);
    const pend = this.pending.get(UNKNOWN_TID);
    if (pend) {
      this.pending.delete(UNKNOWN_TID);
      this.flushPending(tid, out);
      this.pending.set(tid, pend);
    }
    const fix = (r: EnhancedEvent): void => {
      if (r.pid === UNKNOWN_TID) r.pid = tid;
      if (r.tid === UNKNOWN_TID) r.tid = tid;
      if (r.ppid === UNKNOWN_TID) r.ppid = tid;
    };
    if (this.held !== null) for (const r of this.held) fix(r);
    if (this.last !== null) fix(this.last);
    if (current) fix(current);
    this.release(out, false);
  }

  private release1(rec: EnhancedEvent, out: EnhancedEvent[]): void {
    if (this.held !== null && this.soleTid === null) {
      this.held.push(rec);
      if (this.held.length >= MAX_HELD) this.release(out, false, true);
      return;
    }
    if (this.held !== null) this.release(out, false);
    out.push(rec);
  }

  /** Hands held records on; at the end (or when too many wait) the unknown pid stays 0. */
  private release(out: EnhancedEvent[], all: boolean, giveUp = false): void {
    if (this.held !== null) {
      for (const r of this.held) out.push(r);
      this.held = giveUp || this.soleTid !== null ? null : [];
      if (giveUp) this.soleTid = UNKNOWN_TID;
    }
    if (all && this.last !== null) {
      out.push(this.last);
      this.last = null;
    }
  }
}
