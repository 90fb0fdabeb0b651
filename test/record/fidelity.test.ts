/**
 * `carnot record` against strace, on the same workloads run twice: once under `strace -f -yy` (then `carnot
 * replay`), once under `carnot record`. Per program: the same syscall names, the same file paths for the calls on
 * fds, the same socket endpoints; and the profile `carnot record --seccomp` writes runs the workload under
 * `carnot seccomp --apply`. Needs root (eBPF) and strace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const OBJECT = join(import.meta.dir, "../../bpf/record.bpf.o");

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], cwd?: string): Promise<Run> {
  const child = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    cwd,
    env: { ...process.env, LC_ALL: "C" },
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

const missing: string[] = [];
if (process.geteuid?.() !== 0) missing.push("root");
for (const tool of ["strace", "curl", "tar", "git", "python3"]) if (!Bun.which(tool)) missing.push(tool);
if (!(await Bun.file(OBJECT).exists())) missing.push("bpf/record.bpf.o (make bpf)");
if (missing.length > 0) console.warn(`skip record fidelity: needs ${missing.join(", ")}`);

interface Rec {
  pid: number;
  call: string;
  exe_path: string | null;
  fd: number | null;
  abs_path: string | null;
  resource_type: string | null;
  net: {
    remote_addr: string | null;
    remote_port: number | null;
    local_addr: string | null;
    local_port: number | null;
  } | null;
  retval: number | null;
}

const readRecords = (path: string): Rec[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));

/** Calls whose presence depends on scheduling, not on what the program does (a wait interrupted, a lock contended). */
const TIMING = new Set([
  "futex",
  "restart_syscall",
  "rt_sigreturn",
  "sched_yield",
  "wait4",
  "nanosleep",
  "clock_nanosleep",
]);

/**
 * The file a path names: strace -yy prints the kernel's path of the fd (symlinks resolved: /usr/lib/… for
 * /lib/…), a record the path as the program named it (as strace without -yy): the same file either way.
 */
function fileOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** Per program (exe_path): the syscall names, the paths of calls on fds, the remote ends of sockets. */
function summary(records: Rec[], scratch: string) {
  const calls = new Map<string, Set<string>>();
  const paths = new Map<string, Set<string>>();
  const endpoints = new Set<string>();
  for (const r of records) {
    const exe = r.exe_path ?? "?";
    if (!calls.has(exe)) calls.set(exe, new Set());
    if (!TIMING.has(r.call)) calls.get(exe)!.add(r.call);
    if (
      r.fd !== null &&
      r.fd >= 0 &&
      r.abs_path !== null &&
      (r.resource_type === "FILE" || r.resource_type === "DIR")
    ) {
      // git names its temporary files at random
      const path = fileOf(r.abs_path).replace(/tmp_obj_\w+|\.tmp-\w+|\/\.git\/t\w{6}$/g, "<tmp>");
      if (!paths.has(exe)) paths.set(exe, new Set());
      paths.get(exe)!.add(path.replaceAll(scratch, "<scratch>"));
    }
    if (r.net?.remote_port) endpoints.add(`${r.call} ${r.net.remote_addr}:${r.net.remote_port}`);
  }
  const sorted = (m: Map<string, Set<string>>) =>
    Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, [...v].sort()]));
  return { calls: sorted(calls), paths: sorted(paths), endpoints: [...endpoints].sort() };
}

let dir = "";
let server: ReturnType<typeof Bun.serve> | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "carnot-record-"));
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello from loopback\n") });
});

afterAll(async () => {
  server?.stop(true);
  if (dir) await rm(dir, { recursive: true, force: true });
});

const THREADS = `
import threading
def work(i):
    with open("/etc/hostname") as f: f.read()
    with open("/etc/passwd") as f: f.read()
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
`;

/** Each workload: a fresh scratch directory made by `prepare`, then the command run in it. */
const WORKLOADS: { name: string; argv: () => string[]; prepare?: (scratch: string) => void }[] = [
  { name: "shell pipeline", argv: () => ["sh", "-c", "cat /etc/passwd | grep root | wc -l > count.txt"] },
  { name: "threaded python", argv: () => ["python3", "-c", THREADS] },
  {
    name: "curl to a loopback server",
    argv: () => ["curl", "-s", "-o", "page.txt", `http://127.0.0.1:${server!.port}/`],
  },
  {
    name: "tar czf of a tree",
    argv: () => ["tar", "czf", "tree.tgz", "tree"],
    prepare: (scratch) => {
      for (const d of ["tree/a/b", "tree/c"]) mkdirSync(join(scratch, d), { recursive: true });
      for (const f of ["tree/one.txt", "tree/a/two.txt", "tree/a/b/three.txt", "tree/c/four.txt"])
        writeFileSync(join(scratch, f), `${f}\n`);
    },
  },
  {
    name: "git init and commit",
    argv: () => [
      "sh",
      "-c",
      // a fixed date: the commit's object name (a path git writes) is the same in both runs
      "export GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z; " +
        "git init -q . && git add file.txt && git -c user.name=t -c user.email=t@example.com commit -qm first",
    ],
    prepare: (scratch) => writeFileSync(join(scratch, "file.txt"), "hello\n"),
  },
];

function fresh(scratch: string, prepare?: (scratch: string) => void): void {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  prepare?.(scratch);
}

describe.skipIf(missing.length > 0)("carnot record against strace -f -yy", () => {
  test.each(WORKLOADS)(
    "$name: the same calls per program, the same paths and endpoints, a profile that runs it",
    async ({ name, argv, prepare }) => {
      const slug = name.replace(/\W+/g, "-");
      const scratch = join(dir, "scratch");
      fresh(scratch, prepare);
      const trace = join(dir, `${slug}.strace`);
      const replayed = join(dir, `${slug}.replay.jsonl`);
      const strace = await run(
        ["strace", "-f", "-qq", "-ttt", "-T", "-yy", "-o", trace, "--", ...argv()],
        scratch,
      );
      expect(strace.exitCode).toBe(0);
      expect((await run([process.execPath, CLI, "replay", trace, "-o", replayed])).exitCode).toBe(0);

      fresh(scratch, prepare);
      const recorded = join(dir, `${slug}.record.jsonl`);
      const profile = join(dir, `${slug}.profile.json`);
      const rec = await run(
        [process.execPath, CLI, "record", "--out", recorded, "--seccomp", profile, "--", ...argv()],
        scratch,
      );
      expect(rec.stderr).toContain(" 0 dropped");
      expect(rec.exitCode).toBe(0);

      const a = summary(readRecords(replayed), scratch);
      const b = summary(readRecords(recorded), scratch);
      expect(b.calls).toEqual(a.calls);
      expect(b.paths).toEqual(a.paths);
      expect(b.endpoints).toEqual(a.endpoints);
      if (name.startsWith("curl")) expect(b.endpoints).toContain(`connect 127.0.0.1:${server!.port}`);

      fresh(scratch, prepare);
      const applied = await run(
        [process.execPath, CLI, "seccomp", "--apply", profile, "--", ...argv()],
        scratch,
      );
      expect(applied.stderr).toBe("");
      expect(applied.exitCode).toBe(0);
    },
    120_000,
  );
});
