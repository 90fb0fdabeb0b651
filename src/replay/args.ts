/** Argument and return-value text → values: numbers, fd annotations, decoded strings, sockaddrs. */
import { SYMBOLS } from "./constants.ts";
import { RangeTable } from "./range-table.ts";
import type { ArgList } from "./scan.ts";
import type { Net } from "./schema.ts";
import { utf8OrEscapes } from "./text.ts";

const QUOTE = 34;
const BACKSLASH = 92;
const LT = 60;
const GT = 62;
const MINUS = 45;
const SPACE = 32;

/**
 * A number as strace prints it: decimal, `-1`, `0x…` hex, `0…` octal. Words of 2^63 and above are read as
 * signed 64-bit (`0xffffffffffffffff` → -1); a value that is not exact in a double is NaN.
 */
export function parseNumber(s: string, a = 0, b = s.length): number {
  if (a >= b) return Number.NaN;
  let neg = false;
  if (s.charCodeAt(a) === MINUS) {
    neg = true;
    a++;
    if (a >= b) return Number.NaN;
  }
  let v = 0;
  if (s.charCodeAt(a) === 48 && b - a > 1) {
    const x = s.charCodeAt(a + 1);
    if (x === 120) {
      // hex
      if (b - a - 2 > 13) return bigHex(s.slice(a + 2, b), neg);
      for (let i = a + 2; i < b; i++) {
        const c = s.charCodeAt(i);
        let d: number;
        if (c >= 48 && c <= 57) d = c - 48;
        else if (c >= 97 && c <= 102) d = c - 87;
        else if (c >= 65 && c <= 70) d = c - 55;
        else return Number.NaN;
        v = v * 16 + d;
      }
      if (a + 2 === b) return Number.NaN;
      return neg ? -v : v;
    }
    for (let i = a + 1; i < b; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 55) return Number.NaN;
      v = v * 8 + (c - 48);
    }
    return neg ? -v : v;
  }
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return Number.NaN;
    v = v * 10 + (c - 48);
  }
  if (!Number.isSafeInteger(v)) return Number.NaN;
  return neg ? -v : v;
}

function bigHex(digits: string, neg: boolean): number {
  if (!/^[0-9a-fA-F]{1,16}$/.test(digits)) return Number.NaN;
  const v = BigInt.asIntN(64, BigInt(`0x${digits}`));
  const out = Number(neg ? -v : v);
  return Number.isSafeInteger(out) ? out : Number.NaN;
}

/** The constants by name, looked up by a range of the line (no string made for the lookup). */
const SYMBOL_TABLE = new RangeTable<number>(SYMBOLS.size);
for (const [name, value] of SYMBOLS) SYMBOL_TABLE.set(name, value);

/** A flag set or constant in s[a..b): `O_RDONLY|O_CLOEXEC`, `SIGCHLD`, `CLONE_VM|0x400`; NaN for an unknown name. */
function parseSymbolic(s: string, a: number, b: number): number {
  let total = 0;
  let start = a;
  for (;;) {
    let bar = s.indexOf("|", start);
    if (bar < 0 || bar > b) bar = b;
    let v = SYMBOL_TABLE.get(s, start, bar);
    if (v === undefined) {
      v = parseNumber(s, start, bar);
      if (Number.isNaN(v)) return Number.NaN;
    }
    // flag bits are disjoint, so a sum is their OR without 32-bit overflow (CLONE_IO is bit 31)
    total += v;
    if (bar === b) return total;
    start = bar + 1;
  }
}

/** The annotation text of `3</etc/passwd>` (`/etc/passwd`), `5</memfd:x>(deleted)` (`/memfd:x (deleted)`). */
export function annotationOf(s: string): string | null {
  const lt = s.indexOf("<");
  if (lt <= 0) return null;
  if (s.endsWith(">(deleted)")) return `${s.slice(lt + 1, s.length - 10)} (deleted)`;
  if (s.charCodeAt(s.length - 1) !== GT) return null;
  return s.slice(lt + 1, s.length - 1);
}

/** The fd annotation of argument i, looked for before any text is cut out (most arguments have none). */
export function argAnnotation(args: ArgList, i: number): string | null {
  if (!args.annotated || i >= args.length) return null;
  const a = args.start(i);
  const b = args.end(i);
  const lt = args.src.indexOf("<", a + 1);
  return lt < 0 || lt >= b ? null : annotationOf(args.src.slice(a, b));
}

/**
 * The constants and the flag sets already seen in a trace (`O_RDONLY|O_CLOEXEC` → 524288: a trace repeats a
 * few hundred), in one table so a word is looked up once.
 */
export class FlagSetCache {
  /** past this many flag sets, new ones are parsed each time (hostile input stays bounded) */
  private readonly table = new RangeTable<number | null>(SYMBOLS.size + 4096);

  constructor() {
    for (const [name, value] of SYMBOLS) this.table.set(name, value);
  }

  get(s: string, a: number, b: number): number | null | undefined {
    return this.table.get(s, a, b);
  }

  set(s: string, a: number, b: number, value: number | null): void {
    this.table.set(s.slice(a, b), value);
  }
}

/**
 * The word of the argument in s[a..b): a number, constant or flag set; `null` for strings, structs, arrays and
 * anything whose numeric value is not in the text. `name=value` (clone) and `/* comment *\/` (-X verbose)
 * are handled.
 */
export function argValueAt(s: string, a: number, b: number, flagSets?: FlagSetCache): number | null {
  if (a >= b) return null;
  const c = s.charCodeAt(a);
  if (c === QUOTE || c === 91 || c === 123 || c === 126) return null;
  // the word ends at a space (` /* comment */`) or at `<` (an fd annotation)
  let end = a;
  let eq = -1;
  while (end < b) {
    const d = s.charCodeAt(end);
    if (d === SPACE || d === LT) break;
    if (d === 61 && eq < 0) eq = end;
    end++;
  }
  if ((c >= 48 && c <= 57) || c === MINUS) {
    const v = parseNumber(s, a, end);
    return Number.isNaN(v) ? null : v;
  }
  const wa = eq > a ? eq + 1 : a;
  const known = flagSets !== undefined ? flagSets.get(s, wa, end) : SYMBOL_TABLE.get(s, wa, end);
  if (known !== undefined) return known;
  const bar = s.indexOf("|", wa);
  if (bar < 0 || bar >= end) {
    const v = parseNumber(s, wa, end);
    return Number.isNaN(v) ? null : v;
  }
  const v = parseSymbolic(s, wa, end);
  const value = Number.isNaN(v) ? null : v;
  flagSets?.set(s, wa, end, value);
  return value;
}

/** One argument's word (see argValueAt). */
export const argValue = (s: string, flagSets?: FlagSetCache): number | null =>
  argValueAt(s, 0, s.length, flagSets);

/** The six argument words. */
export function argWords(args: ArgList, flagSets?: FlagSetCache): (number | null)[] {
  const out: (number | null)[] = [null, null, null, null, null, null];
  const n = Math.min(args.length, 6);
  for (let i = 0; i < n; i++) out[i] = argValueAt(args.src, args.start(i), args.end(i), flagSets);
  return out;
}

/** The return value: `retval` (null for `?`), `errno`, the fd annotation, the decoration in parentheses. */
export interface ReturnValue {
  retval: number | null;
  errno: string | null;
  annotation: string | null;
}

export function parseReturn(text: string): ReturnValue {
  if (text.charCodeAt(0) === 63) {
    // `?` or `? ERESTARTSYS (To be restarted…)`
    const e = text.length > 2 ? text.slice(2).split(" ")[0] : null;
    return { retval: null, errno: e?.startsWith("E") ? e : null, annotation: null };
  }
  let sp = text.indexOf(" ");
  if (sp < 0) sp = text.length;
  let word = text.slice(0, sp);
  let annotation: string | null = null;
  const lt = word.indexOf("<");
  if (lt > 0) {
    // the annotation may contain spaces: take it whole up to its last `>`
    const gt = text.lastIndexOf(">");
    annotation = text.slice(lt + 1, gt);
    sp = gt + 1;
    // `3</tmp/#123>(deleted)`, as annotationOf reads it in arguments
    if (text.startsWith("(deleted)", sp)) {
      annotation += " (deleted)";
      sp += 9;
    }
    word = word.slice(0, lt);
  }
  const v = parseNumber(word);
  const retval = Number.isNaN(v) ? null : v;
  let errno: string | null = null;
  if (retval !== null && retval < 0 && sp < text.length) {
    const rest = text.slice(sp + 1);
    const e = rest.split(" ")[0] ?? "";
    if (e.charCodeAt(0) === 69) errno = e;
  }
  return { retval, errno, annotation };
}

const hexDigit = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;

/**
 * Decodes a C-escaped strace string body (without quotes): `\n`, `\"`, `\\`, `\76`, `\x2f`. Escaped bytes
 * are bytes: `\303\251` is "é"; bytes that are not UTF-8 stay as `\xNN`.
 */
export function decodeEscapes(s: string): string {
  if (s.indexOf("\\") < 0) return s;
  let out = "";
  // escaped bytes of 0x80 and above, read as UTF-8 together once the run ends
  let high: number[] | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let v: number;
    if (c !== BACKSLASH) {
      v = -1;
    } else {
      const d = s.charCodeAt(++i);
      if (Number.isNaN(d)) break;
      if (d === 110) v = 10;
      else if (d === 116) v = 9;
      else if (d === 114) v = 13;
      else if (d === 118) v = 11;
      else if (d === 102) v = 12;
      else if (d === 120 && hexDigit(s.charCodeAt(i + 1)) >= 0 && hexDigit(s.charCodeAt(i + 2)) >= 0) {
        v = hexDigit(s.charCodeAt(i + 1)) * 16 + hexDigit(s.charCodeAt(i + 2));
        i += 2;
      } else if (d >= 48 && d <= 55) {
        v = d - 48;
        for (let k = 0; k < 2 && s.charCodeAt(i + 1) >= 48 && s.charCodeAt(i + 1) <= 55; k++)
          v = v * 8 + (s.charCodeAt(++i) - 48);
      } else v = d;
    }
    if (v >= 0x80 && v <= 0xff) {
      high ??= [];
      high.push(v);
      continue;
    }
    if (high !== null) {
      out += utf8OrEscapes(Uint8Array.from(high));
      high = null;
    }
    out += v < 0 ? s[i] : String.fromCharCode(v);
  }
  if (high !== null) out += utf8OrEscapes(Uint8Array.from(high));
  return out;
}

/** A complete quoted string argument → its text; null for non-strings and `"…"...` truncated ones. */
export function stringArg(s: string | undefined): string | null {
  if (s === undefined || s.length < 2 || s.charCodeAt(0) !== QUOTE) return null;
  if (s.charCodeAt(s.length - 1) !== QUOTE) return null;
  return decodeEscapes(s.slice(1, -1));
}

/** The value of `key=` inside a struct text (`{sa_family=AF_INET, sin_port=htons(80), …}`). */
export function fieldOf(text: string, key: string): string | null {
  let at = text.indexOf(`${key}=`);
  while (at > 0) {
    const prev = text.charCodeAt(at - 1);
    if (prev === 123 || prev === SPACE) break;
    at = text.indexOf(`${key}=`, at + 1);
  }
  if (at < 0) return null;
  const start = at + key.length + 1;
  let depth = 0;
  let i = start;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== QUOTE) i += text.charCodeAt(i) === BACKSLASH ? 2 : 1;
    } else if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      if (depth === 0) break;
      depth--;
    } else if (c === 44 && depth === 0) break;
  }
  return text.slice(start, i);
}

/** A sockaddr struct → family, address and port (`{sa_family=AF_INET6, sin6_port=htons(8080), …}`). */
export function parseSockaddr(
  text: string,
): { family: string; addr: string | null; port: number | null } | null {
  if (text.charCodeAt(0) !== 123) return null;
  const family = fieldOf(text, "sa_family");
  if (!family) return null;
  if (family === "AF_INET") {
    const port = fieldOf(text, "sin_port");
    const addr = fieldOf(text, "sin_addr");
    return { family, addr: addr ? quotedIn(addr) : null, port: port ? htonsValue(port) : null };
  }
  if (family === "AF_INET6") {
    const port = fieldOf(text, "sin6_port");
    const pton = text.indexOf("inet_pton(AF_INET6, ");
    const addr = pton >= 0 ? quotedIn(text.slice(pton + 20)) : null;
    return { family, addr, port: port ? htonsValue(port) : null };
  }
  if (family === "AF_UNIX") {
    const path = fieldOf(text, "sun_path");
    if (path === null) return { family, addr: null, port: null };
    // abstract sockets print as @"name"
    const abstract = path.startsWith("@");
    const body = stringArg(abstract ? path.slice(1) : path);
    return { family, addr: body === null ? null : abstract ? `@${body}` : body, port: null };
  }
  if (family === "AF_NETLINK") {
    const pid = fieldOf(text, "nl_pid");
    return { family, addr: null, port: pid === null ? null : nullIfNaN(parseNumber(pid)) };
  }
  return { family, addr: null, port: null };
}

function quotedIn(s: string): string | null {
  const a = s.indexOf('"');
  const b = a < 0 ? -1 : s.indexOf('"', a + 1);
  return a < 0 || b < 0 ? null : s.slice(a + 1, b);
}

function htonsValue(s: string): number | null {
  const inner = s.startsWith("htons(") ? s.slice(6, -1) : s;
  return nullIfNaN(parseNumber(inner));
}

const nullIfNaN = (v: number): number | null => (Number.isNaN(v) ? null : v);

/**
 * A `-yy` socket annotation → net fields: `TCP:[127.0.0.1:46172->127.0.0.1:18765]`, `UDPv6:[[::1]:45042]`,
 * `UNIX-STREAM:[12508->12509]`, `NETLINK:[ROUTE:1234]`. Plain `socket:[123]` carries nothing but the kind.
 */
export function netFromAnnotation(a: string): Net | null {
  const colon = a.indexOf(":[");
  if (colon <= 0 || !a.endsWith("]")) return null;
  const kind = a.slice(0, colon);
  const body = a.slice(colon + 2, -1);
  let family: string | null;
  let protocol: string | null;
  if (kind === "TCP" || kind === "UDP" || kind === "UDPLITE" || kind === "SCTP" || kind === "MPTCP") {
    family = "AF_INET";
    protocol = kind;
  } else if (kind.endsWith("v6") && kind !== "socket") {
    family = "AF_INET6";
    protocol = kind.slice(0, -2);
  } else if (kind.startsWith("UNIX")) {
    family = "AF_UNIX";
    protocol = kind.length > 5 ? kind.slice(5) : null;
  } else if (kind === "NETLINK") {
    family = "AF_NETLINK";
    protocol = body.split(":")[0] ?? null;
    return { family, protocol, local_addr: null, local_port: null, remote_addr: null, remote_port: null };
  } else if (kind === "socket") {
    return null;
  } else {
    family = null;
    protocol = kind;
  }
  const net: Net = {
    family,
    protocol,
    local_addr: null,
    local_port: null,
    remote_addr: null,
    remote_port: null,
  };
  if (family === "AF_UNIX") {
    // `12508->12509` (inodes) or `12508,"/run/x.sock"` or `12508->12509,"/path"`
    const q = body.indexOf(',"');
    if (q >= 0) {
      const path = decodeEscapes(body.slice(q + 2, body.endsWith('"') ? -1 : undefined));
      net.local_addr = path;
    }
    return net;
  }
  const arrow = body.indexOf("->");
  const local = arrow >= 0 ? body.slice(0, arrow) : body;
  const remote = arrow >= 0 ? body.slice(arrow + 2) : null;
  const l = splitHostPort(local);
  if (l) [net.local_addr, net.local_port] = l;
  if (remote !== null) {
    const r = splitHostPort(remote);
    if (r) [net.remote_addr, net.remote_port] = r;
  }
  return net;
}

function splitHostPort(s: string): [string, number] | null {
  // `127.0.0.1:80` or `[::1]:80`; a bare inode number (`12507`) has no endpoint yet
  const c = s.lastIndexOf(":");
  if (c <= 0) return null;
  let host = s.slice(0, c);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = parseNumber(s, c + 1);
  return Number.isNaN(port) ? null : [host, port];
}
