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
    if (c === QUOTE) {
      i++;
      while (i < n) {
        const d = s.charCodeAt(i);
        if (d === BACKSLASH) i += 2;
        else if (d === QUOTE) break;
        else i++;
      }
    } else if (c === LT) {
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
    } else if (c === 40 || c === 91 || c === 123) {
      depth++;
    } else if (c === 41 || c === 93 || c === 125) {
      if (line && depth === 0) return c === 41 ? i : -1;
      depth--;
    } else if (c === 44 && depth === 0) {
      commas.push(i);
    }
    i++;
  }
  return line ? -1 : n;
}

/** The arguments between `start` and `end`, split at the given top-level commas and trimmed of spaces. */
export function argsBetween(s: string, start: number, end: number, commas: number[]): string[] {
  const out: string[] = [];
  let a = start;
  for (let k = 0; k <= commas.length; k++) {
    let b = k < commas.length ? commas[k]! : end;
    const next = b + 1;
    while (a < b && s.charCodeAt(a) === SPACE) a++;
    while (b > a && s.charCodeAt(b - 1) === SPACE) b--;
    // a call without arguments has none, not one empty one
    if (k < commas.length || b > a || out.length > 0) out.push(s.slice(a, b));
    a = next;
  }
  return out;
}

/** Splits argument text at top-level commas (strings, brackets and `<…>` annotations kept whole). */
export function splitArgs(text: string): string[] {
  const commas: number[] = [];
  const end = scanArgs(text, 0, commas, false);
  return argsBetween(text, 0, end, commas);
}
