/**
 * What the calibration runs from a user-given path — the child that dlopens a library (its ELF constructors
 * run), an executable such as node — runs without privilege. `carnot __sandbox -- PROGRAM ARGS…`
 * (src/commands/sandbox.ts) confines its own process and then executes PROGRAM in it: a network namespace of its own (only a loopback), uid and gid
 * 65534 (nobody) without supplementary groups, no capabilities (bounding set, ambient and inheritable sets
 * emptied), no_new_privs, and a seccomp filter refusing what a calibration never needs (namespaces, mounts,
 * ptrace and other processes' memory, BPF and perf, modules, keys, signals to other processes, io_uring).
 *
 * Why confine-then-exec: Bun is multi-threaded, and uids, namespaces, no_new_privs and seccomp filters are per
 * thread. execve ends every other thread and keeps only the calling thread's state, so the confinement is set
 * on this thread alone (raw system calls, not glibc's set*id that signals every thread; no TSYNC needed) and
 * the foreign code only ever runs in the new image, entirely inside it.
 *
 * Paths an unprivileged uid cannot reach (a program under /root): the program is opened before the uid
 * changes and executed through its descriptor (execveat); a library to load is handed over open by the parent
 * (src/commands/calibrate.ts loads it through /proc/self/fd).
 */
import { readFileSync } from "node:fs";
import { Libc, cString, pointerArray } from "../../../../ffi/libc.ts";
import { openLibcExec, openLibseccomp } from "../../../../ffi/libseccomp.ts";
import { compileProfile, type OciProfile } from "../../../consumers/seccomp/apply.ts";
import { selfCommand } from "../../../self.ts";

/** nobody / nogroup */
export const SANDBOX_UID = 65534;
export const SANDBOX_GID = 65534;

/** x86-64 system call numbers */
const SYS = {
  fcntl: 72,
  openat: 257,
  socket: 41,
  ioctl: 16,
  close: 3,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  capset: 126,
  prctl: 157,
  unshare: 272,
  execveat: 322,
} as const;
const CLONE_NEWNET = 0x40000000;
const PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const AF_INET = 2;
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const AT_EMPTY_PATH = 0x1000;
const O_PATH_CLOEXEC = 0o10000000 | 0o2000000;
const AT_FDCWD = -100;
const F_SETFD = 2;
const EPERM = 1;
const ENOSYS = 38;
/** clone flags that make a namespace */
const CLONE_NAMESPACES = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

/** The command line that runs `command` confined, handing it descriptors 3 to 3 + `files` − 1 open. */
export function sandboxed(command: readonly string[], files = 0): string[] {
  return [...selfCommand(), "__sandbox", "--fds", String(files), "--", ...command];
}

/**
 * The environment of a confined program: root's own is not handed over, only the locale, HOME (the sandbox
 * process itself still runs as root; a made-up HOME would have Bun create it) and `extra`. Bun's transpiler
 * cache is off: neither the sandbox process nor a confined carnot writes one.
 */
export function sandboxEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    TMPDIR: "/tmp",
    BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
  };
  for (const name of ["HOME", "LANG", "LC_ALL", "TZ"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/** The seccomp filter: everything else allowed (the runtimes it runs use much), these refused. */
export function sandboxFilter(pid: number): OciProfile {
  const refuse = (names: string[], errnoRet = EPERM) => ({ names, action: "SCMP_ACT_ERRNO", errnoRet });
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [
      refuse([
        ...["unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree"],
        ...["fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"],
        ...["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "pidfd_send_signal"],
        ...[
          "bpf",
          "perf_event_open",
          "userfaultfd",
          "fanotify_init",
          "open_by_handle_at",
          "name_to_handle_at",
        ],
        ...["init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot"],
        ...["keyctl", "add_key", "request_key", "swapon", "swapoff", "acct", "quotactl", "syslog"],
        ...["sethostname", "setdomainname", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex"],
        ...["iopl", "ioperm", "vhangup", "tkill"],
        ...["setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups"],
        ...["setfsuid", "setfsgid", "capset"],
      ]),
      // the runtimes fall back to what the filter sees: clone instead of clone3 (whose flags it cannot read),
      // epoll instead of io_uring (whose operations it would not see at all)
      refuse(["clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"], ENOSYS),
      ...CLONE_NAMESPACES.map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
      // signals to this process only
      {
        names: ["kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: pid, valueTwo: 0, op: "SCMP_CMP_NE" }],
      },
    ],
  };
}

/** Throws with `what` and errno's text when a system call failed. */
function must(libc: Libc, what: string, result: number): number {
  if (result < 0) throw new Error(`cannot ${what}: ${libc.strerror(-result)}`);
  return result;
}

/** The namespace's loopback is down when it is made: up, for the node calibration's 127.0.0.1 sockets. */
function loopbackUp(libc: Libc): void {
  const fd = must(libc, "open a socket", libc.syscall(SYS.socket, AF_INET, SOCK_DGRAM_CLOEXEC, 0));
  try {
    const ifreq = new Uint8Array(40);
    ifreq.set(cString("lo"), 0);
    must(libc, "read the loopback's flags", libc.syscall(SYS.ioctl, fd, SIOCGIFFLAGS, ifreq));
    const view = new DataView(ifreq.buffer);
    view.setUint16(16, view.getUint16(16, true) | IFF_UP, true);
    must(libc, "bring the loopback up", libc.syscall(SYS.ioctl, fd, SIOCSIFFLAGS, ifreq));
  } finally {
    libc.close(fd);
  }
}

/** This thread gives up every capability; the bounding set first (that needs CAP_SETPCAP). */
function dropBoundingSet(libc: Libc): void {
  const last = Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
  for (let cap = 0; cap <= last; cap++)
    must(libc, `drop capability ${cap} from the bounding set`, libc.syscall(SYS.prctl, PR_CAPBSET_DROP, cap));
}

function dropCapabilities(libc: Libc): void {
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, LINUX_CAPABILITY_VERSION_3, true);
  must(libc, "drop every capability", libc.syscall(SYS.capset, header, new Uint8Array(24)));
  must(
    libc,
    "clear the ambient capabilities",
    libc.syscall(SYS.prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL),
  );
}

function loadFilter(pid: number): void {
  const seccomp = openLibseccomp();
  const libc = openLibcExec();
  const { context } = compileProfile(seccomp, libc, sandboxFilter(pid));
  const rc = seccomp.seccomp_load(context);
  if (rc !== 0) throw new Error(`cannot load the seccomp filter: ${String(libc.strerror(-rc))}`);
}

/**
 * Confines this process (see above) and executes `program` (an absolute path) with `args` and this process's
 * environment, descriptors 3 to 3 + `files` − 1 staying open across (the runtime marks the ones above 3
 * close-on-exec). Returns never; throws saying which step failed.
 */
export function execConfined(program: string, args: readonly string[], files = 0): void {
  const libc = new Libc();
  for (let fd = 3; fd < 3 + files; fd++)
    must(libc, `hand over descriptor ${fd}`, libc.syscall(SYS.fcntl, fd, F_SETFD, 0));
  const programFd = must(
    libc,
    `open ${program}`,
    libc.syscall(SYS.openat, AT_FDCWD, cString(program), O_PATH_CLOEXEC),
  );
  must(libc, "enter a network namespace of its own", libc.syscall(SYS.unshare, CLONE_NEWNET));
  loopbackUp(libc);
  dropBoundingSet(libc);
  must(libc, "drop the supplementary groups", libc.syscall(SYS.setgroups, 0, null));
  must(libc, `become gid ${SANDBOX_GID}`, libc.syscall(SYS.setresgid, SANDBOX_GID, SANDBOX_GID, SANDBOX_GID));
  must(libc, `become uid ${SANDBOX_UID}`, libc.syscall(SYS.setresuid, SANDBOX_UID, SANDBOX_UID, SANDBOX_UID));
  dropCapabilities(libc);
  must(libc, "set no_new_privs", libc.syscall(SYS.prctl, PR_SET_NO_NEW_PRIVS, 1));
  // Bun ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across execve
  for (const signal of [13, 25]) libc.defaultDisposition(signal);
  libc.blockSignals(
    Array.from({ length: 64 }, (_, i) => i + 1),
    false,
  );
  loadFilter(process.pid);
  // everything execveat reads is made (and kept referenced) before the call
  const path = cString("");
  const argv = [program, ...args].map(cString);
  const env = Object.entries(process.env).map(([name, value]) => cString(`${name}=${value}`));
  const argvArray = pointerArray(argv);
  const envArray = pointerArray(env);
  const result = libc.syscall(SYS.execveat, programFd, path, argvArray, envArray, AT_EMPTY_PATH);
  void [path, argv, env];
  must(libc, `execute ${program}`, result);
}
