/** Processes: clone's flags and arguments, exec, and the ids a process sets or asks for. */
import { argValue, argWords, fieldOf } from "../args.ts";
import { CLONE_VFORK, CLONE_VM } from "../constants.ts";
import type { ArgList } from "../scan.ts";
import { classifyPath, type Task } from "../tables.ts";
import type { Handler } from "./context.ts";
import { reopenedFd } from "./files.ts";

const CLONE_CALLS = new Set(["clone", "clone2", "clone3", "fork", "vfork"]);
export const isCloneCall = (call: string): boolean => CLONE_CALLS.has(call);

/** Clone flags of a clone/clone3/fork/vfork call from its argument text. */
export function cloneFlags(call: string, argText: string): number {
  if (call === "fork") return 0;
  if (call === "vfork") return CLONE_VM | CLONE_VFORK;
  const flags = fieldOf(call === "clone3" ? argText.slice(argText.indexOf("{")) : `{${argText}}`, "flags");
  if (flags === null) return 0;
  return argValue(flags) ?? 0;
}

/** x86-64 clone(flags, stack, parent_tid, child_tid, tls): strace prints them by name, stack first. */
const CLONE_ARG_SLOTS: Record<string, number> = {
  flags: 0,
  child_stack: 1,
  parent_tid: 2,
  child_tidptr: 3,
  tls: 4,
};

/** clone's six argument words, put in their places from strace's `name=value` list. */
export function cloneWords(args: ArgList): (number | null)[] {
  const out: (number | null)[] = [null, null, null, null, null, null];
  for (let i = 0; i < args.length; i++) {
    const a = args.at(i)!;
    const eq = a.indexOf("=");
    const slot = eq > 0 ? CLONE_ARG_SLOTS[a.slice(0, eq)] : undefined;
    if (slot === undefined) return argWords(args);
    out[slot] = argValue(a.slice(eq + 1));
  }
  return out;
}

const exec: Handler = (ctx) => {
  const { files, task } = ctx;
  if (ctx.call === "execveat" && ctx.absPath === null && ctx.fdEntry?.file.path)
    ctx.absPath = ctx.fdEntry.file.path;
  const absPath = ctx.absPath;
  if (absPath?.startsWith("/proc/")) {
    // fexecve through /proc/self/fd/N runs whatever fd N is (a memfd, a deleted file)
    const n = reopenedFd(absPath, null);
    const viaFd = n === null ? undefined : files.fds.get(n);
    if (viaFd) ctx.fdEntry = viaFd;
  }
  if (absPath !== null) ctx.resourceType = classifyPath(absPath);
  if (ctx.retval === 0) {
    task.proc.exe = absPath;
    files.closeOnExec();
  }
};

function applyIds(task: Task, call: string, w: (number | null)[]): void {
  const p = task.proc;
  const set = (v: number | null | undefined): number | null | undefined =>
    v === null || v === undefined || v === -1 || v === 0xffffffff ? undefined : v;
  const a = set(w[0]);
  const b = set(w[1]);
  switch (call) {
    case "setuid":
      if (a !== undefined) {
        if (p.euid === 0 || p.euid === null) p.uid = a;
        p.euid = a;
      }
      break;
    case "setgid":
      if (a !== undefined) {
        if (p.euid === 0 || p.euid === null) p.gid = a;
        p.egid = a;
      }
      break;
    case "setreuid":
    case "setresuid":
      if (a !== undefined) p.uid = a;
      if (b !== undefined) p.euid = b;
      break;
    case "setregid":
    case "setresgid":
      if (a !== undefined) p.gid = a;
      if (b !== undefined) p.egid = b;
      break;
  }
}

const setId: Handler = (ctx) => {
  const call = ctx.call;
  ctx.targetIds = ctx.words.slice(0, call.startsWith("setres") ? 3 : call.startsWith("setre") ? 2 : 1);
  if (ctx.ok) applyIds(ctx.task, call, ctx.words);
};

/** getuid and the like: the kernel's answer is the process's id. */
const getId =
  (field: "uid" | "gid" | "euid" | "egid" | "ppid"): Handler =>
  (ctx) => {
    if (ctx.ok) ctx.task.proc[field] = ctx.retval;
  };

export const PROCESS_HANDLERS: Readonly<Record<string, Handler>> = {
  execve: exec,
  execveat: exec,
  setuid: setId,
  setgid: setId,
  setfsuid: setId,
  setfsgid: setId,
  setreuid: setId,
  setregid: setId,
  setresuid: setId,
  setresgid: setId,
  getuid: getId("uid"),
  getgid: getId("gid"),
  geteuid: getId("euid"),
  getegid: getId("egid"),
  getppid: getId("ppid"),
};
