/**
 * bun:ffi bindings for the system libseccomp (libseccomp.so.2) and the few libc calls a
 * seccomp loader needs (signal reset, errno, execve). Thin and typed: libseccomp returns
 * negative errno values, which the callers turn into Errors.
 */
import { type ConvertFns, dlopen, FFIType, type Pointer, read } from "bun:ffi";

export const SCMP_ACT_KILL_PROCESS = 0x80000000;
export const SCMP_ACT_KILL_THREAD = 0x00000000;
export const SCMP_ACT_TRAP = 0x00030000;
export const SCMP_ACT_LOG = 0x7ffc0000;
export const SCMP_ACT_ALLOW = 0x7fff0000;
export const scmpActErrno = (errno: number): number => (0x00050000 | (errno & 0xffff)) >>> 0;

/** enum scmp_compare */
export const SCMP_CMP: Record<string, number> = {
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
};

/** sizeof(struct scmp_arg_cmp): unsigned int arg; enum op; uint64 datum_a; uint64 datum_b */
export const SCMP_ARG_CMP_SIZE = 24;

const seccompSymbols = {
  seccomp_init: { args: [FFIType.u32], returns: FFIType.ptr },
  seccomp_release: { args: [FFIType.ptr], returns: FFIType.void },
  seccomp_arch_resolve_name: { args: [FFIType.cstring], returns: FFIType.u32 },
  seccomp_arch_add: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  seccomp_syscall_resolve_name: { args: [FFIType.cstring], returns: FFIType.i32 },
  seccomp_rule_add_array: {
    args: [FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.u32, FFIType.ptr],
    returns: FFIType.i32,
  },
  seccomp_load: { args: [FFIType.ptr], returns: FFIType.i32 },
} as const;

const libcSymbols = {
  signal: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.ptr },
  sigprocmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
} as const;

export type Libseccomp = ConvertFns<typeof seccompSymbols>;
export type LibcExec = ConvertFns<typeof libcSymbols>;

export function openLibseccomp(): Libseccomp {
  try {
    return dlopen("libseccomp.so.2", seccompSymbols).symbols;
  } catch (err) {
    throw new Error("failed to load libseccomp.so.2 (Debian package libseccomp2)", { cause: err });
  }
}

export function openLibcExec(): LibcExec {
  return dlopen("libc.so.6", libcSymbols).symbols;
}

/** The calling thread's errno and its message. */
export function lastErrno(libc: LibcExec): { errno: number; message: string } {
  const location = libc.__errno_location() as Pointer;
  const errno = read.i32(location, 0);
  return { errno, message: String(libc.strerror(errno)) };
}

/** libseccomp's negative-errno return value as text. */
export function describeNegativeErrno(libc: LibcExec, rc: number): string {
  return `${String(libc.strerror(-rc))} (${rc})`;
}
