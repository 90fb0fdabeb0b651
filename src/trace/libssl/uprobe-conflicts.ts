/**
 * Why the kernel refused a uprobe, and who is in the way. The kernel keeps one uprobe per (file, offset) for
 * every tracer; a second one with another ref_ctr_offset (the USDT semaphore; bcc's tools pass one) is
 * refused with EINVAL, and only its log says why (`ref_ctr_offset mismatch. inode: 0x… offset: 0x…`). The
 * other holder is found among the perf-event uprobes of every process (BPF_TASK_FD_QUERY, what
 * `bpftool perf` lists).
 */
import { ptr } from "bun:ffi";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { cString, type Libc } from "../../../ffi/libc.ts";

const SYS_READ = 0;
const SYS_LSEEK = 8;
const SYS_OPENAT = 257;
const AT_FDCWD = -100;
const O_RDONLY_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;
const SEEK_END = 2;
const EAGAIN = 11;
const EPIPE = 32;
/** bpf(2) BPF_TASK_FD_QUERY; attr: pid 0, fd 4, flags 8, buf_len 12, buf 16, prog_id 24, fd_type 28, probe_offset 32 */
const BPF_TASK_FD_QUERY = 20;
const TASK_FD_QUERY_SIZE = 48;
const BPF_FD_TYPE_UPROBE = 4;
const BPF_FD_TYPE_URETPROBE = 5;

/** The kernel log (/dev/kmsg) from now on: what the kernel says while carnot attaches. */
export class KernelLog {
  readonly #libc: Libc;
  readonly #fd: number;

  private constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.#fd = fd;
  }

  /** Null where the log cannot be read (no root, no /dev/kmsg): the reasons are then the errno alone. */
  static fromNow(libc: Libc): KernelLog | null {
    const fd = libc.syscall(SYS_OPENAT, AT_FDCWD, cString("/dev/kmsg"), O_RDONLY_NONBLOCK_CLOEXEC);
    if (fd < 0) return null;
    if (libc.syscall(SYS_LSEEK, fd, 0, SEEK_END) < 0) {
      libc.close(fd);
      return null;
    }
    return new KernelLog(libc, fd);
  }

  /** The messages logged since the last call (or since fromNow). */
  messages(): string[] {
    const out: string[] = [];
    const buf = new Uint8Array(8192);
    for (let i = 0; i < 10_000; i++) {
      const n = this.#libc.syscall(SYS_READ, this.#fd, buf, buf.byteLength);
      if (n === -EPIPE) continue; // records overwritten meanwhile: go on with the next one
      if (n <= 0 || n === -EAGAIN) break;
      // "priority,sequence,time,flags;message\n"
      const record = new TextDecoder().decode(buf.subarray(0, n));
      const text = record.slice(record.indexOf(";") + 1).split("\n")[0];
      if (text !== undefined) out.push(text);
    }
    return out;
  }

  close(): void {
    this.#libc.close(this.#fd);
  }
}

/** The kernel's "ref_ctr_offset mismatch" messages about `inode`: file offset → the other uprobe's ref_ctr_offset. */
export function refCtrMismatches(messages: readonly string[], inode: number): Map<number, string> {
  const found = new Map<number, string>();
  for (const message of messages) {
    const m =
      /ref_ctr_offset mismatch\. inode: 0x([0-9a-f]+) offset: 0x([0-9a-f]+) ref_ctr_offset\(old\): (0x[0-9a-f]+)/.exec(
        message,
      );
    if (m && Number.parseInt(m[1]!, 16) === inode) found.set(Number.parseInt(m[2]!, 16), m[3]!);
  }
  return found;
}

/**
 * Processes holding a perf-event uprobe on `path` at one of `offsets` (file offsets): offset → "pid N (comm)".
 * Best effort: processes that come and go while they are listed are skipped.
 */
export function uprobeHolders(libc: Libc, path: string, offsets: readonly number[]): Map<number, string[]> {
  const holders = new Map<number, string[]>();
  let inode: number;
  try {
    inode = statSync(path).ino;
  } catch {
    return holders;
  }
  const wanted = new Set(offsets);
  const attr = new Uint8Array(TASK_FD_QUERY_SIZE);
  const view = new DataView(attr.buffer);
  const name = new Uint8Array(4096);
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== "anon_inode:[perf_event]") continue;
      } catch {
        continue;
      }
      attr.fill(0);
      view.setUint32(0, pid, true);
      view.setUint32(4, Number(fd), true);
      view.setUint32(12, name.byteLength, true);
      view.setBigUint64(16, BigInt(ptr(name)), true);
      if (libc.bpf(BPF_TASK_FD_QUERY, attr) < 0) continue;
      const type = view.getUint32(28, true);
      const offset = Number(view.getBigUint64(32, true));
      if ((type !== BPF_FD_TYPE_UPROBE && type !== BPF_FD_TYPE_URETPROBE) || !wanted.has(offset)) continue;
      const length = Math.min(view.getUint32(12, true), name.byteLength);
      const file = new TextDecoder().decode(name.subarray(0, name.indexOf(0) < 0 ? length : name.indexOf(0)));
      try {
        if (statSync(file).ino !== inode) continue;
      } catch {
        continue;
      }
      let comm = "?";
      try {
        comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {}
      const list = holders.get(offset) ?? [];
      const who = `pid ${pid} (${comm})`;
      if (!list.includes(who)) list.push(who);
      holders.set(offset, list);
    }
  }
  return holders;
}
