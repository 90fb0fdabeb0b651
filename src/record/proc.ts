/**
 * What /proc says of a process carnot first sees already running (`--pid`, or the command it started, before
 * its first call): ids, effective capabilities, executable, cwd and open fds. Read once per process; a process
 * gone meanwhile gives what was read (the rest stays null).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { classifyPath, fileFromAnnotation, type OpenFile } from "../replay/tables.ts";

export interface ProcSnapshot {
  tgid: number | null;
  ppid: number | null;
  uid: number | null;
  gid: number | null;
  euid: number | null;
  egid: number | null;
  caps: number | null;
  exe: string | null;
  cwd: string | null;
  fds: Map<number, OpenFile>;
}

function readlinkOr(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** A link of /proc/PID/fd/N (or exe, cwd) → the fd's facts, as a -y annotation gives them. */
export function fileOfLink(link: string): OpenFile {
  if (link.startsWith("/")) return { path: link, type: classifyPath(link), net: null };
  return fileFromAnnotation(link);
}

/** A status line's numbers (`Uid:\t0\t0\t0\t0`). */
function statusField(status: string, key: string): number[] | null {
  const at = status.indexOf(`\n${key}:`);
  if (at < 0) return null;
  const end = status.indexOf("\n", at + 1);
  return status
    .slice(at + key.length + 2, end < 0 ? undefined : end)
    .trim()
    .split(/\s+/)
    .map(Number);
}

/** The snapshot of thread `tid` of process `pid`; null when it does not exist. */
export function snapshotProcess(pid: number, tid: number, withFds: boolean): ProcSnapshot | null {
  let status: string;
  try {
    status = `\n${readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8")}`;
  } catch {
    return null;
  }
  const uids = statusField(status, "Uid");
  const gids = statusField(status, "Gid");
  const capAt = status.indexOf("\nCapEff:");
  const capText = capAt < 0 ? null : status.slice(capAt + 8, status.indexOf("\n", capAt + 1)).trim();
  const caps = capText !== null && /^[0-9a-f]{1,13}$/.test(capText) ? Number.parseInt(capText, 16) : null;
  const snap: ProcSnapshot = {
    tgid: statusField(status, "Tgid")?.[0] ?? null,
    ppid: statusField(status, "PPid")?.[0] ?? null,
    uid: uids?.[0] ?? null,
    gid: gids?.[0] ?? null,
    euid: uids?.[1] ?? null,
    egid: gids?.[1] ?? null,
    caps,
    exe: readlinkOr(`/proc/${pid}/exe`),
    cwd: readlinkOr(`/proc/${pid}/cwd`),
    fds: new Map(),
  };
  if (withFds) {
    let names: string[] = [];
    try {
      names = readdirSync(`/proc/${pid}/fd`);
    } catch {}
    for (const name of names) {
      const link = readlinkOr(`/proc/${pid}/fd/${name}`);
      if (link !== null) snap.fds.set(Number(name), fileOfLink(link));
    }
  }
  return snap;
}
