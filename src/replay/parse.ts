import { argsBetween, scanArgs } from "./scan.ts";

/**
 * One strace output line → its parts. A hand-written scanner over char codes: no regex runs per line,
 * so nothing can backtrack on hostile input and the cost is linear in the line length.
 */

/** How the line's timestamp was printed: none, time of day (`-t`, `-tt`, ns), epoch (`-ttt`), delta (`-r`). */
export type TimeForm = "none" | "clock" | "epoch" | "relative";

interface LineHead {
  /** The `[pid N]` / `N  ` prefix; null when the line has none (a sole tracee). */
  tid: number | null;
  /** Microseconds as printed (time of day, epoch or delta); null without a timestamp. */
  time: number | null;
  timeForm: TimeForm;
}

/** A system call line, whole or one half of an unfinished/resumed pair. */
export interface CallLine extends LineHead {
  kind: "call";
  call: string;
  /** Argument text: between `(` and `)`, or up to ` <unfinished ...>`, or after `resumed>`. */
  argText: string;
  /** The arguments split at top-level commas, for a whole line (null for halves). */
  args: string[] | null;
  /** True for `<... X resumed>` lines. */
  resumed: boolean;
  /** False when the line ends in `<unfinished ...>` (the call's other half comes later). */
  finished: boolean;
  /** Text after `= ` without the `-T` time; null when unfinished. */
  retText: string | null;
  /** `-T` duration in µs; null when absent or `<unavailable>`. */
  latency: number | null;
}

export interface SignalLine extends LineHead {
  kind: "signal";
  signal: string;
  /** Text between the braces: `si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=…`. */
  info: string;
}

export interface ExitLine extends LineHead {
  kind: "exited" | "killed";
  /** Exit status, or the signal name for `killed`. */
  status: string;
}

export interface SupersededLine extends LineHead {
  kind: "superseded";
  /** The tid that called execve; after the exec it carries the prefix's pid. */
  oldTid: number;
}

/** `strace: Process N attached|detached`, `strace: …` diagnostics, `[ Process PID=N runs in … mode. ]`. */
export interface DiagnosticLine extends LineHead {
  kind: "diagnostic";
  attached: number | null;
  text: string;
  /** Text of a call the diagnostic interrupted mid-line (`vfork(strace: Process N attached`), else "". */
  fragment: string;
}

/** ` <unfinished ...>` alone: the rest of a line a diagnostic interrupted. */
export interface ContinuationLine extends LineHead {
  kind: "continuation";
  text: string;
}

export interface StackLine {
  kind: "stack";
}

export interface UnparsedLine {
  kind: "unparsed";
}

export type ParsedLine =
  | CallLine
  | SignalLine
  | ExitLine
  | SupersededLine
  | DiagnosticLine
  | ContinuationLine
  | StackLine
  | UnparsedLine;

const SPACE = 32;
const DIGIT0 = 48;
const DIGIT9 = 57;
const DOT = 46;
const COLON = 58;
const LT = 60;
const GT = 62;
const MINUS = 45;

const UNPARSED: UnparsedLine = { kind: "unparsed" };
const STACK: StackLine = { kind: "stack" };
const UNFINISHED = "<unfinished ...>";
const RESUMED = " resumed>";

const isDigit = (c: number): boolean => c >= DIGIT0 && c <= DIGIT9;
const isNameChar = (c: number): boolean =>
  (c >= 97 && c <= 122) || (c >= DIGIT0 && c <= DIGIT9) || c === 95 || (c >= 65 && c <= 90) || c === 63;

/** Scan position shared by the small readers below (one per parsed line, so no tuple per number). */
interface Cursor {
  i: number;
}

/** Reads digits at `c.i` and moves past them; -1 when there are none. */
function readInt(s: string, c: Cursor): number {
  let i = c.i;
  let v = 0;
  const start = i;
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d < DIGIT0 || d > DIGIT9) break;
    v = v * 10 + (d - DIGIT0);
    i++;
  }
  c.i = i;
  return i === start ? -1 : v;
}

/** Fraction digits (3, 6 or 9 of them) at `c.i` → microseconds. */
function readFraction(s: string, c: Cursor): number {
  let i = c.i;
  let us = 0;
  let n = 0;
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d < DIGIT0 || d > DIGIT9) break;
    if (n < 6) us = us * 10 + (d - DIGIT0);
    n++;
    i++;
  }
  for (let k = n; k < 6; k++) us *= 10;
  c.i = i;
  return us;
}

/** Splits `RET[ <T>]` after `= `: the -T time comes off the end when present. */
function splitLatency(s: string, start: number): [string, number | null] {
  let end = s.length;
  while (end > start && s.charCodeAt(end - 1) === SPACE) end--;
  if (end > start && s.charCodeAt(end - 1) === GT) {
    const open = s.lastIndexOf(" <", end);
    if (open >= start) {
      if (s.charCodeAt(open + 2) === 117 && s.startsWith("<unavailable>", open + 1))
        return [s.slice(start, open), null];
      const c: Cursor = { i: open + 2 };
      const secs = readInt(s, c);
      if (secs >= 0 && s.charCodeAt(c.i) === DOT) {
        c.i++;
        const us = readFraction(s, c);
        if (c.i === end - 1) return [s.slice(start, open), secs * 1_000_000 + us];
      }
    }
  }
  return [s.slice(start, end), null];
}

function parseCallBody(s: string, i: number, head: LineHead, call: string, resumed: boolean): ParsedLine {
  const commas: number[] = [];
  const found = scanArgs(s, i, commas, true);
  if (found === -1) return UNPARSED;
  const unfinished = found < -1;
  const end = unfinished ? -2 - found : found;
  const argText = s.slice(i, end);
  if (unfinished) {
    // `<... X resumed> <unfinished ...>) = ?`: cut again by the tracee's death
    const after = end + (s.startsWith(UNFINISHED, end) ? UNFINISHED.length : 14);
    if (s.startsWith(") = ", after) || s.startsWith(")", after)) {
      const eq = s.indexOf("= ", after);
      if (eq < 0) return UNPARSED;
      const [retText, latency] = splitLatency(s, eq + 2);
      return {
        kind: "call",
        tid: head.tid,
        time: head.time,
        timeForm: head.timeForm,
        call,
        argText,
        args: null,
        resumed,
        finished: true,
        retText,
        latency,
      };
    }
    if (after !== s.length && s.slice(after).trim() !== "") return UNPARSED;
    return {
      kind: "call",
      tid: head.tid,
      time: head.time,
      timeForm: head.timeForm,
      call,
      argText,
      args: null,
      resumed,
      finished: false,
      retText: null,
      latency: null,
    };
  }
  let j = end + 1;
  while (j < s.length && s.charCodeAt(j) === SPACE) j++;
  if (s.charCodeAt(j) !== 61 || s.charCodeAt(j + 1) !== SPACE) return UNPARSED;
  const [retText, latency] = splitLatency(s, j + 2);
  if (retText.length === 0) return UNPARSED;
  const args = resumed ? null : argsBetween(s, i, end, commas);
  return {
    kind: "call",
    tid: head.tid,
    time: head.time,
    timeForm: head.timeForm,
    call,
    argText,
    args,
    resumed,
    finished: true,
    retText,
    latency,
  };
}

function parseTrailer(s: string, i: number, head: LineHead): ParsedLine {
  // `+++ exited with 0 +++`, `+++ killed by SIGKILL (core dumped) +++`, `+++ superseded by execve in pid N +++`
  if (!s.endsWith(" +++")) return UNPARSED;
  const body = s.slice(i + 4, s.length - 4);
  if (body.startsWith("exited with ")) {
    const status = body.slice(12);
    return /^\d+$/.test(status) ? { kind: "exited", ...head, status } : UNPARSED;
  }
  if (body.startsWith("killed by ")) {
    const sig = body.slice(10).split(" ")[0] ?? "";
    return sig ? { kind: "killed", ...head, status: sig } : UNPARSED;
  }
  if (body.startsWith("superseded by execve in pid ")) {
    const oldTid = Number(body.slice(28));
    return Number.isInteger(oldTid) ? { kind: "superseded", ...head, oldTid } : UNPARSED;
  }
  return UNPARSED;
}

function parseDiagnostic(s: string, i: number, head: LineHead, fragment: string): DiagnosticLine {
  const text = s.slice(i);
  let attached: number | null = null;
  if (text.startsWith("strace: Process ")) {
    const c: Cursor = { i: 16 };
    const pid = readInt(text, c);
    if (pid >= 0 && text.startsWith(" attached", c.i)) attached = pid;
  }
  return { kind: "diagnostic", ...head, attached, text, fragment };
}

/** Parses one line (without its `\n`). Never throws. */
export function parseLine(s: string): ParsedLine {
  const n = s.length;
  if (n === 0) return UNPARSED;
  if (s.charCodeAt(0) === SPACE && s.startsWith(" > ")) return STACK;
  let i = 0;
  while (i < n && s.charCodeAt(i) === SPACE) i++;
  let tid: number | null = null;
  let time: number | null = null;
  let timeForm: TimeForm = "none";

  const cur: Cursor = { i };
  if (s.charCodeAt(i) === 91 && s.startsWith("[pid ", i)) {
    i += 5;
    while (i < n && s.charCodeAt(i) === SPACE) i++;
    cur.i = i;
    const v = readInt(s, cur);
    if (v < 0 || s.charCodeAt(cur.i) !== 93) return UNPARSED;
    tid = v;
    i = cur.i + 1;
    while (i < n && s.charCodeAt(i) === SPACE) i++;
  } else if (isDigit(s.charCodeAt(i))) {
    const v = readInt(s, cur);
    if (s.charCodeAt(cur.i) === SPACE) {
      tid = v;
      i = cur.i;
      while (i < n && s.charCodeAt(i) === SPACE) i++;
    }
  }

  if (isDigit(s.charCodeAt(i))) {
    cur.i = i;
    const a = readInt(s, cur);
    const c = s.charCodeAt(cur.i);
    if (c === COLON) {
      // HH:MM:SS[.frac]
      cur.i++;
      const m = readInt(s, cur);
      if (m < 0 || s.charCodeAt(cur.i) !== COLON) return UNPARSED;
      cur.i++;
      const sec = readInt(s, cur);
      if (sec < 0) return UNPARSED;
      let us = 0;
      if (s.charCodeAt(cur.i) === DOT) {
        cur.i++;
        us = readFraction(s, cur);
      }
      i = cur.i;
      time = ((a * 60 + m) * 60 + sec) * 1_000_000 + us;
      timeForm = "clock";
    } else if (c === DOT) {
      cur.i++;
      const us = readFraction(s, cur);
      time = a * 1_000_000 + us;
      // `-r` prints small deltas; `-ttt` prints seconds since the epoch
      timeForm = a >= 100_000_000 ? "epoch" : "relative";
      i = cur.i;
    } else {
      return UNPARSED;
    }
    if (s.charCodeAt(i) !== SPACE) return UNPARSED;
    while (i < n && s.charCodeAt(i) === SPACE) i++;
  }

  const head: LineHead = { tid, time, timeForm };
  const c = s.charCodeAt(i);
  if (c === LT) {
    if (s.startsWith("<... ", i)) {
      const r = s.indexOf(RESUMED, i + 5);
      if (r < 0) return UNPARSED;
      const call = s.slice(i + 5, r);
      for (let k = 0; k < call.length; k++) if (!isNameChar(call.charCodeAt(k))) return UNPARSED;
      return parseCallBody(s, r + RESUMED.length, head, call, true);
    }
    if (s.startsWith(UNFINISHED, i) && i > 0) return { kind: "continuation", ...head, text: s };
    return UNPARSED;
  }
  if (c === MINUS) {
    // `--- SIGCHLD {si_signo=…} ---`, `--- stopped by SIGSTOP ---`
    if (!s.startsWith("--- ", i) || !s.endsWith(" ---")) return UNPARSED;
    const body = s.slice(i + 4, n - 4);
    const brace = body.indexOf(" {");
    if (brace > 0 && body.endsWith("}")) {
      return { kind: "signal", ...head, signal: body.slice(0, brace), info: body.slice(brace + 2, -1) };
    }
    return { kind: "signal", ...head, signal: body, info: "" };
  }
  if (c === 43) return s.startsWith("+++ ", i) ? parseTrailer(s, i, head) : UNPARSED;
  if (c === 115 && s.startsWith("strace: ", i)) return parseDiagnostic(s, i, head, "");
  if (c === 91 && s.startsWith("[ Process PID=", i) && s.endsWith(" ]"))
    return parseDiagnostic(s, i, head, "");

  let j = i;
  while (j < n && isNameChar(s.charCodeAt(j))) j++;
  if (j === i || s.charCodeAt(j) !== 40) return UNPARSED;
  const call = s.slice(i, j);
  const parsed = parseCallBody(s, j + 1, head, call, false);
  if (parsed.kind === "unparsed") {
    // `vfork(strace: Process 7321 attached`: a diagnostic printed into the middle of a call line
    const d = s.indexOf("strace: Process ", j);
    if (d > j) return parseDiagnostic(s, d, head, s.slice(i, d));
  }
  return parsed;
}
