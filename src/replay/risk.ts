/**
 * The risk_tags catalogue (documented in docs/risk-tags.md). Each rule looks only at the record being
 * built, so it is cheap and needs no later look at the trace.
 */
import { O_ACCMODE, O_APPEND, O_CREAT, O_TRUNC, PROT_EXEC, SOCK_PACKET, SOCK_RAW } from "./constants.ts";

export interface RiskInput {
  call: string;
  words: (number | null)[];
  retval: number | null;
  absPath: string | null;
  /** Destination of rename/renameat. */
  destPath: string | null;
  /** Type of the fd the call acts on (mmap, execveat). */
  fdType: string | null;
  fdPath: string | null;
  /** open flags when the call opens something. */
  openFlags: number | null;
  /** New uid/gid the call asks for (set*id), or null. */
  targetIds: (number | null)[] | null;
  /** socket(): family and type as printed. */
  socketFamily: string | null;
  socketType: number | null;
}

const TMP_DIRS = ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/"];
const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox"]);
const SENSITIVE_EXACT = new Set([
  "/etc/shadow",
  "/etc/gshadow",
  "/etc/shadow-",
  "/etc/gshadow-",
  "/etc/sudoers",
  "/etc/master.passwd",
  "/proc/kcore",
  "/dev/mem",
  "/dev/kmem",
]);

const SOCK_TYPE_MASK = 0xf;

const underTmp = (p: string | null): boolean => p !== null && TMP_DIRS.some((d) => p.startsWith(d));
const isMemfd = (p: string | null): boolean => p?.startsWith("/memfd:") === true;

/** Paths whose reading exposes secrets: shadow files, sudoers, SSH keys, private TLS keys, process memory. */
export function isSensitivePath(p: string): boolean {
  if (SENSITIVE_EXACT.has(p)) return true;
  if (p.startsWith("/etc/sudoers.d/") || p.startsWith("/etc/ssl/private/")) return true;
  if (p.includes("/.ssh/id_") || p.endsWith("/.ssh/authorized_keys")) return true;
  if (p.startsWith("/proc/") && (p.endsWith("/mem") || p.endsWith("/environ"))) return true;
  return (
    p.startsWith("/root/.ssh/") || p.endsWith(".gnupg/private-keys-v1.d") || p.includes("/.aws/credentials")
  );
}

const WRITE_CALLS = new Set([
  "unlink",
  "unlinkat",
  "rmdir",
  "rename",
  "renameat",
  "renameat2",
  "link",
  "linkat",
  "symlink",
  "symlinkat",
  "mkdir",
  "mkdirat",
  "mknod",
  "mknodat",
  "chmod",
  "fchmodat",
  "chown",
  "lchown",
  "fchownat",
  "truncate",
  "creat",
  "utimensat",
]);

const SETID_CALLS = new Set([
  "setuid",
  "setgid",
  "setreuid",
  "setregid",
  "setresuid",
  "setresgid",
  "setfsuid",
  "setfsgid",
]);

/** Calls some rule looks at; for the rest only open flags matter. */
const RULE_CALLS = new Set([
  ...WRITE_CALLS,
  ...SETID_CALLS,
  "execve",
  "execveat",
  "mmap",
  "capset",
  "ptrace",
  "process_vm_writev",
  "process_vm_readv",
  "socket",
  "listen",
]);

/** Whether any rule looks at this call: most calls need no RiskInput built. */
export const mayHaveRisk = (call: string, openFlags: number | null): boolean =>
  openFlags !== null || RULE_CALLS.has(call);

export function riskTags(r: RiskInput): string[] {
  const tags: string[] = [];
  const call = r.call;
  if (!mayHaveRisk(call, r.openFlags)) return tags;
  const exec = call === "execve" || call === "execveat";
  if (exec) {
    const target = r.absPath ?? r.fdPath;
    if (underTmp(target)) tags.push("TMP_EXEC");
    if (isMemfd(target) || isMemfd(r.fdPath)) tags.push("MEMFD_EXEC");
    if (target !== null) {
      const base = target.slice(target.lastIndexOf("/") + 1);
      if (SHELLS.has(base)) tags.push("SHELL_SPAWN");
    }
  } else if (call === "mmap") {
    const prot = r.words[2];
    if (prot !== null && prot !== undefined && (prot & PROT_EXEC) !== 0) {
      if (underTmp(r.fdPath)) tags.push("TMP_EXEC");
      if (isMemfd(r.fdPath)) tags.push("MEMFD_EXEC");
    }
  } else if (r.openFlags !== null) {
    const flags = r.openFlags;
    const writes = (flags & O_ACCMODE) !== 0 || (flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0;
    if (r.absPath !== null) {
      if (writes && r.absPath.startsWith("/etc/")) tags.push("ETC_WRITE");
      if ((flags & O_ACCMODE) !== 1 && isSensitivePath(r.absPath)) tags.push("SENSITIVE_READ");
    }
  } else if (WRITE_CALLS.has(call)) {
    if (r.absPath?.startsWith("/etc/") || r.destPath?.startsWith("/etc/")) tags.push("ETC_WRITE");
  } else if (SETID_CALLS.has(call)) {
    if (r.targetIds?.some((id) => id === 0)) tags.push("PRIV_ESC");
  } else if (call === "capset") {
    tags.push("PRIV_ESC");
  } else if (call === "ptrace" || call === "process_vm_writev" || call === "process_vm_readv") {
    tags.push("PTRACE");
  } else if (call === "socket") {
    const type = r.socketType === null ? null : r.socketType & SOCK_TYPE_MASK;
    if (type === SOCK_RAW || type === SOCK_PACKET || r.socketFamily === "AF_PACKET") tags.push("RAW_SOCKET");
  } else if (call === "listen") {
    tags.push("NET_LISTEN");
  }
  return tags;
}
