/** Wording shared by the actions and the timeline: sizes, counts, command lines. */
import { decodeEscapes } from "../../replay/args.ts";

/** 120 B, 4 KiB, 1.5 MiB — binary units, at most one decimal. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const rounded = value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${rounded} ${units[unit]}`;
}

/** "1 read", "3 reads". */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

/** Seconds with microsecond precision, from the records' µs timestamps. */
export function formatSeconds(us: number): string {
  return (us / 1e6).toFixed(6);
}

/** Mode bits as a person writes them: 0600, 0755. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}

/**
 * The argv strace printed for an execve, from its raw line: `execve("/bin/sh", ["sh", "-c", "…"], …)`.
 * strace's escapes are undone as the replay undoes them; a truncated array ends with "…".
 */
export function execArgv(rawLine: string): string[] | null {
  const open = rawLine.indexOf("[", rawLine.indexOf("("));
  if (open === -1) return null;
  const argv: string[] = [];
  let i = open + 1;
  while (i < rawLine.length) {
    const c = rawLine[i];
    if (c === "]") return argv;
    if (c === '"') {
      const start = ++i;
      while (i < rawLine.length && rawLine[i] !== '"') i += rawLine[i] === "\\" ? 2 : 1;
      let value = decodeEscapes(rawLine.slice(start, i));
      i++;
      // strace marks a string it cut short with `"..."`
      if (rawLine.startsWith("...", i)) {
        value += "…";
        i += 3;
      }
      argv.push(value);
    } else if (rawLine.startsWith("...", i)) {
      argv.push("…");
      i += 3;
    } else if (c === "," || c === " ") {
      i++;
    } else {
      return argv.length > 0 ? argv : null;
    }
  }
  return argv.length > 0 ? argv : null;
}

/** A command line for display: words with spaces or quotes are double-quoted, long lines cut with "…". */
export function formatCommand(path: string, argv: string[] | null, limit = 120): string {
  const words = [path, ...(argv ?? []).slice(1)].map((w) =>
    w === "" || /[\s"'\\$`|&;<>()*?]/.test(w) ? JSON.stringify(w) : w,
  );
  const text = words.join(" ");
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** The longest common directory of two absolute paths ("/usr/lib/a", "/usr/lib/b/c" → "/usr/lib"). */
export function commonDirectory(a: string, b: string): string {
  if (a === b) return a;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  // the common prefix is a directory when it ends where both paths end or continue with "/"
  const whole = (s: string) => i === s.length || s.charCodeAt(i) === 47;
  if (whole(a) && whole(b)) return i === 0 ? "/" : a.slice(0, i);
  const cut = a.lastIndexOf("/", i - 1);
  return cut <= 0 ? "/" : a.slice(0, cut);
}

/** The directory part of an absolute path. */
export function directoryOf(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut <= 0 ? "/" : path.slice(0, cut);
}

/** Signal names strace prints, as the second argument of kill/tgkill, from the raw line. */
export function signalName(rawLine: string): string | null {
  const match = /\b(SIG[A-Z0-9+]+)\b/.exec(rawLine);
  return match ? match[1]! : null;
}
