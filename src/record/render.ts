/**
 * A system call from the kernel → the text strace would print for it (`openat(AT_FDCWD, "/etc/passwd",
 * O_RDONLY|O_CLOEXEC) = 3`), its six argument words, and its return value. The text is the record's raw_line and
 * the argument list the enrichment reads (paths, sockaddrs, fd pairs, struct fields), so replay and record share
 * one enrichment. What the kernel did not read is printed as the pointer it is.
 */
import { constants } from "node:os";
import { SYMBOLS } from "../replay/constants.ts";
import { ArgList } from "../replay/scan.ts";
import { formatAddress } from "../trace/wire/events.ts";
import type { CallInfo } from "./calls.ts";
import { argWord, DATA_STR0, DATA_STR1, RecordFlag, type RecordEvent } from "./events.ts";

/** Linux's errno names by number, with the kernel's restart codes a traced call can return. */
const ERRNO_NAMES: (string | null)[] = new Array<string | null>(517).fill(null);
for (const [name, n] of Object.entries(constants.errno)) if (n < ERRNO_NAMES.length) ERRNO_NAMES[n] ??= name;
ERRNO_NAMES[512] = "ERESTARTSYS";
ERRNO_NAMES[513] = "ERESTARTNOINTR";
ERRNO_NAMES[514] = "ERESTARTNOHAND";
ERRNO_NAMES[515] = "ENOIOCTLCMD";
ERRNO_NAMES[516] = "ERESTART_RESTARTBLOCK";
/** Return values in [-MAX_ERRNO, -1] are errors (include/linux/err.h). */
const MAX_ERRNO = 4095;

export interface ReturnValue {
  /** -1 on error, null when the call did not return (cut) or will be restarted */
  retval: number | null;
  errno: string | null;
  text: string;
}

/** The kernel's return value as strace reports it: `-1 ENOENT`, `? ERESTARTSYS`, `?` for a call cut short. */
export function returnValue(ret: number | null): ReturnValue {
  if (ret === null) return { retval: null, errno: null, text: "?" };
  if (ret < 0 && ret >= -MAX_ERRNO) {
    const errno = ERRNO_NAMES[-ret] ?? null;
    if (-ret >= 512 && -ret <= 516) return { retval: null, errno, text: `? ${errno}` };
    return { retval: -1, errno, text: errno === null ? `-1 (errno ${-ret})` : `-1 ${errno}` };
  }
  return { retval: ret, errno: null, text: String(ret) };
}

/** Names of one family of constants by value, the first name listed winning (SIGABRT over SIGIOT). */
function namesOf(prefix: string, skip: readonly string[] = []): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of SYMBOLS) {
    if (!name.startsWith(prefix) || skip.includes(name) || out.has(value)) continue;
    out.set(value, name);
  }
  return out;
}

const SIGNALS = namesOf("SIG", ["SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK", "SIG_DFL", "SIG_IGN"]);
const FAMILIES = namesOf("AF_");
const SOCK_TYPES = namesOf("SOCK_", ["SOCK_NONBLOCK", "SOCK_CLOEXEC"]);
const IPPROTOS = namesOf("IPPROTO_");
const NETLINKS = namesOf("NETLINK_");
/** Single flag bits of a family, highest first (composite values and aliases left out). */
function bitsOf(prefix: string, skip: readonly string[]): [number, string][] {
  const out: [number, string][] = [];
  const seen = new Set<number>();
  for (const [name, value] of SYMBOLS) {
    if (!name.startsWith(prefix) || skip.includes(name) || value <= 0 || seen.has(value)) continue;
    if ((value & (value - 1)) !== 0 && value < 2 ** 31) continue;
    seen.add(value);
    out.push([value, name]);
  }
  return out.sort((a, b) => b[0] - a[0]);
}
const OPEN_BITS = bitsOf("O_", [
  "O_RDONLY",
  "O_WRONLY",
  "O_RDWR",
  "O_ACCMODE",
  "O_NDELAY",
  "O_RSYNC",
  "O_SYNC",
  "O_TMPFILE",
]);
const AT_BITS = bitsOf("AT_", ["AT_FDCWD", "AT_EACCESS", "AT_STATX_SYNC_AS_STAT"]);
const CLONE_BITS = bitsOf("CLONE_", []);
const SOCK_FLAG_BITS: [number, string][] = [
  [SYMBOLS.get("SOCK_CLOEXEC")!, "SOCK_CLOEXEC"],
  [SYMBOLS.get("SOCK_NONBLOCK")!, "SOCK_NONBLOCK"],
];
const AT_FDCWD = SYMBOLS.get("AT_FDCWD")!;
const S_IFMT = SYMBOLS.get("S_IFMT")!;
const FILE_TYPES = namesOf("S_IF", ["S_IFMT"]);

/** Flag bits by name, highest bit first, the rest in hex: `O_CREAT|O_CLOEXEC|0x…`. */
function flagText(value: number, bits: readonly [number, string][], lead: string[] = []): string {
  const parts = lead;
  let rest = value;
  for (const [bit, name] of bits) {
    // bits above 2^31 are beyond the 32-bit operators
    if (bit >= 2 ** 31 ? rest >= bit && Math.floor(rest / bit) % 2 === 1 : (rest & bit) !== 0) {
      parts.push(name);
      rest -= bit;
    }
  }
  if (rest !== 0 || parts.length === 0)
    parts.push(parts.length === 0 && rest === 0 ? "0" : `0x${rest.toString(16)}`);
  return parts.join("|");
}

/** The open flags past the access mode (its two low bits). */
const OPEN_FLAG_BITS = OPEN_BITS.filter(([b]) => b > 3);

function openFlags(v: number): string {
  const acc = v & 3;
  return flagText(v - acc, OPEN_FLAG_BITS, [
    acc === 0 ? "O_RDONLY" : acc === 1 ? "O_WRONLY" : acc === 2 ? "O_RDWR" : "O_ACCMODE",
  ]);
}

function cloneFlags(v: number): string {
  const signal = v & 0xff;
  const text = flagText(v - signal, CLONE_BITS);
  if (signal === 0) return text;
  const name = SIGNALS.get(signal) ?? String(signal);
  return v - signal === 0 ? name : `${text}|${name}`;
}

const hex = (v: number): string => `0x${v.toString(16)}`;
const pointer = (v: number): string => (v === 0 ? "NULL" : hex(v));
const octal = (v: number): string => `0${(v >>> 0).toString(8)}`;

const fatal = new TextDecoder("utf-8", { fatal: true });
/** What the loop below escapes: quotes, backslashes, control characters and DEL. */
const NEEDS_ESCAPE = /["\\\x00-\x1f\x7f]/;
const OCT = (c: number): string => `\\${c.toString(8).padStart(3, "0")}`;

/** Bytes as a C string literal the replay's decodeEscapes reads back: UTF-8 kept, other bytes `\xNN`. */
export function quote(bytes: Uint8Array, cut = false): string {
  let text: string;
  try {
    text = fatal.decode(bytes);
  } catch {
    text = "";
    for (const c of bytes)
      text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
    // the escapes made above stay escapes; only quotes and backslashes of the text itself get one more
    return `"${text.replace(/\\(?!x[0-9a-f]{2})|"/g, (m) => `\\${m}`)}"${cut ? "..." : ""}`;
  }
  return quoteText(text, cut);
}

/** A string field of an event (`len` bytes at `at` of its data), quoted as quote() does, decoded in place. */
function quoteField(ev: RecordEvent, at: number, len: number, cut = false): string {
  const text = ev.data.toString("utf8", at, at + len);
  // a replacement character: bytes that are not UTF-8 (or one the string holds), which quote() sorts out
  if (text.indexOf("\uFFFD") >= 0) return quote(ev.data.subarray(at, at + len), cut);
  return quoteText(text, cut);
}

/** Text as a C string literal: quotes, backslashes and control characters escaped. */
function quoteText(text: string, cut: boolean): string {
  // most paths need no escape: one native scan instead of a loop per character
  if (!NEEDS_ESCAPE.test(text)) return `"${text}"${cut ? "..." : ""}`;
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) out += '\\"';
    else if (c === 92) out += "\\\\";
    else if (c === 10) out += "\\n";
    else if (c === 9) out += "\\t";
    else if (c === 13) out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += OCT(c);
    else out += text[i];
  }
  return `${out}"${cut ? "..." : ""}`;
}

const be16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const le16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const le32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const le64 = (b: Uint8Array, at: number): number => le32(b, at) + le32(b, at + 4) * 0x1_0000_0000;

/** A sockaddr as strace prints it (the replay's parseSockaddr reads it back). */
export function sockaddrText(b: Uint8Array): string {
  if (b.length < 2) return "{}";
  const family = le16(b, 0);
  const name = FAMILIES.get(family) ?? String(family);
  if (family === 2 && b.length >= 8) {
    return `{sa_family=AF_INET, sin_port=htons(${be16(b, 2)}), sin_addr=inet_addr("${formatAddress(b.subarray(4, 8), false)}")}`;
  }
  if (family === 10 && b.length >= 24) {
    const scope = b.length >= 28 ? le32(b, 24) : 0;
    const flow = (b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!;
    // strace prints an IPv4-mapped address in its IPv6 form
    const addr = formatAddress(b.subarray(8, 24), true);
    const mapped = b[18] === 0xff && b[19] === 0xff && addr.indexOf(":") < 0 ? `::ffff:${addr}` : addr;
    return `{sa_family=AF_INET6, sin6_port=htons(${be16(b, 2)}), sin6_flowinfo=htonl(${flow >>> 0}), inet_pton(AF_INET6, "${mapped}", &sin6_addr), sin6_scope_id=${scope}}`;
  }
  if (family === 1) {
    if (b.length <= 2) return "{sa_family=AF_UNIX}";
    const abstract = b[2] === 0;
    let end = b.length;
    if (!abstract) {
      const nul = b.indexOf(0, 2);
      if (nul >= 0) end = nul;
    }
    const path = b.subarray(abstract ? 3 : 2, end);
    return `{sa_family=AF_UNIX, sun_path=${abstract ? "@" : ""}${quote(path)}}`;
  }
  if (family === 16 && b.length >= 12) {
    return `{sa_family=AF_NETLINK, nl_pid=${le32(b, 4)}, nl_groups=${le32(b, 8).toString(16).padStart(8, "0")}}`;
  }
  return `{sa_family=${name}}`;
}

function statText(call: string, b: Uint8Array): string | null {
  if (call === "statx") {
    if (b.length < 30) return null;
    const mode = le16(b, 28);
    return `{stx_mask=${hex(le32(b, 0))}, stx_mode=${modeText(mode)}, ...}`;
  }
  if (b.length < 28) return null;
  return `{st_mode=${modeText(le32(b, 24))}, ...}`;
}

/** `0644` for every permission set, made once (each stat result prints one). */
const PERMS: readonly string[] = Array.from({ length: 0o10000 }, (_, m) => m.toString(8).padStart(4, "0"));

function modeText(mode: number): string {
  const type = FILE_TYPES.get(mode & S_IFMT);
  const perm = PERMS[mode & 0o7777]!;
  return type === undefined ? octal(mode) : `${type}|${perm}`;
}

function cloneArgsText(b: Uint8Array): string {
  if (b.length < 64) return "{...}";
  const signal = le64(b, 32);
  return `{flags=${flagText(le64(b, 0), CLONE_BITS)}, exit_signal=${SIGNALS.get(signal) ?? signal}, stack=${pointer(le64(b, 40))}, stack_size=${hex(le64(b, 48))}}`;
}

function openHowText(b: Uint8Array): string {
  if (b.length < 24) return "{...}";
  return `{flags=${openFlags(le64(b, 0))}, mode=${octal(le64(b, 8))}, resolve=${hex(le64(b, 16))}}`;
}

function argvText(ev: RecordEvent): string {
  const parts = (ev.argv ?? []).map((a) => quote(a, a.length >= 31));
  if ((ev.flags & RecordFlag.ArgvMore) !== 0) parts.push("...");
  return `[${parts.join(", ")}]`;
}

function fdPairText(b: Uint8Array): string {
  return b.length < 8 ? "[]" : `[${le32(b, 0) | 0}, ${le32(b, 4) | 0}]`;
}

/** How an integer argument of a call is printed, beyond plain decimal. */
type Format = (v: number, ev: RecordEvent) => string;
const dirfd: Format = (v) => (v === AT_FDCWD ? "AT_FDCWD" : String(v));
const atFlags: Format = (v) => flagText(v, AT_BITS);
const signal: Format = (v) => SIGNALS.get(v) ?? String(v);
const family: Format = (v) => FAMILIES.get(v) ?? String(v);
const sockType: Format = (v) => {
  const base = v & 0xf;
  return flagText(v - base, SOCK_FLAG_BITS, [SOCK_TYPES.get(base) ?? String(base)]);
};
const mode: Format = (v) => octal(v);
const open: Format = (v) => openFlags(v);

const FORMATS: Readonly<Record<string, readonly (Format | undefined)[]>> = {
  open: [undefined, open, mode],
  openat: [dirfd, undefined, open, mode],
  creat: [undefined, mode],
  newfstatat: [dirfd, undefined, undefined, atFlags],
  statx: [dirfd, undefined, atFlags],
  faccessat: [dirfd],
  faccessat2: [dirfd, undefined, undefined, atFlags],
  fchmodat: [dirfd, undefined, mode],
  fchownat: [dirfd, undefined, undefined, undefined, atFlags],
  unlinkat: [dirfd, undefined, atFlags],
  mkdirat: [dirfd, undefined, mode],
  mkdir: [undefined, mode],
  chmod: [undefined, mode],
  fchmod: [undefined, mode],
  mknodat: [dirfd, undefined, mode],
  readlinkat: [dirfd],
  utimensat: [dirfd, undefined, undefined, atFlags],
  renameat: [dirfd, undefined, dirfd],
  renameat2: [dirfd, undefined, dirfd],
  linkat: [dirfd, undefined, dirfd, undefined, atFlags],
  symlinkat: [undefined, dirfd],
  execveat: [dirfd, undefined, undefined, undefined, atFlags],
  openat2: [dirfd],
  kill: [undefined, signal],
  tkill: [undefined, signal],
  tgkill: [undefined, undefined, signal],
  rt_sigaction: [signal],
  socket: [family, sockType],
  socketpair: [family, sockType],
};

/** What a call printed as strace would: the argument text (for the enrichment), the words, the whole line. */
export interface RenderedCall {
  args: ArgList;
  words: (number | null)[];
  line: string;
  retval: number | null;
  errno: string | null;
}

/**
 * `enter` holds the arguments and what they pointed to at entry (null when its event was lost); `exit` the
 * return value and what the call wrote back (null for a call that never returned: exit_group, or cut short).
 */
export function renderCall(
  info: CallInfo,
  enter: RecordEvent | null,
  exit: RecordEvent | null,
): RenderedCall {
  const regs = (enter ?? exit)!;
  const call = info.name;
  const kinds = info.kinds;
  const fields = info.fields;
  const formats = FORMATS[call];
  const words: (number | null)[] = [null, null, null, null, null, null];
  const texts: string[] = [];
  const n = Math.min(kinds.length, 6);
  for (let i = 0; i < n; i++) {
    const kind = kinds[i]!;
    const v = argWord(regs.argLo[i]!, regs.argHi[i]!, kind);
    // a pointer is no number strace would print: the replay has null for what strace decoded
    words[i] = kind === "p" ? null : v;
    texts.push(argText(call, i, kind, v, enter, exit, fields, formats));
  }
  if (call === "socket" && kinds.length >= 3) texts[2] = protocolText(words[0] ?? null, words[2] ?? null);
  if (call === "clone") cloneOrder(texts, words);
  const rv = returnValue(exit === null ? null : exit.ret);
  const head = `${call}(`;
  let src = head;
  const bounds: number[] = [];
  for (let i = 0; i < texts.length; i++) {
    if (i > 0) src += ", ";
    bounds.push(src.length);
    src += texts[i];
    bounds.push(src.length);
  }
  const line = `${src}) = ${rv.text}`;
  // the kernel's values rendered: no -y annotations, so none is looked for
  return { args: new ArgList(line, bounds, false), words, line, retval: rv.retval, errno: rv.errno };
}

function argText(
  call: string,
  i: number,
  kind: string,
  v: number | null,
  enter: RecordEvent | null,
  exit: RecordEvent | null,
  fields: CallInfo["fields"],
  formats: readonly (Format | undefined)[] | undefined,
): string {
  // a string the entry could not read (its page not yet in memory) comes with the exit, read again
  const again = exit !== null && (exit.flags & RecordFlag.Reread) !== 0 ? exit : null;
  if (fields.Str0 === i) {
    const from = enter !== null && enter.len0 >= 0 ? enter : again !== null && again.len0 >= 0 ? again : null;
    if (from !== null) return quoteField(from, DATA_STR0, from.len0, (from.flags & RecordFlag.Str0Cut) !== 0);
  }
  if (fields.Str1 === i) {
    const from = enter !== null && enter.len1 >= 0 ? enter : again !== null && again.len1 >= 0 ? again : null;
    if (from !== null) return quoteField(from, DATA_STR1, from.len1, (from.flags & RecordFlag.Str1Cut) !== 0);
  }
  if (enter !== null && (enter.blobLen > 0 || enter.argc > 0)) {
    if (fields.AddrIn === i && enter.blob !== null) return sockaddrText(enter.blob);
    if (fields.StructIn === i && enter.blob !== null)
      return call === "clone3" ? cloneArgsText(enter.blob) : openHowText(enter.blob);
    if (fields.Argv === i && enter.argv !== null) return argvText(enter);
  }
  if (exit !== null && exit.ret >= 0 && again === null && (exit.blobLen > 0 || exit.len0 >= 0)) {
    if (fields.AddrOut === i && exit.blob !== null) return sockaddrText(exit.blob);
    if (fields.FdsOut === i && exit.blob !== null) return fdPairText(exit.blob);
    if (fields.StrOut === i && exit.len0 >= 0) return quoteField(exit, DATA_STR0, exit.len0);
    if (fields.StatOut === i && exit.blob !== null) return statText(call, exit.blob) ?? pointer(v ?? 0);
  }
  if (v === null) return "?";
  if (kind === "p") return pointer(v);
  const format = formats?.[i];
  if (format !== undefined) return format(v, (enter ?? exit)!);
  if (kind === "l" && v > 0xffff_ffff) return hex(v);
  return String(v);
}

function protocolText(fam: number | null, proto: number | null): string {
  if (proto === null) return "?";
  if (fam === 16) return NETLINKS.get(proto) ?? String(proto);
  if ((fam === 2 || fam === 10) && proto !== 0) return IPPROTOS.get(proto) ?? String(proto);
  return fam === 2 || fam === 10 ? "IPPROTO_IP" : String(proto);
}

/** x86-64 clone(flags, stack, parent_tid, child_tid, tls), printed as strace does: by name, stack first. */
function cloneOrder(texts: string[], words: (number | null)[]): void {
  const [flags, stack, parent, child, tls] = texts;
  texts.length = 0;
  texts.push(
    `child_stack=${stack}`,
    `flags=${words[0] === null || words[0] === undefined ? flags : cloneFlags(words[0])}`,
    `parent_tid=${parent}`,
    `child_tidptr=${child}`,
    `tls=${tls}`,
  );
}
