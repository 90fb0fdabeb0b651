/**
 * The one scanner of strace argument text: strings, (), [], {} and `<…>` fd annotations are skipped as units
 * and the top-level commas noted. The line parser finds a call's arguments with it; splitArgs splits text
 * already cut out (a merged unfinished/resumed pair, the `[3, 4]` of pipe2).
 */

const SPACE = 32;
const QUOTE = 34;
const BACKSLASH = 92;
const LT = 60;
const GT = 62;
const MINUS = 45;
const UNFINISHED = "<unfinished ...>";
const DETACHED = "<detached ...>";

/** What the scanner does at each ASCII character: most pass (0). */
const PASS = 0;
const STRING = 1;
const ANGLE = 2;
const OPEN = 3;
const CLOSE = 4;
const COMMA = 5;
const CLASS = new Uint8Array(128);
CLASS[QUOTE] = STRING;
CLASS[LT] = ANGLE;
for (const c of "([{") CLASS[c.charCodeAt(0)] = OPEN;
for (const c of ")]}") CLASS[c.charCodeAt(0)] = CLOSE;
CLASS[44] = COMMA;

/**
 * Scans s from i, pushing the index of every top-level comma onto `commas`.
 *
 * In a line (`line` true) it stops at the `)` that closes the arguments and returns its index, or at
 * `<unfinished ...>` (or `<detached ...>`: `strace -p` stopped mid-call) and returns `-2 - index` (one
 * number, no tuple per line); -1 when neither comes. Over argument text alone it runs to the end and
 * returns s.length.
 */
export function scanArgs(s: string, i: number, commas: number[], line: boolean): number {
  let depth = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    const what = c < 128 ? CLASS[c]! : PASS;
    if (what === PASS) {
      i++;
      continue;
    }
    if (what === STRING) {
      // to the closing quote (a native search), past quotes escaped by an odd run of backslashes
      let q = s.indexOf('"', i + 1);
      for (;;) {
        if (q < 0) return line ? -1 : n;
        let b = q - 1;
        while (s.charCodeAt(b) === BACKSLASH) b--;
        if (((q - 1 - b) & 1) === 0) break;
        q = s.indexOf('"', q + 1);
      }
      i = q + 1;
      continue;
    }
    if (what === ANGLE) {
      if (s.charCodeAt(i + 1) === LT) {
        // `1<<CAP_CHOWN|…`: a shift, not the start of an fd annotation
        i += 2;
        continue;
      }
      if (line && depth === 0) {
        const next = s.charCodeAt(i + 1);
        if (next === 117 && s.startsWith(UNFINISHED, i)) return -2 - i;
        if (next === 100 && s.startsWith(DETACHED, i)) return -2 - i;
      }
      // an fd annotation: `3</path>`, `1</dev/null<char 1:3>>`, `5<TCP:[a:1->b:2]>`
      let angle = 1;
      i++;
      while (i < n && angle > 0) {
        const d = s.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === LT) angle++;
        else if (d === GT && s.charCodeAt(i - 1) !== MINUS) angle--;
        i++;
      }
      continue;
    }
    if (what === OPEN) depth++;
    else if (what === CLOSE) {
      if (line && depth === 0) return c === 41 ? i : -1;
      depth--;
    } else if (depth === 0) commas.push(i);
    i++;
  }
  return line ? -1 : n;
}

/**
 * Arguments as strace printed them: where each one starts and ends in `src`, trimmed of spaces. No string
 * is cut out of the line until one is asked for (most are only read as numbers).
 */
export class ArgList {
  constructor(
    readonly src: string,
    /** start and end of each argument, in turn */
    readonly bounds: number[],
    /** false when the text cannot carry strace's -y fd annotations (a rendering of the kernel's values) */
    readonly annotated = true,
  ) {}

  get length(): number {
    return this.bounds.length >> 1;
  }

  start(i: number): number {
    return this.bounds[2 * i]!;
  }

  end(i: number): number {
    return this.bounds[2 * i + 1]!;
  }

  /** All the arguments as text, from the first's start to the last's end. */
  text(): string {
    const n = this.bounds.length;
    return n === 0 ? "" : this.src.slice(this.bounds[0]!, this.bounds[n - 1]!);
  }

  /** Argument i as text; undefined past the last. */
  at(i: number): string | undefined {
    if (2 * i >= this.bounds.length) return undefined;
    return this.src.slice(this.bounds[2 * i]!, this.bounds[2 * i + 1]!);
  }
}

/** A call whose argument positions are unknown (a resumed half without its first). */
export const NO_ARGS = new ArgList("", []);

/** The arguments between `start` and `end` of s, split at the given top-level commas. */
export function argsIn(s: string, start: number, end: number, commas: number[]): ArgList {
  const bounds: number[] = [];
  let a = start;
  for (let k = 0; k <= commas.length; k++) {
    let b = k < commas.length ? commas[k]! : end;
    const next = b + 1;
    while (a < b && s.charCodeAt(a) === SPACE) a++;
    while (b > a && s.charCodeAt(b - 1) === SPACE) b--;
    // a call without arguments has none, not one empty one
    if (k < commas.length || b > a || bounds.length > 0) bounds.push(a, b);
    a = next;
  }
  return new ArgList(s, bounds);
}

/**
 * The arguments of a call printed in two halves, as one list over the two texts joined: the text after
 * `resumed>` continues the first half's. Where the first half's last argument and the second half's first
 * meet they are one argument; if both have text there (never seen from strace) the joined text is split anew.
 */
export function joinHalves(
  first: ArgList,
  firstStart: number,
  firstEnd: number,
  second: ArgList,
  secondStart: number,
  secondEnd: number,
): ArgList {
  const head = first.src.slice(firstStart, firstEnd);
  const text = head + second.src.slice(secondStart, secondEnd);
  const fn = first.bounds.length;
  const sn = second.bounds.length;
  if (fn === 0 && sn === 0) return new ArgList(text, []);
  const lastEmpty = fn > 0 && first.bounds[fn - 1] === first.bounds[fn - 2];
  const firstEmpty = sn > 0 && second.bounds[1] === second.bounds[0];
  if (fn > 0 && sn > 0 && !lastEmpty && !firstEmpty) return splitArgs(text);
  const bounds: number[] = [];
  // the meeting point: an empty side gives way to the other (the second's, when both are empty)
  const keep = fn - (lastEmpty && sn > 0 && !firstEmpty ? 2 : 0);
  for (let k = 0; k < keep; k++) bounds.push(first.bounds[k]! - firstStart);
  const shift = head.length - secondStart;
  const from = fn > 0 && firstEmpty && keep === fn ? 2 : 0;
  for (let k = from; k < sn; k++) bounds.push(second.bounds[k]! + shift);
  return new ArgList(text, bounds);
}

/** Splits argument text at top-level commas (strings, brackets and `<…>` annotations kept whole). */
export function splitArgs(text: string): ArgList {
  const commas: number[] = [];
  const end = scanArgs(text, 0, commas, false);
  return argsIn(text, 0, end, commas);
}
