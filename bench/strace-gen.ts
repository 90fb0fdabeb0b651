/**
 * A deterministic `strace -f -tt -T` trace with the shape of a real one (a Python HTTP server and its client
 * threads, file I/O, subprocesses run through a shell): many processes and threads, unfinished/resumed pairs
 * whenever threads overlap, long string arguments (request and response bodies, ELF headers, execve argv,
 * statx structs), half the processes traced with `-yy` annotations and half without. The calls keep the
 * fd tables consistent, so the replay enriches them as it would a real trace.
 */

import { writeFileSync } from "node:fs";

/** A deterministic pseudo-random sequence, so every run generates the same trace. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const SITE = "/usr/lib/python3.11";
const MODULES = [
  "encodings/__init__",
  "http/server",
  "http/client",
  "email/parser",
  "email/feedparser",
  "urllib/request",
  "urllib/parse",
  "socketserver",
  "subprocess",
  "tempfile",
  "json/decoder",
  "json/encoder",
  "threading",
  "selectors",
  "mimetypes",
  "html/__init__",
  "shutil",
  "random",
];
const LIBS = ["libc.so.6", "libm.so.6", "libz.so.1", "libexpat.so.1", "libpcre2-8.so.0", "libselinux.so.1"];
const ELF =
  '\u0001"\\177ELF\\2\\1\\1\\3\\0\\0\\0\\0\\0\\0\\0\\0\\3\\0>\\0\\1\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0"..., 832';
const PATH_DIRS = ["/root/.cargo/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"];
/** strace's default -s 32: longer strings end in `"..."` */
const BODY = "fwoR0+n38AuFxzYuoYVL6z6W7adiHVme";
/** Where a call's line may be cut in two when another thread prints in between (strace: unfinished). */
const CUT = "\u0001";

interface Proc {
  pid: number;
  annotated: boolean;
  cwd: string;
  /** open fds → what -yy prints for them */
  fds: Map<number, string>;
}

/** Writes `lines` lines (a few more: a sequence is never cut) to `path`; returns the count written. */
export async function generateStraceTrace(path: string, lines: number): Promise<number> {
  const rnd = lcg(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const hex = (digits: number): string => {
    let s = "";
    for (let i = 0; i < digits; i++) s += "0123456789abcdef"[int(0, 15)];
    return s;
  };
  // the file's writer does not truncate: start from an empty file
  writeFileSync(path, "");
  const writer = Bun.file(path).writer();
  let buf = "";
  let written = 0;
  let now = 14 * 3_600_000_000 + 35 * 60_000_000;
  let nextPid = 8853;
  let inode = 91000;

  const clock = (): string => {
    const s = Math.floor(now / 1e6);
    const two = (n: number): string => String(n).padStart(2, "0");
    return `${two(Math.floor(s / 3600) % 24)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}.${String(now % 1e6).padStart(6, "0")}`;
  };
  const lat = (): string => `<0.0000${int(10, 99)}>`;
  let threads: number[] = [];
  /** Threads with a call in flight (printed unfinished): they print nothing else until it resumes. */
  const busy = new Set<number>();
  const line = (tid: number, text: string): void => {
    now += int(1, 60);
    const prefix = `${tid}`;
    buf += `${prefix}${" ".repeat(Math.max(1, 6 - prefix.length))}${clock()} ${text}\n`;
    written++;
    if (buf.length > 4 << 20) {
      writer.write(buf);
      buf = "";
    }
  };
  /** One call; where the text marks a cut, another thread's call interrupts it often (as with the GIL). */
  const emit = (tid: number, text: string): void => {
    const cut = text.indexOf(CUT);
    if (cut < 0) {
      line(tid, text);
      return;
    }
    const others = threads.filter((t) => t !== tid && !busy.has(t));
    if (others.length === 0 || rnd() < 0.4) {
      line(tid, text.slice(0, cut) + text.slice(cut + 1));
      return;
    }
    line(tid, `${text.slice(0, cut)} <unfinished ...>`);
    const other = pick(others);
    if (rnd() < 0.6) line(other, `futex(0x7f1b${hex(8)}, FUTEX_WAKE_PRIVATE, 1) = 1 ${lat()}`);
    else line(other, `gettid() = ${other} ${lat()}`);
    const call = text.slice(0, text.indexOf("("));
    line(tid, `<... ${call} resumed>${text.slice(cut + 1)}`);
  };
  const fdText = (p: Proc, fd: number): string =>
    p.annotated ? `${fd}<${p.fds.get(fd) ?? "/dev/null"}>` : `${fd}`;
  const cwdArg = (p: Proc): string => (p.annotated ? `AT_FDCWD<${p.cwd}>` : "AT_FDCWD");
  const lowestFd = (p: Proc): number => {
    let fd = 3;
    while (p.fds.has(fd)) fd++;
    return fd;
  };
  const ret = (p: Proc, fd: number): string => (p.annotated ? `${fd}<${p.fds.get(fd)}>` : `${fd}`);

  const openFile = (p: Proc, tid: number, file: string, flags = "O_RDONLY|O_CLOEXEC"): number => {
    const fd = lowestFd(p);
    p.fds.set(fd, file);
    emit(tid, `openat(${cwdArg(p)}, "${file}", ${flags}${CUT}) = ${ret(p, fd)} ${lat()}`);
    return fd;
  };
  const close = (p: Proc, tid: number, fd: number): void => {
    emit(tid, `close(${fdText(p, fd)}${CUT}) = 0 ${lat()}`);
    p.fds.delete(fd);
  };
  const fstat = (p: Proc, tid: number, fd: number, size: number): void =>
    emit(
      tid,
      `newfstatat(${fdText(p, fd)}, "", ${CUT}{st_mode=S_IFREG|0644, st_size=${size}, ...}, AT_EMPTY_PATH) = 0 ${lat()}`,
    );
  /** A call of `tid` that another thread interrupts: printed in two halves. */
  const split = (tid: number, head: string, tail: string, between: () => void): void => {
    emit(tid, `${head} <unfinished ...>`);
    busy.add(tid);
    between();
    busy.delete(tid);
    const call = head.slice(0, head.indexOf("("));
    emit(tid, `<... ${call} resumed>${tail} ${lat()}`);
  };
  const futexWait = (tid: number, between: () => void): void =>
    split(
      tid,
      `futex(0x7f1b${hex(8)}, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, {tv_sec=${int(1700000000, 1799999999)}, tv_nsec=${int(0, 999999999)}}, FUTEX_BITSET_MATCH_ANY`,
      rnd() < 0.8 ? ") = 0" : ") = -1 ETIMEDOUT (Connection timed out)",
      between,
    );
  const futexWake = (tid: number): void =>
    emit(tid, `futex(0x7f1b${hex(8)}, FUTEX_WAKE_PRIVATE, 1) = ${int(0, 1)} ${lat()}`);
  const plumbing = (tid: number): void => {
    const r = rnd();
    if (r < 0.3) emit(tid, `gettid() = ${tid} ${lat()}`);
    else if (r < 0.55) emit(tid, `rt_sigprocmask(SIG_BLOCK, ~[], [], 8) = 0 ${lat()}`);
    else if (r < 0.7)
      emit(
        tid,
        `rt_sigaction(SIGINT, {sa_handler=0x${hex(6)}, sa_mask=[], sa_flags=SA_RESTORER|SA_ONSTACK, sa_restorer=0x7f1b${hex(8)}}, NULL, 8) = 0 ${lat()}`,
      );
    else if (r < 0.85)
      emit(
        tid,
        `mmap(NULL, ${int(1, 64) * 4096}, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f1b${hex(8)} ${lat()}`,
      );
    else emit(tid, `madvise(0x7f1b${hex(8)}, 8368128, MADV_DONTNEED) = 0 ${lat()}`);
  };

  /** Python's start: its libraries and modules, looked up and read. */
  const startPython = (p: Proc, tid: number): void => {
    for (const lib of LIBS.slice(0, int(2, LIBS.length))) {
      const fd = openFile(p, tid, `/lib/x86_64-linux-gnu/${lib}`);
      emit(tid, `read(${fdText(p, fd)}, ${ELF}) = 832 ${lat()}`);
      fstat(p, tid, fd, int(100000, 2000000));
      emit(
        tid,
        `mmap(NULL, ${int(100, 2000) * 4096}, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, ${fdText(p, fd)}, 0) = 0x7f1b${hex(8)} ${lat()}`,
      );
      emit(
        tid,
        `mmap(0x7f1b${hex(8)}, ${int(10, 400) * 4096}, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, ${fdText(p, fd)}, 0x${hex(5)}) = 0x7f1b${hex(8)} ${lat()}`,
      );
      close(p, tid, fd);
    }
    for (const mod of MODULES.slice(0, int(4, MODULES.length))) {
      const dir = `${SITE}/${mod.includes("/") ? mod.slice(0, mod.indexOf("/")) : ""}`;
      emit(
        tid,
        `newfstatat(${cwdArg(p)}, "${dir}", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0 ${lat()}`,
      );
      const pyc = `${SITE}/${mod.replace(/[^/]*$/, "")}__pycache__/${mod.slice(mod.lastIndexOf("/") + 1)}.cpython-311.pyc`;
      const fd = openFile(p, tid, pyc);
      fstat(p, tid, fd, int(2000, 90000));
      emit(
        tid,
        `ioctl(${fdText(p, fd)}, TCGETS, 0x7ffd${hex(8)}) = -1 ENOTTY (Inappropriate ioctl for device) ${lat()}`,
      );
      emit(tid, `lseek(${fdText(p, fd)}, 0, SEEK_CUR${CUT}) = 0 ${lat()}`);
      emit(
        tid,
        `read(${fdText(p, fd)}, ${CUT}"\\247\\r\\r\\n\\0\\0\\0\\0\\210\\325\\vf\\275\\27\\0\\0\\343\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0"..., ${int(2000, 90000)}) = ${int(2000, 90000)} ${lat()}`,
      );
      close(p, tid, fd);
    }
  };

  /** One subprocess: clone, pipes, the PATH search of execve, ls's statx calls, exit, wait4. */
  const subprocess = (parent: Proc, ptid: number): void => {
    const child: Proc = {
      pid: nextPid++,
      annotated: rnd() < 0.5,
      cwd: parent.cwd,
      fds: new Map(parent.fds),
    };
    const out = lowestFd(parent);
    const ino = inode++;
    parent.fds.set(out, `pipe:[${ino}]`);
    parent.fds.set(out + 1, `pipe:[${ino}]`);
    child.fds = new Map(parent.fds);
    emit(ptid, `pipe2([${out}, ${out + 1}], O_CLOEXEC) = 0 ${lat()}`);
    split(
      ptid,
      `clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f1b${hex(8)}, stack_size=0x9000}, 88`,
      `) = ${child.pid}`,
      () => {
        emit(child.pid, `dup2(${fdText(child, out + 1)}, 1) = 1 ${lat()}`);
        child.fds.set(1, child.fds.get(out + 1)!);
        const cmd = rnd() < 0.5 ? "ls" : "sh";
        const argv =
          cmd === "ls"
            ? `["ls", "-la", "/srv/www/static/assets/${hex(12)}"]`
            : `["sh", "-c", "cat /etc/hostname | wc -c; grep -c root /etc/passwd >/dev/null; echo ${hex(24)}"]`;
        for (const dir of PATH_DIRS.slice(0, int(1, 4)))
          emit(
            child.pid,
            `execve("${dir}/${cmd}", ${argv}, 0x7ffd${hex(8)} /* 39 vars */) = -1 ENOENT (No such file or directory) ${lat()}`,
          );
        emit(child.pid, `execve("/usr/bin/${cmd}", ${argv}, 0x7ffd${hex(8)} /* 39 vars */) = 0 ${lat()}`);
        for (const fd of [...child.fds.keys()]) if (fd > 2) child.fds.delete(fd);
        emit(child.pid, `brk(NULL) = 0x55${hex(10)} ${lat()}`);
        emit(
          child.pid,
          `mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f1b${hex(8)} ${lat()}`,
        );
        emit(
          child.pid,
          `access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory) ${lat()}`,
        );
        const cache = openFile(child, child.pid, "/etc/ld.so.cache");
        fstat(child, child.pid, cache, 37891);
        close(child, child.pid, cache);
        const libc = openFile(child, child.pid, "/lib/x86_64-linux-gnu/libc.so.6");
        emit(child.pid, `read(${fdText(child, libc)}, ${ELF}) = 832 ${lat()}`);
        close(child, child.pid, libc);
        emit(child.pid, `arch_prctl(ARCH_SET_FS, 0x7f1b${hex(8)}) = 0 ${lat()}`);
        emit(child.pid, `set_tid_address(0x7f1b${hex(8)}) = ${child.pid} ${lat()}`);
        if (cmd === "ls") {
          const dir = "/srv/www/static/assets";
          const d = openFile(child, child.pid, dir, "O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY");
          emit(
            child.pid,
            `getdents64(${fdText(child, d)}, 0x55${hex(6)} /* ${int(5, 60)} entries */, 32768) = ${int(400, 3000)} ${lat()}`,
          );
          emit(
            child.pid,
            `getdents64(${fdText(child, d)}, 0x55${hex(6)} /* 0 entries */, 32768) = 0 ${lat()}`,
          );
          close(child, child.pid, d);
          for (let i = int(3, 12); i > 0; i--) {
            const f = `${dir}/${hex(12)}.${pick(["css", "js", "png", "html"])}`;
            emit(
              child.pid,
              `statx(${cwdArg(child)}, "${f}", AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW|AT_NO_AUTOMOUNT, STATX_MODE|STATX_NLINK|STATX_UID|STATX_GID|STATX_MTIME|STATX_SIZE, {stx_mask=STATX_BASIC_STATS|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=${int(100, 99999)}, ...}) = 0 ${lat()}`,
            );
            emit(
              child.pid,
              `lgetxattr("${f}", "security.selinux", 0x55${hex(6)}, 255) = -1 ENODATA (No data available) ${lat()}`,
            );
            emit(
              child.pid,
              `getxattr("${f}", "system.posix_acl_access", NULL, 0) = -1 ENODATA (No data available) ${lat()}`,
            );
          }
          emit(
            child.pid,
            `write(${fdText(child, 1)}, "total ${int(10, 900)}\\ndrwxr-xr-x 2 root root 4096 Dec  4 14:33 .\\ndrwxr-xr-x 3 root root 4096 Dec  4 14:33 ..\\n-rw-r--r-- 1 root root ${int(100, 99999)} Dec  4 14:33 ${hex(12)}.css\\n"..., ${int(300, 4000)}) = ${int(300, 4000)} ${lat()}`,
          );
        } else {
          const f = openFile(child, child.pid, "/etc/hostname");
          emit(child.pid, `read(${fdText(child, f)}, "bench-host\\n", 131072) = 11 ${lat()}`);
          emit(child.pid, `read(${fdText(child, f)}, "", 131072) = 0 ${lat()}`);
          close(child, child.pid, f);
          emit(child.pid, `write(${fdText(child, 1)}, "11\\n", 3) = 3 ${lat()}`);
        }
        emit(child.pid, `exit_group(0) = ?`);
        emit(child.pid, "+++ exited with 0 +++");
      },
    );
    emit(ptid, `close(${fdText(parent, out + 1)}) = 0 ${lat()}`);
    parent.fds.delete(out + 1);
    split(
      ptid,
      `poll([{fd=${out}, events=POLLIN}], 1, -1`,
      `) = 1 ([{fd=${out}, revents=POLLIN|POLLHUP}])`,
      () => {},
    );
    emit(
      ptid,
      `read(${fdText(parent, out)}, "total 96\\ndrwxr-xr-x 2 root root 4096 Dec  4 14:33 .\\n"..., 32768) = ${int(100, 3000)} ${lat()}`,
    );
    close(parent, ptid, out);
    emit(
      ptid,
      `wait4(${child.pid}, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = ${child.pid} ${lat()}`,
    );
    emit(
      ptid,
      `--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=${child.pid}, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---`,
    );
  };

  /** One HTTP request: the client thread sends, a server thread (new each time) answers from a file. */
  const request = (p: Proc, client: number, listen: number, port: number): void => {
    const sock = lowestFd(p);
    const cport = int(32768, 60999);
    p.fds.set(sock, `TCP:[127.0.0.1:${cport}->127.0.0.1:${port}]`);
    emit(client, `socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = ${ret(p, sock)} ${lat()}`);
    emit(
      client,
      `connect(${fdText(p, sock)}, {sa_family=AF_INET, sin_port=htons(${port}), sin_addr=inet_addr("127.0.0.1")}, 16) = 0 ${lat()}`,
    );
    const file = `/srv/www/static/f${int(1, 50)}.txt`;
    const server = nextPid++;
    threads.push(server);
    split(
      client,
      `sendto(${fdText(p, sock)}, "GET ${file.slice(11)} HTTP/1.1\\r\\nAccept-En"..., 126, 0, NULL, 0`,
      ") = 126",
      () => {
        const conn = lowestFd(p);
        p.fds.set(conn, `TCP:[127.0.0.1:${port}->127.0.0.1:${cport}]`);
        emit(
          p.pid,
          `accept4(${fdText(p, listen)}, {sa_family=AF_INET, sin_port=htons(${cport}), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = ${ret(p, conn)} ${lat()}`,
        );
        emit(
          p.pid,
          `clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f1b${hex(8)}, parent_tid=0x7f1b${hex(8)}, exit_signal=0, stack=0x7f1b${hex(8)}, stack_size=0x7ffe00, tls=0x7f1b${hex(8)}} => {parent_tid=[${server}]}, 88) = ${server} ${lat()}`,
        );
        emit(server, `set_robust_list(0x7f1b${hex(8)}, 24) = 0 ${lat()}`);
        emit(server, `rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0 ${lat()}`);
        emit(
          server,
          `recvfrom(${fdText(p, conn)}, ${CUT}"GET ${file.slice(11)} HTTP/1.1\\r\\nAccept-En"..., 8192, 0, NULL, NULL) = 126 ${lat()}`,
        );
        futexWait(server, () => futexWake(client));
        emit(
          server,
          `newfstatat(${cwdArg(p)}, "${file}", {st_mode=S_IFREG|0644, st_size=${int(1000, 99999)}, ...}, 0) = 0 ${lat()}`,
        );
        const f = openFile(p, server, file);
        fstat(p, server, f, int(1000, 99999));
        emit(
          server,
          `ioctl(${fdText(p, f)}, TCGETS, 0x7f1b${hex(8)}) = -1 ENOTTY (Inappropriate ioctl for device) ${lat()}`,
        );
        emit(server, `lseek(${fdText(p, f)}, 0, SEEK_CUR${CUT}) = 0 ${lat()}`);
        emit(
          server,
          `write(${fdText(p, 2)}, "127.0.0.1 - - [04/Dec/2026 14:35:37] \\"GET ${file.slice(11)} HTTP/1.1\\" 200 -\\n", 62) = 62 ${lat()}`,
        );
        emit(
          server,
          `sendto(${fdText(p, conn)}, "HTTP/1.0 200 OK\\r\\nServer: SimpleH"..., 189, 0, NULL, 0${CUT}) = 189 ${lat()}`,
        );
        for (let i = int(1, 3); i > 0; i--) {
          emit(server, `read(${fdText(p, f)}, ${CUT}"${BODY}"..., 65536) = 65536 ${lat()}`);
          emit(server, `sendto(${fdText(p, conn)}, "${BODY}"..., 65536, 0, NULL, 0${CUT}) = 65536 ${lat()}`);
        }
        emit(server, `read(${fdText(p, f)}, ${CUT}"", 65536) = 0 ${lat()}`);
        close(p, server, f);
        emit(server, `shutdown(${fdText(p, conn)}, SHUT_WR) = 0 ${lat()}`);
        close(p, server, conn);
        emit(server, `madvise(0x7f1b${hex(8)}, 8368128, MADV_DONTNEED) = 0 ${lat()}`);
        emit(server, "exit(0) = ?");
        emit(server, "+++ exited with 0 +++");
        threads.pop();
      },
    );
    split(
      client,
      `recvfrom(${fdText(p, sock)}, `,
      `"HTTP/1.0 200 OK\\r\\nServer: SimpleH"..., 8192, 0, NULL, NULL) = 189`,
      () => futexWait(p.pid, () => plumbing(client)),
    );
    emit(
      client,
      `recvfrom(${fdText(p, sock)}, ${CUT}"${BODY}"..., 65536, 0, NULL, NULL) = ${int(1000, 65536)} ${lat()}`,
    );
    close(p, client, sock);
    // the body saved to a temporary file
    const tmp = `/tmp/tmp${hex(8)}`;
    const t = openFile(p, client, tmp, "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600");
    emit(client, `write(${fdText(p, t)}, "${BODY}"..., 1000${CUT}) = 1000 ${lat()}`);
    close(p, client, t);
    emit(client, `unlink("${tmp}") = 0 ${lat()}`);
    plumbing(client);
  };

  while (written < lines) {
    // a Python server process with a client thread; requests, subprocesses, the GIL passed between threads
    const p: Proc = {
      pid: nextPid++,
      annotated: rnd() < 0.5,
      cwd: "/srv/www/static",
      fds: new Map([
        [0, "/dev/null<char 1:3>"],
        [1, `pipe:[${inode++}]`],
        [2, "/var/log/app/error.log"],
      ]),
    };
    emit(
      p.pid,
      `execve("/usr/bin/python3", ["/usr/bin/python3", "/srv/app/workload.py", "--port", "0", "--root", "/srv/www/static", "--requests", "${int(100, 9000)}"], 0x7fff${hex(8)} /* 39 vars */) = 0 ${lat()}`,
    );
    startPython(p, p.pid);
    const listen = lowestFd(p);
    const port = int(30000, 60000);
    p.fds.set(listen, `TCP:[127.0.0.1:${port}]`);
    emit(p.pid, `socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = ${ret(p, listen)} ${lat()}`);
    emit(
      p.pid,
      `bind(${fdText(p, listen)}, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0 ${lat()}`,
    );
    emit(
      p.pid,
      `getsockname(${fdText(p, listen)}, {sa_family=AF_INET, sin_port=htons(${port}), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0 ${lat()}`,
    );
    emit(p.pid, `listen(${fdText(p, listen)}, 5) = 0 ${lat()}`);
    const client = nextPid++;
    threads = [p.pid, client];
    emit(
      p.pid,
      `clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f1b${hex(8)}, parent_tid=0x7f1b${hex(8)}, exit_signal=0, stack=0x7f1b${hex(8)}, stack_size=0x7ffe00, tls=0x7f1b${hex(8)}} => {parent_tid=[${client}]}, 88) = ${client} ${lat()}`,
    );
    emit(client, `set_robust_list(0x7f1b${hex(8)}, 24) = 0 ${lat()}`);
    for (let r = int(20, 120); r > 0 && written < lines; r--) {
      request(p, client, listen, port);
      if (rnd() < 0.05) subprocess(p, client);
      for (let k = int(0, 6); k > 0; k--) futexWait(client, () => plumbing(p.pid));
    }
    close(p, p.pid, listen);
    emit(client, "exit(0) = ?");
    emit(client, "+++ exited with 0 +++");
    emit(p.pid, "exit_group(0) = ?");
    emit(p.pid, "+++ exited with 0 +++");
  }
  writer.write(buf);
  await writer.end();
  return written;
}
