/**
 * Typed bun:ffi bindings to the system libbpf.so.1 (Debian 12: libbpf 1.1), only the calls carnot uses.
 * libbpf 1.x reports failure as a negative errno (int results) or NULL + errno (pointer results); both become
 * an Error saying `failed to <verb> <thing>: <reason>`. Struct layouts are those of libbpf 1.1 on x86-64.
 */
import { dlopen, FFIType, JSCallback, type Pointer, ptr } from "bun:ffi";
import { closeSync, constants, openSync } from "node:fs";
import { cString, Libc } from "./libc.ts";

function openLibbpfSymbols() {
  return dlopen("libbpf.so.1", {
    libbpf_set_print: { args: [FFIType.ptr], returns: FFIType.ptr },
    libbpf_strerror: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    bpf_object__open_mem: { args: [FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.ptr },
    bpf_object__load: { args: [FFIType.ptr], returns: FFIType.i32 },
    bpf_object__close: { args: [FFIType.ptr], returns: FFIType.void },
    bpf_object__find_map_by_name: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
    bpf_object__next_map: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
    bpf_object__find_program_by_name: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
    bpf_map__name: { args: [FFIType.ptr], returns: FFIType.cstring },
    bpf_map__fd: { args: [FFIType.ptr], returns: FFIType.i32 },
    bpf_map__set_max_entries: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    bpf_map__max_entries: { args: [FFIType.ptr], returns: FFIType.u32 },
    bpf_map__value_size: { args: [FFIType.ptr], returns: FFIType.u32 },
    bpf_map__set_initial_value: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    bpf_map__reuse_fd: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    bpf_program__attach: { args: [FFIType.ptr], returns: FFIType.ptr },
    bpf_program__attach_cgroup: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
    bpf_program__fd: { args: [FFIType.ptr], returns: FFIType.i32 },
    bpf_program__set_expected_attach_type: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    bpf_program__attach_uprobe_opts: {
      args: [FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.ptr],
      returns: FFIType.ptr,
    },
    bpf_link__destroy: { args: [FFIType.ptr], returns: FFIType.i32 },
    bpf_map_lookup_elem: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    bpf_map_update_elem: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    bpf_map_get_next_key: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    bpf_map_delete_elem: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    bpf_prog_test_run_opts: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  }).symbols;
}

type LibbpfSymbols = ReturnType<typeof openLibbpfSymbols>;

/** An opaque libbpf object pointer as bun:ffi returns it. */
type Handle = Pointer | bigint;

/** libbpf_print_level */
export const LIBBPF_WARN = 0;
export const LIBBPF_INFO = 1;
export const LIBBPF_DEBUG = 2;

/** bpf_object_open_opts (libbpf 1.1): sz 80, object_name at 8. */
const OPEN_OPTS_SIZE = 80;
/** bpf_uprobe_opts (libbpf 1.1): sz 40; ref_ctr_offset 8, bpf_cookie 16, retprobe 24, func_name 32. */
const UPROBE_OPTS_SIZE = 40;
/** bpf_test_run_opts (libbpf 1.1): sz 80; ctx_in 32, ctx_size_in 48, retval 56. */
const TEST_RUN_OPTS_SIZE = 80;

export interface UprobeTarget {
  /** Library or executable that holds the function. */
  path: string;
  /** Symbol name, resolved by libbpf in the file's ELF symbol tables. */
  funcName: string;
  /** Bytes past the symbol's first byte (libbpf adds it to the symbol's offset). */
  funcOffset?: number;
  retprobe: boolean;
  /** Read by the program with bpf_get_attach_cookie(). */
  cookie: number;
  /** Attach for one process only (-1 = every process that maps the file). */
  pid?: number;
}

/** libbpf, bound once per user. `Libbpf.open()` throws a clear Error when the library is missing. */
export class Libbpf {
  readonly libc: Libc;
  readonly #b: LibbpfSymbols;
  #printCallback: JSCallback | null = null;

  private constructor(symbols: LibbpfSymbols, libc: Libc) {
    this.#b = symbols;
    this.libc = libc;
  }

  static open(): Libbpf {
    let symbols: LibbpfSymbols;
    try {
      symbols = openLibbpfSymbols();
    } catch (err) {
      throw new Error("failed to load libbpf.so.1: not installed (Debian/Ubuntu package `libbpf1`)", {
        cause: err,
      });
    }
    return new Libbpf(symbols, new Libc());
  }

  /** Text for a libbpf/kernel error code (negative or positive errno). */
  strerror(code: number): string {
    const buffer = new Uint8Array(256);
    this.#b.libbpf_strerror(code < 0 ? code : -code, buffer, BigInt(buffer.length));
    const end = buffer.indexOf(0);
    return new TextDecoder().decode(buffer.subarray(0, end < 0 ? buffer.length : end));
  }

  /**
   * Sends libbpf's own messages (and the verifier log on a failed load) to `sink`; `null` silences libbpf.
   * libbpf keeps one print function per process, so the last caller wins.
   */
  setPrint(sink: ((level: number, message: string) => void) | null): void {
    const previous = this.#printCallback;
    if (sink === null) {
      this.#b.libbpf_set_print(null);
      this.#printCallback = null;
    } else {
      const libc = this.libc;
      const callback = new JSCallback(
        (level: number, format: Pointer, vaList: Pointer) => {
          sink(level, libc.formatVaList(format, vaList));
          return 0;
        },
        { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      );
      this.#b.libbpf_set_print(callback.ptr);
      this.#printCallback = callback;
    }
    previous?.close();
  }

  /** bpf_map_update_elem on a map fd: false when the kernel refused (a full map, …). */
  updateElementByFd(fd: number, key: Uint8Array, value: Uint8Array, flags = 0): boolean {
    return this.#b.bpf_map_update_elem(fd, key, value, flags) === 0;
  }

  /** BPF_PROG_TEST_RUN with a context on a program fd (also from a Worker: fds are per process). */
  testRunByFd(fd: number, context: Uint8Array): number {
    const opts = new Uint8Array(TEST_RUN_OPTS_SIZE);
    const view = new DataView(opts.buffer);
    view.setBigUint64(0, BigInt(TEST_RUN_OPTS_SIZE), true);
    view.setBigUint64(32, BigInt(ptr(context)), true);
    view.setUint32(48, context.byteLength, true);
    const err = this.#b.bpf_prog_test_run_opts(fd, opts);
    if (err < 0) throw new Error(`failed to run BPF program: ${this.strerror(err)}`);
    return view.getUint32(56, true);
  }

  /** Opens an object from its ELF bytes (works for files embedded in a compiled binary, unlike a path). */
  openObject(elf: Uint8Array, name: string): BpfObject {
    const opts = new Uint8Array(OPEN_OPTS_SIZE);
    const view = new DataView(opts.buffer);
    const objectName = cString(name);
    view.setBigUint64(0, BigInt(OPEN_OPTS_SIZE), true);
    view.setBigUint64(8, BigInt(ptr(objectName)), true);
    // libbpf copies the ELF image, but keep ours alive across the call.
    const handle = this.#b.bpf_object__open_mem(elf, BigInt(elf.byteLength), opts);
    if (handle === null) {
      throw new Error(`failed to open BPF object ${name}: ${this.libc.strerror(this.libc.errno())}`);
    }
    return new BpfObject(this, this.#b, handle, name);
  }
}

/** enum bpf_attach_type: BPF_TRACE_UPROBE_MULTI (Linux 6.6+). */
export const BPF_TRACE_UPROBE_MULTI = 48;
/** BPF_LINK_CREATE command of bpf(2). */
const BPF_LINK_CREATE = 28;
/** BPF_F_UPROBE_MULTI_RETURN */
const UPROBE_MULTI_RETURN = 1;
/** union bpf_attr, link_create with uprobe_multi: prog_fd 0, attach_type 8, path 16, offsets 24,
 * ref_ctr_offsets 32, cookies 40, cnt 48, flags 52, pid 56. */
const LINK_CREATE_ATTR_SIZE = 64;

/**
 * An attached uprobe (a libbpf perf-event link) or uprobe_multi link (a bare fd); `destroy()` detaches it.
 * Each detach waits for an RCU grace period in the kernel (≈ 100 ms in a VM), whatever the probe count.
 */
export class BpfLink {
  readonly #destroy: () => void;
  #done = false;

  constructor(destroy: () => void) {
    this.#destroy = destroy;
  }

  destroy(): void {
    if (this.#done) return;
    this.#done = true;
    this.#destroy();
  }
}

/** One uprobe_multi attachment: every function offset of one file, with a cookie each. */
export interface UprobeMultiTarget {
  path: string;
  /** File offsets of the functions (not virtual addresses). */
  offsets: number[];
  cookies: number[];
  retprobe: boolean;
  /** Only this process (0 = every process). */
  pid?: number;
}

/** One bpf_object: configure maps before `load()`, then look up fds, attach programs, and `close()`. */
export class BpfObject {
  readonly name: string;
  readonly #lib: Libbpf;
  readonly #b: LibbpfSymbols;
  #handle: Handle | null;

  constructor(lib: Libbpf, symbols: LibbpfSymbols, handle: Handle, name: string) {
    this.#lib = lib;
    this.#b = symbols;
    this.#handle = handle;
    this.name = name;
  }

  get #obj(): Handle {
    if (this.#handle === null) throw new Error(`BPF object ${this.name} is closed`);
    return this.#handle;
  }

  #map(name: string): Handle {
    const mapName = cString(name);
    const map = this.#b.bpf_object__find_map_by_name(this.#obj, mapName);
    if (map === null) throw new Error(`failed to find map ${name} in ${this.name}`);
    return map;
  }

  /** The internal map whose name ends with `suffix` (libbpf prefixes `.rodata` with part of the object name). */
  #internalMap(suffix: string): Handle {
    for (let map = this.#b.bpf_object__next_map(this.#obj, null); map !== null; ) {
      if (String(this.#b.bpf_map__name(map)).endsWith(suffix)) return map;
      map = this.#b.bpf_object__next_map(this.#obj, map);
    }
    throw new Error(`failed to find map ${suffix} in ${this.name}`);
  }

  setMaxEntries(mapName: string, entries: number): void {
    const err = this.#b.bpf_map__set_max_entries(this.#map(mapName), entries);
    if (err < 0) throw new Error(`failed to size map ${mapName}: ${this.#lib.strerror(err)}`);
  }

  maxEntries(mapName: string): number {
    return this.#b.bpf_map__max_entries(this.#map(mapName));
  }

  /** Replaces the whole `.rodata` image (read-only globals) before load; sizes must match exactly. */
  setReadOnlyData(bytes: Uint8Array): void {
    const map = this.#internalMap(".rodata");
    const size = this.#b.bpf_map__value_size(map);
    if (size !== bytes.byteLength) {
      throw new Error(
        `failed to set .rodata of ${this.name}: it holds ${size} bytes, not ${bytes.byteLength}`,
      );
    }
    const err = this.#b.bpf_map__set_initial_value(map, bytes, BigInt(bytes.byteLength));
    if (err < 0) throw new Error(`failed to set .rodata of ${this.name}: ${this.#lib.strerror(err)}`);
  }

  /** Before load: use an existing map (another object's, by fd) instead of creating this object's own. */
  reuseMap(mapName: string, fd: number): void {
    const err = this.#b.bpf_map__reuse_fd(this.#map(mapName), fd);
    if (err < 0)
      throw new Error(`failed to share map ${mapName} with ${this.name}: ${this.#lib.strerror(err)}`);
  }

  load(): void {
    const err = this.#b.bpf_object__load(this.#obj);
    if (err < 0) throw new Error(`failed to load BPF object ${this.name}: ${this.#lib.strerror(err)}`);
  }

  mapFd(name: string): number {
    const fd = this.#b.bpf_map__fd(this.#map(name));
    if (fd < 0) throw new Error(`failed to get fd of map ${name}: ${this.#lib.strerror(fd)}`);
    return fd;
  }

  #program(name: string): Handle {
    const programName = cString(name);
    const program = this.#b.bpf_object__find_program_by_name(this.#obj, programName);
    if (program === null) throw new Error(`failed to find program ${name} in ${this.name}`);
    return program;
  }

  programFd(name: string): number {
    const fd = this.#b.bpf_program__fd(this.#program(name));
    if (fd < 0) throw new Error(`failed to get fd of program ${name}: ${this.#lib.strerror(fd)}`);
    return fd;
  }

  /** Attaches a loaded program as a uprobe/uretprobe on `target.funcName` in `target.path`. */
  attachUprobe(programName: string, target: UprobeTarget): BpfLink {
    const program = this.#program(programName);
    const opts = new Uint8Array(UPROBE_OPTS_SIZE);
    const view = new DataView(opts.buffer);
    const funcName = cString(target.funcName);
    const path = cString(target.path);
    view.setBigUint64(0, BigInt(UPROBE_OPTS_SIZE), true);
    view.setBigUint64(16, BigInt(target.cookie), true);
    view.setUint8(24, target.retprobe ? 1 : 0);
    view.setBigUint64(32, BigInt(ptr(funcName)), true);
    const link = this.#b.bpf_program__attach_uprobe_opts(
      program,
      target.pid ?? -1,
      path,
      BigInt(target.funcOffset ?? 0),
      opts,
    );
    if (link === null) {
      const errno = this.#lib.libc.errno();
      throw new Error(
        `failed to attach ${target.retprobe ? "uretprobe" : "uprobe"} ${target.funcName} in ${target.path}: ` +
          this.#lib.libc.strerror(errno),
      );
    }
    const symbols = this.#b;
    return new BpfLink(() => symbols.bpf_link__destroy(link));
  }

  /** Attaches a loaded program where its section name says (`tp_btf/sys_enter`, `raw_tracepoint/…`). */
  attach(programName: string): BpfLink {
    const link = this.#b.bpf_program__attach(this.#program(programName));
    if (link === null) {
      throw new Error(`failed to attach ${programName}: ${this.#lib.libc.strerror(this.#lib.libc.errno())}`);
    }
    const symbols = this.#b;
    return new BpfLink(() => symbols.bpf_link__destroy(link));
  }

  /** Before load: makes a kprobe-type program attachable as uprobe_multi (Linux 6.6+). */
  setExpectedAttachType(programName: string, attachType: number): void {
    const err = this.#b.bpf_program__set_expected_attach_type(this.#program(programName), attachType);
    if (err < 0) throw new Error(`failed to set attach type of ${programName}: ${this.#lib.strerror(err)}`);
  }

  /** Attaches a loaded program to many functions of one file with a single link (bpf(BPF_LINK_CREATE)). */
  attachUprobeMulti(programName: string, target: UprobeMultiTarget): BpfLink {
    if (target.offsets.length === 0 || target.offsets.length !== target.cookies.length) {
      throw new Error(
        `failed to attach ${programName}: ${target.offsets.length} offsets, ${target.cookies.length} cookies`,
      );
    }
    const libc = this.#lib.libc;
    const path = cString(target.path);
    const offsets = new BigUint64Array(target.offsets.map((offset) => BigInt(offset)));
    const cookies = new BigUint64Array(target.cookies.map((cookie) => BigInt(cookie)));
    const attr = new Uint8Array(LINK_CREATE_ATTR_SIZE);
    const view = new DataView(attr.buffer);
    view.setUint32(0, this.programFd(programName), true);
    view.setUint32(8, BPF_TRACE_UPROBE_MULTI, true);
    view.setBigUint64(16, BigInt(ptr(path)), true);
    view.setBigUint64(24, BigInt(ptr(offsets)), true);
    view.setBigUint64(40, BigInt(ptr(cookies)), true);
    view.setUint32(48, target.offsets.length, true);
    view.setUint32(52, target.retprobe ? UPROBE_MULTI_RETURN : 0, true);
    view.setUint32(56, target.pid ?? 0, true);
    const fd = libc.bpf(BPF_LINK_CREATE, attr);
    if (fd < 0) {
      throw new Error(
        `failed to attach ${target.retprobe ? "uretprobes" : "uprobes"} in ${target.path}: ${libc.strerror(-fd)}`,
      );
    }
    return new BpfLink(() => libc.close(fd));
  }

  /**
   * Attaches a loaded cgroup program (cgroup_skb, …) to the cgroup v2 directory `cgroupPath` with a link: other
   * programs attached there keep running (links attach as with BPF_F_ALLOW_MULTI).
   */
  attachCgroup(programName: string, cgroupPath: string): BpfLink {
    const program = this.#program(programName);
    let cgroupFd: number;
    try {
      cgroupFd = openSync(cgroupPath, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (err) {
      throw new Error(`failed to open cgroup ${cgroupPath}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      const link = this.#b.bpf_program__attach_cgroup(program, cgroupFd);
      if (link === null) {
        const errno = this.#lib.libc.errno();
        throw new Error(
          `failed to attach ${programName} to ${cgroupPath}: ${this.#lib.libc.strerror(errno)}`,
        );
      }
      const symbols = this.#b;
      return new BpfLink(() => symbols.bpf_link__destroy(link));
    } finally {
      closeSync(cgroupFd);
    }
  }

  /** Sets `key` of a map to `value` (sizes exactly the map's); `flags` BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
  updateElement(mapName: string, key: Uint8Array, value: Uint8Array, flags = 0): void {
    const err = this.#b.bpf_map_update_elem(this.mapFd(mapName), key, value, flags);
    if (err < 0) throw new Error(`failed to update map ${mapName}: ${this.#lib.strerror(err)}`);
  }

  /** Sets element `index` of an array map to `value` (exactly the map's value size). */
  writeArrayElement(mapName: string, index: number, value: Uint8Array): void {
    const fd = this.mapFd(mapName);
    const key = new Uint32Array([index]);
    const err = this.#b.bpf_map_update_elem(fd, key, value, 0);
    if (err < 0) throw new Error(`failed to update map ${mapName}[${index}]: ${this.#lib.strerror(err)}`);
  }

  /** Every (key, value) of a hash map, as copies; entries changing meanwhile may be seen or not. */
  entries(mapName: string, keySize: number, valueSize: number, limit = 1 << 20): [Uint8Array, Uint8Array][] {
    const fd = this.mapFd(mapName);
    const out: [Uint8Array, Uint8Array][] = [];
    let key: Uint8Array | null = null;
    while (out.length < limit) {
      const next = new Uint8Array(keySize);
      // NULL key: the first one; -ENOENT: no more
      const err =
        key === null
          ? this.#b.bpf_map_get_next_key(fd, null, next)
          : this.#b.bpf_map_get_next_key(fd, key, next);
      if (err < 0) break;
      const value = new Uint8Array(valueSize);
      if (this.#b.bpf_map_lookup_elem(fd, next, value) === 0) out.push([next, value]);
      key = next;
    }
    return out;
  }

  /** Deletes `key` from a hash map; false when it was not there. */
  deleteKey(mapName: string, key: Uint8Array): boolean {
    return this.#b.bpf_map_delete_elem(this.mapFd(mapName), key) === 0;
  }

  /** Reads `count` consecutive u64 values of an array map (keys 0..count-1). */
  readU64Array(mapName: string, count: number): bigint[] {
    const fd = this.mapFd(mapName);
    const key = new Uint32Array(1);
    const value = new BigUint64Array(1);
    const values: bigint[] = [];
    for (let i = 0; i < count; i++) {
      key[0] = i;
      const err = this.#b.bpf_map_lookup_elem(fd, key, value);
      if (err < 0) throw new Error(`failed to read map ${mapName}[${i}]: ${this.#lib.strerror(err)}`);
      values.push(value[0]!);
    }
    return values;
  }

  /** BPF_PROG_TEST_RUN with a context (for SEC("syscall") programs); returns the program's return value. */
  testRun(programName: string, context: Uint8Array): number {
    return this.#lib.testRunByFd(this.programFd(programName), context);
  }

  /** Detaching is the caller's job (BpfLink.destroy); this frees maps and programs. */
  close(): void {
    if (this.#handle === null) return;
    this.#b.bpf_object__close(this.#handle);
    this.#handle = null;
  }
}
