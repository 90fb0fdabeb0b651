/**
 * The system calls as `carnot record` sees them: names by x86-64 number, each argument's C kind, and what the
 * kernel reads for each call (the descriptor table of record.bpf.c), derived from the one syscall taxonomy
 * (src/replay/syscalls.ts) plus the calls whose structs the records need.
 */
import { X86_64_SYSCALLS } from "../consumers/seccomp/syscalls-x86_64.generated.ts";
import { type CallSpec, callSpec } from "../replay/syscalls.ts";
import { type DescField, descriptor, RECORD_NR_MAX } from "./events.ts";
import { SYSCALL_ARGS } from "./syscall-args.generated.ts";

/** Names by number; strace names a number it does not know `syscall_0x…`. */
const NAMES: string[] = [];
for (const [name, nr] of X86_64_SYSCALLS) NAMES[nr] = name;

export function callName(nr: number): string {
  return NAMES[nr] ?? `syscall_0x${nr.toString(16)}`;
}

/** Arguments the kernel declares `unsigned long` but uses as an int (mmap's fd is -1 for anonymous memory). */
const KIND_OVERRIDES: Readonly<Record<string, string>> = { mmap: "lluuil" };

/** The C kinds of a call's arguments (SYSCALL_ARGS); six 64-bit words when the kernel does not describe it. */
export function argKinds(name: string): string {
  return KIND_OVERRIDES[name] ?? SYSCALL_ARGS.get(name) ?? "llllll";
}

type Fields = Partial<Record<keyof typeof DescField, number>>;

/** What the kernel reads beyond the taxonomy's paths: sockaddrs, structs, argv, what the call wrote back. */
const EXTRA: Readonly<Record<string, Fields>> = {
  memfd_create: { Str0: 0 },
  link: { Str1: 0 },
  symlink: { Str1: 0 },
  symlinkat: { Str1: 0 },
  execve: { Argv: 1 },
  execveat: { Argv: 2 },
  connect: { AddrIn: 1 },
  bind: { AddrIn: 1 },
  sendto: { AddrIn: 4 },
  openat2: { StructIn: 2 },
  clone3: { StructIn: 0 },
  accept: { AddrOut: 1 },
  accept4: { AddrOut: 1 },
  getsockname: { AddrOut: 1 },
  getpeername: { AddrOut: 1 },
  recvfrom: { AddrOut: 4 },
  pipe: { FdsOut: 0 },
  pipe2: { FdsOut: 0 },
  socketpair: { FdsOut: 3 },
  getcwd: { StrOut: 0 },
  stat: { StatOut: 1 },
  lstat: { StatOut: 1 },
  fstat: { StatOut: 1 },
  newfstatat: { StatOut: 2 },
  statx: { StatOut: 4 },
};

/** The fields the kernel reads for one call. */
export function captureFields(name: string): Fields {
  const spec = callSpec(name);
  const kinds = argKinds(name);
  const fields: Fields = { ...EXTRA[name] };
  // only pointers are read as strings: a taxonomy index on a number is no string
  if (fields.Str0 === undefined && spec.path !== undefined && kinds[spec.path] === "p")
    fields.Str0 = spec.path;
  if (spec.path2 !== undefined && kinds[spec.path2] === "p") fields.Str1 = spec.path2;
  return fields;
}

/** What the record stage needs of one call, looked up once per system call number. */
export interface CallInfo {
  name: string;
  kinds: string;
  fields: Fields;
  spec: CallSpec;
}

function infoOf(nr: number): CallInfo {
  const name = callName(nr);
  return { name, kinds: argKinds(name), fields: captureFields(name), spec: callSpec(name) };
}

/** Every number the kernel reports (it sends none at or past RECORD_NR_MAX), described once. */
const INFOS: readonly CallInfo[] = Array.from({ length: RECORD_NR_MAX }, (_, nr) => infoOf(nr));

/** The call of number `nr`. */
export function callInfo(nr: number): CallInfo {
  return INFOS[nr] ?? infoOf(nr);
}

/** The descriptor word of every system call number (struct record_config). */
export function descriptorTable(): Uint32Array {
  const table = new Uint32Array(RECORD_NR_MAX);
  for (const [name, nr] of X86_64_SYSCALLS) {
    if (nr < RECORD_NR_MAX) table[nr] = descriptor(captureFields(name));
  }
  return table;
}
