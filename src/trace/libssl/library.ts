/**
 * Finding the libraries to probe: the system libssl, and checking that a --libssl path (a library, or an
 * executable with OpenSSL linked in such as node) exports the SSL_* functions, by reading its ELF symbol tables.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

/** Functions carnot.bpf.o probes; the required ones must exist, the others are skipped when absent. */
export const REQUIRED_SYMBOLS = ["SSL_new", "SSL_free", "SSL_ctrl", "SSL_do_handshake"] as const;
export const OPTIONAL_SYMBOLS = [
  "SSL_CTX_ctrl",
  "SSL_connect",
  "SSL_accept",
  "SSL_set_connect_state",
  "SSL_set_accept_state",
  "SSL_get_error",
  "SSL_read",
  "SSL_write",
  "SSL_read_ex",
  "SSL_write_ex",
] as const;

/** Entry-only checkpoints of implicit handshakes, attached only on request (one trap per call on bulk data). */
export const IMPLICIT_CHECKPOINT_SYMBOLS = ["SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex"] as const;

/** Where Debian, Ubuntu, Fedora and Alpine put OpenSSL 3 (then 1.1), most likely first. */
const SYSTEM_LIBSSL_CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/libssl.so.3",
  "/lib/x86_64-linux-gnu/libssl.so.3",
  "/usr/lib/aarch64-linux-gnu/libssl.so.3",
  "/usr/lib64/libssl.so.3",
  "/usr/lib/libssl.so.3",
  "/lib/libssl.so.3",
  "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
  "/usr/lib64/libssl.so.1.1",
  "/usr/lib/libssl.so.1.1",
];

/** The system's OpenSSL libssl (symlinks resolved: uprobes attach to the file), or null when none is found. */
export function findSystemLibssl(candidates: readonly string[] = SYSTEM_LIBSSL_CANDIDATES): string | null {
  for (const candidate of candidates) {
    if (existsSync(candidate)) return realpathSync(candidate);
  }
  return null;
}

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const SHN_UNDEF = 0;

/** Reads ranges of a file on demand: an executable like node is ~100 MB and only its tables are needed. */
class FileRanges {
  readonly #fd: number;
  readonly size: number;
  constructor(path: string) {
    this.#fd = openSync(path, "r");
    this.size = statSync(path).size;
  }
  read(offset: number, length: number): DataView {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new Error(`truncated ELF file (wants bytes ${offset}..${offset + length} of ${this.size})`);
    }
    const bytes = new Uint8Array(length);
    readSync(this.#fd, bytes, 0, length, offset);
    return new DataView(bytes.buffer);
  }
  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * The SSL_* functions a 64-bit little-endian ELF file defines, from .dynsym and .symtab (the tables libbpf
 * searches when attaching by name), each with its file offset (what a uprobe attaches to).
 * Throws when the file is not such an ELF file.
 */
export function definedFunctions(path: string): Map<string, number> {
  const file = new FileRanges(path);
  try {
    if (file.size < 64) throw new Error("not an ELF file");
    const ident = file.read(0, 64);
    if (ident.getUint32(0, false) !== 0x7f454c46) throw new Error("not an ELF file");
    if (ident.getUint8(4) !== 2 || ident.getUint8(5) !== 1)
      throw new Error("not a 64-bit little-endian ELF file");
    const shoff = Number(ident.getBigUint64(0x28, true));
    const shentsize = ident.getUint16(0x3a, true);
    const shnum = ident.getUint16(0x3c, true);
    if (shoff === 0 || shnum === 0) throw new Error("ELF file has no section headers");
    const sections = file.read(shoff, shentsize * shnum);
    const section = (i: number) => {
      const at = i * shentsize;
      return {
        type: sections.getUint32(at + 4, true),
        address: Number(sections.getBigUint64(at + 0x10, true)),
        offset: Number(sections.getBigUint64(at + 0x18, true)),
        size: Number(sections.getBigUint64(at + 0x20, true)),
        link: sections.getUint32(at + 0x28, true),
        entsize: Number(sections.getBigUint64(at + 0x38, true)),
      };
    };
    const functions = new Map<string, number>();
    const decoder = new TextDecoder();
    for (let i = 0; i < shnum; i++) {
      const table = section(i);
      if (table.type !== SHT_DYNSYM && table.type !== SHT_SYMTAB) continue;
      if (table.entsize < 24 || table.link >= shnum) continue;
      const strings = section(table.link);
      const stringBytes = new Uint8Array(file.read(strings.offset, strings.size).buffer);
      const symbols = file.read(table.offset, table.size);
      for (let at = 0; at + 24 <= table.size; at += table.entsize) {
        const type = symbols.getUint8(at + 4) & 0xf;
        if (type !== STT_FUNC && type !== STT_GNU_IFUNC) continue;
        const sectionIndex = symbols.getUint16(at + 6, true);
        if (sectionIndex === SHN_UNDEF || sectionIndex >= shnum) continue;
        const nameOffset = symbols.getUint32(at, true);
        // Only SSL_* names are of interest; skip decoding the other (possibly hundreds of thousands) names.
        if (stringBytes[nameOffset] !== 0x53 || stringBytes[nameOffset + 1] !== 0x53) continue;
        const end = stringBytes.indexOf(0, nameOffset);
        const name = decoder.decode(stringBytes.subarray(nameOffset, end < 0 ? stringBytes.length : end));
        // Virtual address → file offset through the section that holds the code (as libbpf does).
        const holder = section(sectionIndex);
        const value = Number(symbols.getBigUint64(at + 8, true));
        if (!functions.has(name)) functions.set(name, value - holder.address + holder.offset);
      }
    }
    return functions;
  } finally {
    file.close();
  }
}

/** What a library offers to the probes. */
export interface LibsslCheck {
  /** Resolved path (uprobes attach to the inode). */
  path: string;
  /** Probed functions present in the file, with their file offsets. */
  offsets: Map<string, number>;
  /** Optional functions absent from the file (their probes are skipped). */
  missingOptional: string[];
}

/**
 * Checks that `path` is a readable ELF file defining the required SSL_* functions.
 * Throws an Error saying which function is missing or why the file cannot be used.
 */
export function checkLibssl(path: string): LibsslCheck {
  let resolved: string;
  try {
    resolved = realpathSync(path);
  } catch {
    throw new Error(`failed to find library ${path}: no such file`);
  }
  let functions: Map<string, number>;
  try {
    functions = definedFunctions(resolved);
  } catch (err) {
    throw new Error(`failed to read symbols of ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const missingRequired = REQUIRED_SYMBOLS.filter((name) => !functions.has(name));
  if (missingRequired.length > 0) {
    throw new Error(`${path} does not export ${missingRequired.join(", ")} (not an OpenSSL libssl?)`);
  }
  return {
    path: resolved,
    offsets: new Map(
      [...REQUIRED_SYMBOLS, ...OPTIONAL_SYMBOLS]
        .filter((name) => functions.has(name))
        .map((name) => [name, functions.get(name)!] as const),
    ),
    missingOptional: OPTIONAL_SYMBOLS.filter((name) => !functions.has(name)),
  };
}

const VERSION_PATTERN = /OpenSSL (\d+\.\d+\.\d+[a-z]?)(?: |\0)/;

/**
 * The OpenSSL version a probed file belongs to ("3.0.19"), or null. libssl itself carries no version
 * string, so for a shared libssl the libcrypto beside it is read; an executable carries its own.
 */
export function opensslVersion(path: string): string | null {
  const candidates = [path];
  const base = path.split("/").pop() ?? "";
  const match = /^libssl(\.so.*)$/.exec(base);
  if (match) candidates.unshift(join(dirname(path), `libcrypto${match[1]}`));
  for (const candidate of candidates) {
    if (!existsSync(candidate)) continue;
    const text = readFileSync(candidate).toString("latin1");
    const found = VERSION_PATTERN.exec(text);
    if (found) return found[1] ?? null;
  }
  return null;
}
