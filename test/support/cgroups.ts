/**
 * Real cgroup v2 directories for the attribution tests, named as container runtimes and the kubelet name theirs,
 * under one directory of the test's own below the hierarchy's root; processes are moved in by writing their pid
 * to cgroup.procs. Everything is removed after (the processes still in them moved back to the root first).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupV2Root } from "../../src/trace/attribution/cgroups.ts";

/** Why these tests cannot run here, or null. */
export function cgroupSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (creates cgroups)";
  const root = cgroupV2Root();
  if (root === null) return "no cgroup v2 hierarchy mounted";
  if (statSync(root, { bigint: true }).ino !== 1n) return `${root} is not the cgroup v2 hierarchy's root`;
  return null;
}

export class TestCgroups {
  /** where cgroup v2 is mounted */
  readonly mount: string;
  /** the tests' own directory, as a cgroup path ("/carnot-test-…") */
  readonly top: string;
  readonly #made: string[] = [];

  constructor(name: string) {
    const mount = cgroupV2Root();
    if (mount === null) throw new Error("no cgroup v2 hierarchy mounted");
    this.mount = mount;
    this.top = `/carnot-test-${name}-${process.pid}`;
    this.make(this.top);
  }

  /** Creates the cgroup at `path` (and what is missing above it); returns its id. */
  make(path: string): number {
    const parts = path.split("/").filter((p) => p !== "");
    let at = "";
    for (const part of parts) {
      at += `/${part}`;
      if (!existsSync(this.mount + at)) {
        mkdirSync(this.mount + at);
        this.#made.push(at);
      }
    }
    return this.id(path);
  }

  /** The cgroup's id: its directory's inode number. */
  id(path: string): number {
    return Number(statSync(this.mount + path, { bigint: true }).ino);
  }

  /** Moves process `pid` into the cgroup at `path`. */
  move(pid: number, path: string): void {
    writeFileSync(join(this.mount + path, "cgroup.procs"), `${pid}\n`);
  }

  /** A command line that moves itself into `path` and then becomes `cmd` (same pid). */
  wrap(path: string, cmd: string[]): string[] {
    const procs = join(this.mount + path, "cgroup.procs");
    return ["sh", "-c", `echo $$ > '${procs}' && exec "$@"`, "sh", ...cmd];
  }

  /** Removes the cgroup at `path` (its processes moved to the root first), and what was made below it. */
  remove(path: string): void {
    for (const made of [...this.#made].reverse()) {
      if (made !== path && !made.startsWith(`${path}/`)) continue;
      this.#evacuate(made);
      rmdirSync(this.mount + made);
      this.#made.splice(this.#made.indexOf(made), 1);
    }
  }

  removeAll(): void {
    this.remove(this.top);
  }

  #evacuate(path: string): void {
    const procs = readFileSync(join(this.mount + path, "cgroup.procs"), "utf8")
      .split("\n")
      .filter(Boolean);
    for (const pid of procs) {
      try {
        writeFileSync(join(this.mount, "cgroup.procs"), `${pid}\n`);
      } catch {} // gone meanwhile
    }
  }
}
