/**
 * Typed bun:ffi bindings to the few libc calls carnot needs: mmap, errno, page size, vsnprintf, clocks, bpf(2),
 * open_by_handle_at(2), execve, the signal mask and dispositions, renameat2.
 */
import { CString, dlopen, FFIType, type Pointer, ptr, read, toArrayBuffer } from "bun:ffi";

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const SC_PAGESIZE = 30;
const CLOCK_MONOTONIC = 1;
const CLOCK_THREAD_CPUTIME_ID = 3;
/** x86-64 system call number of bpf(2). */
const SYS_BPF = 321;
/** x86-64 system call number of open_by_handle_at(2). */
const SYS_OPEN_BY_HANDLE_AT = 304;
/** x86-64 renameat2(2), with AT_FDCWD and RENAME_NOREPLACE */
const SYS_RENAMEAT2 = 316;
const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
/** sigprocmask's `how` */
const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
/** glibc's sigset_t: 1024 bits */
const SIGSET_BYTES = 128;
/** glibc's struct sigaction on x86-64: handler 8, sa_mask 128, sa_flags 4 (+4), sa_restorer 8 */
const SIGACTION_BYTES = 152;
/** mmap's MAP_FAILED, ((void *)-1), read as an unsigned 64-bit integer. */
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

function openLibc() {
  return dlopen("libc.so.6", {
    mmap: {
      args: [FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.i32, FFIType.i64],
      returns: FFIType.u64,
    },
    munmap: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    sysconf: { args: [FFIType.i32], returns: FFIType.i64_fast },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
    vsnprintf: { args: [FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    geteuid: { args: [], returns: FFIType.u32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    execve: { args: [FFIType.cstring, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    sigprocmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    sigaction: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    // syscall(2) is variadic; glibc's x86-64 version reads integer arguments only, so a fixed signature is safe.
    syscall: {
      args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64],
      returns: FFIType.i64_fast,
    },
  }).symbols;
}

export type LibcSymbols = ReturnType<typeof openLibc>;

/** A NUL-terminated copy of a string, for `const char *` arguments; keep it referenced while its pointer is in use. */
export function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`, "utf8");
}

/** A NULL-terminated `char *[]` over the given C strings (which the caller keeps alive). */
export function pointerArray(strings: Buffer[]): BigUint64Array {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    array[i] = BigInt(ptr(s));
  });
  return array;
}

/** A shared mapping of a file descriptor; `bytes` views the whole of it until `unmap()`. */
export interface Mapping {
  readonly address: number;
  readonly length: number;
  readonly bytes: ArrayBuffer;
}

/** The libc calls used here, bound once per user (no module-level state). */
export class Libc {
  readonly #c: LibcSymbols;

  constructor() {
    this.#c = openLibc();
  }

  /** errno of the last failed call on this thread. Read it right after the call that failed. */
  errno(): number {
    const location = this.#c.__errno_location();
    return location === null ? 0 : read.i32(location, 0);
  }

  strerror(errno: number): string {
    return String(this.#c.strerror(errno));
  }

  pageSize(): number {
    return Number(this.#c.sysconf(SC_PAGESIZE));
  }

  geteuid(): number {
    return this.#c.geteuid();
  }

  /** CPU time of the calling thread, in seconds (benchmarks on a shared machine). */
  threadCpuSeconds(): number {
    const timespec = new BigInt64Array(2);
    this.#c.clock_gettime(CLOCK_THREAD_CPUTIME_ID, timespec);
    return Number(timespec[0]) + Number(timespec[1]) / 1e9;
  }

  /** CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns, which Bun does not expose. */
  monotonicNs(): bigint {
    const timespec = new BigInt64Array(2);
    if (this.#c.clock_gettime(CLOCK_MONOTONIC, timespec) !== 0) throw new Error("clock_gettime failed");
    return timespec[0]! * 1_000_000_000n + timespec[1]!;
  }

  /**
   * Replaces this process's program (same pid, same open descriptors) with `path`, given `argv` and `env`
   * ("NAME=value" strings). Returns only on failure, with errno.
   */
  execve(path: string, argv: readonly string[], env: readonly string[]): number {
    // the strings stay referenced by these arrays until execve returns (or never)
    const argvC = argv.map(cString);
    const envC = env.map(cString);
    this.#c.execve(cString(path), pointerArray(argvC), pointerArray(envC));
    void [argvC, envC];
    return this.errno();
  }

  /**
   * Blocks (or unblocks) `signals` on the calling thread. A blocked signal stays pending, also across execve,
   * even when its disposition is to ignore it.
   */
  blockSignals(signals: readonly number[], block: boolean): void {
    const set = new Uint8Array(SIGSET_BYTES);
    for (const signal of signals) set[(signal - 1) >> 3]! |= 1 << ((signal - 1) & 7);
    if (this.#c.sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, set, null) !== 0)
      throw new Error(`sigprocmask: ${this.strerror(this.errno())}`);
  }

  /** Sets `signal` to its default action; returns the disposition it had, for restoreDisposition. */
  defaultDisposition(signal: number): Uint8Array {
    const previous = new Uint8Array(SIGACTION_BYTES);
    if (this.#c.sigaction(signal, new Uint8Array(SIGACTION_BYTES), previous) !== 0)
      throw new Error(`sigaction: ${this.strerror(this.errno())}`);
    return previous;
  }

  restoreDisposition(signal: number, previous: Uint8Array): void {
    this.#c.sigaction(signal, previous, null);
  }

  close(fd: number): number {
    return this.#c.close(fd);
  }

  /** The bpf(2) system call; returns its result (>= 0) or -errno. */
  bpf(command: number, attr: Uint8Array): number {
    return this.syscall(SYS_BPF, command, attr, attr.byteLength);
  }

  /** rename(2) that never replaces: 0, or -errno (EEXIST when `to` exists, a symlink there included). */
  renameNoReplace(from: string, to: string): number {
    const a = cString(from);
    const b = cString(to);
    return this.syscall(SYS_RENAMEAT2, AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE);
  }

  /**
   * open_by_handle_at(2): the file a handle of `type` with `bytes` names, on the file system of `mountFd`;
   * returns the descriptor (>= 0) or -errno (EPERM without CAP_DAC_READ_SEARCH, ESTALE when it is gone).
   */
  openByHandle(mountFd: number, type: number, bytes: Uint8Array, flags: number): number {
    const handle = new Uint8Array(8 + bytes.byteLength);
    const view = new DataView(handle.buffer);
    view.setUint32(0, bytes.byteLength, true);
    view.setInt32(4, type, true);
    handle.set(bytes, 8);
    return this.syscall(SYS_OPEN_BY_HANDLE_AT, mountFd, handle, flags);
  }

  /**
   * A system call made by the calling thread alone (not glibc's wrapper, which for set*id broadcasts to every
   * thread); a buffer argument is passed as its address. Returns the result (>= 0) or -errno.
   */
  syscall(nr: number, ...args: (number | bigint | Uint8Array | BigUint64Array | null)[]): number {
    const raw = [0, 1, 2, 3, 4, 5].map((i) => {
      const a = args[i];
      if (a === undefined || a === null) return 0;
      return typeof a === "number" || typeof a === "bigint" ? a : ptr(a);
    });
    const result = Number(this.#c.syscall(nr, raw[0]!, raw[1]!, raw[2]!, raw[3]!, raw[4]!, raw[5]!));
    return result < 0 ? -this.errno() : result;
  }

  /** mmap(NULL, length, prot, MAP_SHARED, fd, offset); throws with errno's text on failure. */
  mapShared(fd: number, length: number, offset: number, writable: boolean): Mapping {
    const prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    const result = this.#c.mmap(null, BigInt(length), prot, MAP_SHARED, fd, BigInt(offset));
    const address = BigInt(result);
    if (address === MAP_FAILED || address === 0n) {
      throw new Error(`mmap: ${this.strerror(this.errno())}`);
    }
    const numeric = Number(address);
    return { address: numeric, length, bytes: toArrayBuffer(numeric as Pointer, 0, length) };
  }

  unmap(mapping: Mapping): void {
    this.#c.munmap(mapping.address as Pointer, BigInt(mapping.length));
  }

  /** Formats a C printf format with its va_list (x86-64: va_list is passed as a pointer). */
  formatVaList(format: Pointer, vaList: Pointer): string {
    const buffer = new Uint8Array(4096);
    const n = this.#c.vsnprintf(buffer, BigInt(buffer.length), format, vaList);
    if (n < 0) return new CString(format).toString();
    return new TextDecoder().decode(buffer.subarray(0, Math.min(n, buffer.length - 1)));
  }
}
