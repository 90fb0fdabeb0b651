/**
 * End to end, on real programs: strace records a workload, `carnot replay` enriches it,
 * `carnot seccomp` writes the profile, and `carnot seccomp --apply` runs the same workload
 * under it (libseccomp through bun:ffi, then execve). The workload must succeed; with one
 * syscall it needs taken out of the profile it must fail, and strace must show that call
 * returning EPERM.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const PYTHON = "/usr/bin/python3";

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

async function carnot(args: string[]): Promise<Run> {
  return run([process.execPath, CLI, ...args]);
}

const missing = ["strace", "curl"].filter((tool) => !Bun.which(tool));
if (!(await Bun.file(PYTHON).exists())) missing.push(PYTHON);
const seccompMissing = !(await Bun.file("/proc/self/status").text()).includes("Seccomp_filters");
if (missing.length > 0) console.warn(`skip seccomp workloads: ${missing.join(", ")} not installed`);
if (seccompMissing) console.warn("skip seccomp workloads: the kernel has no seccomp filter support");
const runnable = missing.length === 0 && !seccompMissing;

let dir = "";
let server: ReturnType<typeof Bun.serve> | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "carnot-seccomp-"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response("hello from loopback\n", { headers: { "content-type": "text/plain" } }),
  });
});

afterAll(async () => {
  server?.stop(true);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** strace → replay → seccomp; returns the profile's path. */
async function profileFor(
  name: string,
  argv: string[],
  seccompArgs: string[] = [],
  label = name,
): Promise<string> {
  const trace = join(dir, `${name}.strace`);
  const recorded = await run(["strace", "-f", "-qq", "-ttt", "-T", "-yy", "-o", trace, "--", ...argv]);
  expect(recorded.exitCode).toBe(0);
  const enriched = join(dir, `${name}.jsonl`);
  const replayed = await carnot(["replay", trace, "-o", enriched]);
  expect(replayed.stderr).not.toContain("carnot:");
  expect(replayed.exitCode).toBe(0);
  const profile = join(dir, `${label}.profile.json`);
  const generated = await carnot(["seccomp", enriched, "-o", profile, ...seccompArgs]);
  expect(generated.stderr).toBe("");
  expect(generated.exitCode).toBe(0);
  return profile;
}

/** The same profile without one syscall name. */
async function withoutSyscall(profilePath: string, name: string): Promise<string> {
  const profile = await Bun.file(profilePath).json();
  const allow = profile.syscalls[0].names as string[];
  expect(allow).toContain(name);
  profile.syscalls[0].names = allow.filter((n) => n !== name);
  const path = profilePath.replace(/\.json$/, `.without-${name}.json`);
  await Bun.write(path, JSON.stringify(profile));
  return path;
}

/** Runs the workload under the profile, itself under strace watching one syscall. */
async function runUnderProfileWatching(
  profile: string,
  argv: string[],
  syscall: string,
): Promise<Run & { log: string }> {
  const log = join(dir, `watch-${syscall}.log`);
  const result = await run([
    "strace",
    "-f",
    "-qq",
    "-e",
    `trace=${syscall}`,
    "-e",
    "signal=none",
    "-o",
    log,
    "--",
    process.execPath,
    CLI,
    "seccomp",
    "--apply",
    profile,
    "--",
    ...argv,
  ]);
  return { ...result, log: await Bun.file(log).text() };
}

const EPERM = (syscall: string) => new RegExp(`\\b${syscall}\\(.*= -1 EPERM \\(Operation not permitted\\)`);

describe.skipIf(!runnable)("seccomp profiles run the recorded workloads", () => {
  const pipeline = ["/bin/sh", "-c", "echo hello seccomp | tr a-z A-Z | wc -c"];

  test("a shell pipeline runs under its profile, and fails with EPERM without pipe2", async () => {
    const expected = (await run(pipeline)).stdout;
    expect(expected.trim()).toBe("14");
    const profile = await profileFor("pipeline", pipeline);
    const json = await Bun.file(profile).json();
    expect(json.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(json.defaultErrnoRet).toBe(1);
    expect(json.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    const names = json.syscalls[0].names as string[];
    expect(names).toEqual([...names].sort());
    expect(names).toContain("execve");
    expect(names).not.toContain("ptrace");

    const confined = await carnot(["seccomp", "--apply", profile, "--", ...pipeline]);
    expect(confined.stderr).toBe("");
    expect(confined.stdout).toBe(expected);
    expect(confined.exitCode).toBe(0);

    const broken = await runUnderProfileWatching(await withoutSyscall(profile, "pipe2"), pipeline, "pipe2");
    expect(broken.exitCode).not.toBe(0);
    expect(broken.stdout).not.toBe(expected);
    expect(broken.log).toMatch(EPERM("pipe2"));
  });

  test("a Python program with threads runs under its profile, and cannot start threads without clone3", async () => {
    const script = join(dir, "threads.py");
    await Bun.write(
      script,
      [
        "import hashlib, threading",
        "results = {}",
        "def work(n):",
        "    h = hashlib.sha256()",
        "    for i in range(2000):",
        '        h.update(f"{n}:{i}".encode())',
        "    results[n] = h.hexdigest()[:12]",
        "threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]",
        "for t in threads: t.start()",
        "for t in threads: t.join()",
        'print(" ".join(results[n] for n in range(4)))',
        "",
      ].join("\n"),
    );
    const argv = [PYTHON, script];
    const expected = (await run(argv)).stdout;
    expect(expected.split(" ")).toHaveLength(4);
    const profile = await profileFor("threads", argv);

    const confined = await carnot(["seccomp", "--apply", profile, "--", ...argv]);
    expect(confined.stderr).toBe("");
    expect(confined.stdout).toBe(expected);
    expect(confined.exitCode).toBe(0);

    const broken = await runUnderProfileWatching(await withoutSyscall(profile, "clone3"), argv, "clone3");
    expect(broken.exitCode).not.toBe(0);
    expect(broken.stderr).toContain("can't start new thread");
    expect(broken.log).toMatch(EPERM("clone3"));
  });

  test("an HTTP request on loopback runs under its profile (--exe, --args), and fails with EPERM without socket", async () => {
    const url = `http://127.0.0.1:${server!.port}/hello`;
    const argv = ["curl", "-sS", "--max-time", "10", url];
    const curl = Bun.which("curl")!;
    const profile = await profileFor("http", argv, ["--exe", curl]);
    const confined = await carnot(["seccomp", "--apply", profile, "--", ...argv]);
    expect(confined.stderr).toBe("");
    expect(confined.stdout).toBe("hello from loopback\n");

    // with argument filters: reads of files and the TCP socket are still allowed
    const strict = await profileFor("http", argv, ["--exe", curl, "--args"], "http-args");
    const rules = (await Bun.file(strict).json()).syscalls as Array<{ names: string[]; args?: unknown[] }>;
    expect(rules.some((r) => r.names[0] === "socket" && r.args?.length === 2)).toBe(true);
    const confinedStrict = await carnot(["seccomp", "--apply", strict, "--", ...argv]);
    expect(confinedStrict.stdout).toBe("hello from loopback\n");
    expect(confinedStrict.exitCode).toBe(0);

    const broken = await runUnderProfileWatching(await withoutSyscall(profile, "socket"), argv, "socket");
    expect(broken.exitCode).not.toBe(0);
    expect(broken.stdout).toBe("");
    expect(broken.log).toMatch(EPERM("socket"));
  });

  test("--args blocks what the recording never did: the pipeline cannot open a file for writing", async () => {
    const strict = await profileFor("pipeline", pipeline, ["--args"], "pipeline-args");
    const target = join(dir, "never-written.txt");
    const writer = ["/bin/sh", "-c", `echo hello seccomp | tr a-z A-Z | wc -c > ${target}`];
    const blocked = await carnot(["seccomp", "--apply", strict, "--", ...writer]);
    expect(blocked.exitCode).not.toBe(0);
    expect(blocked.stderr).toContain("Operation not permitted");
    expect(await Bun.file(target).exists()).toBe(false);
  });
});
