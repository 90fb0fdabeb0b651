/**
 * One strace output line → its parts. A hand-written scanner over char codes: no regex runs per line,
 * so nothing can backtrack on hostile input and the cost is linear in the line length. Arguments are
 * positions in the line, cut out only when asked for; known call names are one string each.
 */
import { parseNumber, parseReturn } from "./args.ts";
import { RangeTable } from "./range-table.ts";
import { type ArgList, argsIn, scanArgs } from "./scan.ts";
import { CALLS } from "./syscalls.ts";

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
  /** The line. Its argument text is src[argStart, argEnd): between `(` and `)`, up to ` <unfinished ...>`,
   * or after `resumed>`. */
  src: string;
  argStart: number;
  argEnd: number;
  /** The arguments split at top-level commas (of this line's part, for a half). */
  args: ArgList;
  /** True for `<... X resumed>` lines. */
  resumed: boolean;
  /** False when the line ends in `<unfinished ...>` (the call's other half comes later). */
  finished: boolean;
  /** The return value (null for `= ?` and while unfinished), its errno and the fd annotation it carries. */
  retval: number | null;
  errno: string | null;
  retAnnotation: string | null;
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

/** Known call names, one string each: found by their place in the line, never cut out of it. */
const CALL_NAMES = new RangeTable<string>(CALLS.size);
for (const name of CALLS.keys()) CALL_NAMES.set(name, name);
const callName = (s: string, a: number, b: number): string => CALL_NAMES.key(s, a, b) ?? s.slice(a, b);

/** Where the digits that start at i end. */
function digitsEnd(s: string, i: number): number {
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d < DIGIT0 || d > DIGIT9) break;
    i++;
  }
  return i;
}

/** The digits s[a..b) as a number. */
function intAt(s: string, a: number, b: number): number {
  let v = 0;
  for (let i = a; i < b; i++) v = v * 10 + (s.charCodeAt(i) - DIGIT0);
  return v;
}

/** Fraction digits s[a..b) (3, 6 or 9 of them) → microseconds. */
function fractionUs(s: string, a: number, b: number): number {
  let us = 0;
  const end = Math.min(b, a + 6);
  for (let i = a; i < end; i++) us = us * 10 + (s.charCodeAt(i) - DIGIT0);
  for (let k = end - a; k < 6; k++) us *= 10;
  return us;
}

/** A call line with its return value read from `RET[ <T>]` at `at` (or none: unfinished). */
function callLine(
  s: string,
  head: LineHead,
  call: string,
  argStart: number,
  argEnd: number,
  args: ArgList,
  resumed: boolean,
  at: number,
  emptyReturn = false,
): CallLine | UnparsedLine {
  const line: CallLine = {
    kind: "call",
    tid: head.tid,
    time: head.time,
    timeForm: head.timeForm,
    call,
    src: s,
    argStart,
    argEnd,
    args,
    resumed,
    finished: at >= 0,
    retval: null,
    errno: null,
    retAnnotation: null,
    latency: null,
  };
  return at < 0 || readReturn(s, at, line) || emptyReturn ? line : UNPARSED;
}

/**
 * Reads `RET[ <T>]` from s[at..]: the -T time comes off the end when present, then the return value, its
 * errno and fd annotation. False when there is no return text.
 */
function readReturn(s: string, at: number, line: CallLine): boolean {
  let end = s.length;
  while (end > at && s.charCodeAt(end - 1) === SPACE) end--;
  let retEnd = end;
  if (end > at && s.charCodeAt(end - 1) === GT) {
    const open = s.lastIndexOf(" <", end);
    if (open >= at) {
      if (s.charCodeAt(open + 2) === 117 && s.startsWith("<unavailable>", open + 1)) retEnd = open;
      else {
        const secsEnd = digitsEnd(s, open + 2);
        if (secsEnd > open + 2 && s.charCodeAt(secsEnd) === DOT) {
          const fracEnd = digitsEnd(s, secsEnd + 1);
          if (fracEnd === end - 1) {
            retEnd = open;
            line.latency = intAt(s, open + 2, secsEnd) * 1_000_000 + fractionUs(s, secsEnd + 1, fracEnd);
          }
        }
      }
    }
  }
  if (retEnd === at) return false;
  let sp = s.indexOf(" ", at);
  if (sp < 0 || sp > retEnd) sp = retEnd;
  let lt = at + 1;
  while (lt < sp && s.charCodeAt(lt) !== LT) lt++;
  if (s.charCodeAt(at) === 63 || lt < sp) {
    // `?`, or an fd annotation (which may contain spaces): the rarer forms, read from the text
    const r = parseReturn(s.slice(at, retEnd));
    line.retval = r.retval;
    line.errno = r.errno;
    line.retAnnotation = r.annotation;
    return true;
  }
  const v = parseNumber(s, at, sp);
  if (Number.isNaN(v)) return true;
  line.retval = v;
  if (v < 0 && sp < retEnd) {
    // `-1 ENOENT (No such file or directory)`
    let e = s.indexOf(" ", sp + 1);
    if (e < 0 || e > retEnd) e = retEnd;
    if (s.charCodeAt(sp + 1) === 69) line.errno = s.slice(sp + 1, e);
  }
  return true;
}

function parseCallBody(
  s: string,
  i: number,
  head: LineHead,
  call: string,
  resumed: boolean,
  commas: number[],
): ParsedLine {
  commas.length = 0;
  const found = scanArgs(s, i, commas, true);
  if (found === -1) return UNPARSED;
  if (found < -1) {
    const end = -2 - found;
    // `<... X resumed> <unfinished ...>) = ?`: cut again by the tracee's death
    const after = end + (s.startsWith(UNFINISHED, end) ? UNFINISHED.length : 14);
    if (s.startsWith(")", after)) {
      const eq = s.indexOf("= ", after);
      if (eq < 0) return UNPARSED;
      // an empty return text is still the call's end here
      return callLine(s, head, call, i, end, argsIn(s, i, end, commas), resumed, eq + 2, true);
    }
    if (after !== s.length && s.slice(after).trim() !== "") return UNPARSED;
    return callLine(s, head, call, i, end, argsIn(s, i, end, commas), resumed, -1);
  }
  const end = found;
  let j = end + 1;
  while (j < s.length && s.charCodeAt(j) === SPACE) j++;
  if (s.charCodeAt(j) !== 61 || s.charCodeAt(j + 1) !== SPACE) return UNPARSED;
  return callLine(s, head, call, i, end, argsIn(s, i, end, commas), resumed, j + 2);
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
    const end = digitsEnd(text, 16);
    if (end > 16 && text.startsWith(" attached", end)) attached = intAt(text, 16, end);
  }
  return { kind: "diagnostic", ...head, attached, text, fragment };
}

/**
 * Parses one line (without its `\n`). Never throws. `commas` is scratch space a caller that parses many
 * lines passes each time (a new array per line costs more than the rest of the scan).
 */
export function parseLine(s: string, commas: number[] = []): ParsedLine {
  const n = s.length;
  if (n === 0) return UNPARSED;
  if (s.charCodeAt(0) === SPACE && s.startsWith(" > ")) return STACK;
  let i = 0;
  while (i < n && s.charCodeAt(i) === SPACE) i++;
  let tid: number | null = null;
  let time: number | null = null;
  let timeForm: TimeForm = "none";

  if (s.charCodeAt(i) === 91 && s.startsWith("[pid ", i)) {
    i += 5;
    while (i < n && s.charCodeAt(i) === SPACE) i++;
    const end = digitsEnd(s, i);
    if (end === i || s.charCodeAt(end) !== 93) return UNPARSED;
    tid = intAt(s, i, end);
    i = end + 1;
    while (i < n && s.charCodeAt(i) === SPACE) i++;
  } else if (isDigit(s.charCodeAt(i))) {
    const end = digitsEnd(s, i);
    if (s.charCodeAt(end) === SPACE) {
      tid = intAt(s, i, end);
      i = end;
      while (i < n && s.charCodeAt(i) === SPACE) i++;
    }
  }

  if (isDigit(s.charCodeAt(i))) {
    const aEnd = digitsEnd(s, i);
    const a = intAt(s, i, aEnd);
    const c = s.charCodeAt(aEnd);
    if (c === COLON) {
      // HH:MM:SS[.frac]
      const mEnd = digitsEnd(s, aEnd + 1);
      if (mEnd === aEnd + 1 || s.charCodeAt(mEnd) !== COLON) return UNPARSED;
      const secEnd = digitsEnd(s, mEnd + 1);
      if (secEnd === mEnd + 1) return UNPARSED;
      let us = 0;
      i = secEnd;
      if (s.charCodeAt(secEnd) === DOT) {
        i = digitsEnd(s, secEnd + 1);
        us = fractionUs(s, secEnd + 1, i);
      }
      const m = intAt(s, aEnd + 1, mEnd);
      const sec = intAt(s, mEnd + 1, secEnd);
      time = ((a * 60 + m) * 60 + sec) * 1_000_000 + us;
      timeForm = "clock";
    } else if (c === DOT) {
      i = digitsEnd(s, aEnd + 1);
      time = a * 1_000_000 + fractionUs(s, aEnd + 1, i);
      // `-r` prints small deltas; `-ttt` prints seconds since the epoch
      timeForm = a >= 100_000_000 ? "epoch" : "relative";
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
      for (let k = i + 5; k < r; k++) if (!isNameChar(s.charCodeAt(k))) return UNPARSED;
      return parseCallBody(s, r + RESUMED.length, head, callName(s, i + 5, r), true, commas);
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
  const parsed = parseCallBody(s, j + 1, head, callName(s, i, j), false, commas);
  if (parsed.kind === "unparsed") {
    // `vfork(strace: Process 7321 attached`: a diagnostic printed into the middle of a call line
    const d = s.indexOf("strace: Process ", j);
    if (d > j) return parseDiagnostic(s, d, head, s.slice(i, d));
  }
  return parsed;
}
