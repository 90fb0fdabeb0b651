/**
 * What the calibration runs from a user-given path — the child that dlopens a library (its ELF constructors
 * run), an executable such as node — runs without privilege. `carnot __sandbox -- PROGRAM ARGS…`
 * (src/commands/sandbox.ts) confines its own process and then executes PROGRAM in it: a network namespace of
 * its own (only a loopback), no capabilities (bounding set, ambient and inheritable sets emptied),
 * no_new_privs, and a seccomp filter refusing what a calibration never needs (namespaces, mounts, ptrace and
 * other processes' memory, BPF and perf, modules, keys, signals to other processes, io_uring).
 *
 * Who it runs as: a carnot privileged to make a network namespace (CAP_SYS_ADMIN, root) makes it directly and
 * the child becomes uid and gid 65534 (nobody) without supplementary groups. Otherwise (carnot.service: its
 * own unprivileged user, no CAP_SYS_ADMIN nor CAP_SETUID) the network namespace is made together with a user
 * namespace, where the child holds capabilities over that namespace only (enough to bring its loopback up,
 * then dropped too) and none in the host's: it stays the unprivileged uid carnot runs as (mapped to itself,
 * setgroups denied), since only a capability in the host's namespace could change it; root without
 * CAP_SYS_ADMIN (a container) first becomes nobody, and without CAP_SETUID it is refused. Where user
 * namespaces are disabled (user.max_user_namespaces = 0, kernel.unprivileged_userns_clone = 0, a service's
 * RestrictNamespaces) the calibration fails, saying so.
 *
 * Why confine-then-exec: Bun is multi-threaded, and uids, namespaces, no_new_privs and seccomp filters are per
 * thread. execve ends every other thread and keeps only the calling thread's state, so the confinement is set
 * on this thread alone (raw system calls, not glibc's set*id that signals every thread; no TSYNC needed) and
 * the foreign code only ever runs in the new image, entirely inside it. A user namespace alone cannot be made
 * so (unshare(CLONE_NEWUSER) refuses a multi-threaded caller): util-linux's unshare(1), single-threaded, makes
 * it and executes `carnot __sandbox --in-namespace` again inside (same pid throughout, which the node
 * calibration's probes filter on), which confines the rest as above.
 *
 * Paths an unprivileged uid cannot reach (a program under /root): the program is opened before the uid
 * changes and executed through its descriptor (execveat); a library to load is handed over open by the parent
 * (src/commands/calibrate.ts loads it through /proc/self/fd).
 */
import { existsSync, readFileSync } from "node:fs";
import { Libc, cString, pointerArray } from "../../../../ffi/libc.ts";
import { openLibcExec, openLibseccomp } from "../../../../ffi/libseccomp.ts";
import { compileProfile, type OciProfile } from "../../../consumers/seccomp/apply.ts";
import { selfCommand } from "../../../self.ts";
import { untrustedReason } from "../../trusted-path.ts";

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
const CLONE_NEWUSER = 0x10000000;
/** a flag unshare(2) rejects (EINVAL) after a seccomp filter has seen the call */
const CLONE_PTRACE = 0x2000;
/** where util-linux installs unshare(1) */
const UNSHARE = ["/usr/bin/unshare", "/bin/unshare"];
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
const FD_CLOEXEC = 1;
const EPERM = 1;
const EINVAL = 22;
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

/** Leaves root for nobody without supplementary groups (needs CAP_SETGID and CAP_SETUID). */
function becomeNobody(libc: Libc): void {
  must(libc, "drop the supplementary groups", libc.syscall(SYS.setgroups, 0, null));
  must(libc, `become gid ${SANDBOX_GID}`, libc.syscall(SYS.setresgid, SANDBOX_GID, SANDBOX_GID, SANDBOX_GID));
  must(libc, `become uid ${SANDBOX_UID}`, libc.syscall(SYS.setresuid, SANDBOX_UID, SANDBOX_UID, SANDBOX_UID));
}

/** Why user namespaces cannot be made here (a sysctl or a system call filter refuses them), or null. */
function userNamespacesOff(libc: Libc): string | null {
  for (const [name, file] of [
    ["user.max_user_namespaces", "/proc/sys/user/max_user_namespaces"],
    ["kernel.unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone"],
  ] as const) {
    try {
      if (readFileSync(file, "utf8").trim() === "0") return `user namespaces are disabled (${name} = 0)`;
    } catch {}
  }
  // the kernel rejects the invalid flag (EINVAL) only if no filter refused the call before (EPERM)
  const probe = libc.syscall(SYS.unshare, CLONE_NEWUSER | CLONE_NEWNET | CLONE_PTRACE);
  if (probe !== -EINVAL) return "a system call filter refuses user namespaces (systemd: RestrictNamespaces=)";
  return null;
}

/** Whether this process is in a user namespace made for it: one mapped uid (unshare --map-current-user). */
function inOwnUserNamespace(): boolean {
  const lines = readFileSync("/proc/self/uid_map", "utf8").trim().split("\n");
  return lines.length === 1 && lines[0]!.trim().split(/\s+/)[2] === "1";
}

/**
 * Not privileged to make a network namespace: executes unshare(1), which makes a user namespace and a
 * network namespace for this process and executes `carnot __sandbox --in-namespace` in them (see above).
 * Root leaves uid 0 first; anyone else drops its capabilities, so unshare(1) runs with none. Returns never.
 */
function execInUserNamespace(
  libc: Libc,
  program: string,
  args: readonly string[],
  files: number,
  programFd: number,
): never {
  const why = userNamespacesOff(libc);
  if (why) throw new Error(`cannot enter a network namespace of its own: ${why}`);
  const unshare = UNSHARE.find((path) => existsSync(path));
  if (!unshare)
    throw new Error("cannot enter a network namespace of its own: unshare(1) (util-linux) not found");
  const untrusted = untrustedReason(unshare);
  if (untrusted)
    throw new Error(`cannot enter a network namespace of its own: not running ${unshare}: ${untrusted}`);
  if (libc.geteuid() !== 0) dropCapabilities(libc);
  else {
    try {
      becomeNobody(libc);
    } catch (err) {
      throw new Error(
        `root without CAP_SYS_ADMIN needs CAP_SETUID and CAP_SETGID: ${(err as Error).message}`,
      );
    }
  }
  must(libc, "hand over the program", libc.syscall(SYS.fcntl, programFd, F_SETFD, 0));
  const inner = [...selfCommand(), "__sandbox", "--in-namespace", "--fds", String(files), "--program-fd"];
  const argv = [unshare, "--user", "--net", "--map-current-user", "--keep-caps", "--", ...inner];
  argv.push(String(programFd), "--", program, ...args);
  const env = Object.entries(process.env).map(([name, value]) => `${name}=${value}`);
  throw new Error(`cannot execute ${unshare}: ${libc.strerror(libc.execve(unshare, argv, env))}`);
}

/**
 * Confines this process (see above) and executes `program` (an absolute path) with `args` and this process's
 * environment, descriptors 3 to 3 + `files` − 1 staying open across (the runtime marks the ones above 3
 * close-on-exec). `inNamespace`: the program's descriptor, this process being already in the user and network
 * namespaces unshare(1) made for it. Returns never; throws saying which step failed.
 */
export function execConfined(
  program: string,
  args: readonly string[],
  files = 0,
  inNamespace: { programFd: number } | null = null,
): void {
  const libc = new Libc();
  for (let fd = 3; fd < 3 + files; fd++)
    must(libc, `hand over descriptor ${fd}`, libc.syscall(SYS.fcntl, fd, F_SETFD, 0));
  let programFd: number;
  if (inNamespace) {
    if (!inOwnUserNamespace()) throw new Error("--in-namespace outside a user namespace of its own");
    programFd = inNamespace.programFd;
    must(
      libc,
      "keep the program's descriptor from it",
      libc.syscall(SYS.fcntl, programFd, F_SETFD, FD_CLOEXEC),
    );
  } else {
    programFd = must(
      libc,
      `open ${program}`,
      libc.syscall(SYS.openat, AT_FDCWD, cString(program), O_PATH_CLOEXEC),
    );
    const entered = libc.syscall(SYS.unshare, CLONE_NEWNET);
    if (entered === -EPERM) execInUserNamespace(libc, program, args, files, programFd);
    must(libc, "enter a network namespace of its own", entered);
  }
  loopbackUp(libc);
  dropBoundingSet(libc);
  if (!inNamespace) becomeNobody(libc);
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
