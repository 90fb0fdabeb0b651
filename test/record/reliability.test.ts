/**
 * `carnot record` as a command: the followed command's exit code is its own, a stop signal seals the output and
 * detaches within 3 s (no link left in the kernel), --pid follows a running tree, and bad starts say one line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const OBJECT = join(import.meta.dir, "../../bpf/record.bpf.o");
const root = process.geteuid?.() === 0;
const runnable = root && (await Bun.file(OBJECT).exists()) && Bun.which("bpftool") !== null;
if (!runnable) console.warn("skip record reliability: needs root, bpftool and bpf/record.bpf.o (make bpf)");

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "carnot-record-rel-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function carnot(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, CLI, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { stdout, stderr, exitCode };
}

/** The ids of the BPF links of carnot's record programs in the kernel now. */
function recordLinks(): number[] {
  const out = Bun.spawnSync(["bpftool", "-j", "link", "show"]).stdout.toString();
  const progs = JSON.parse(Bun.spawnSync(["bpftool", "-j", "prog", "show"]).stdout.toString() || "[]") as {
    id: number;
    name?: string;
  }[];
  const ours = new Set(
    progs
      .filter((p) => p.name === "sys_enter" || p.name === "sys_exit" || p.name?.startsWith("sched_process"))
      .map((p) => p.id),
  );
  return (JSON.parse(out || "[]") as { id: number; prog_id: number }[])
    .filter((l) => ours.has(l.prog_id))
    .map((l) => l.id);
}

describe.skipIf(!runnable)("carnot record, the command", () => {
  test("the followed command's exit code is carnot's, and the output is sealed", async () => {
    const out = join(dir, "exit.jsonl");
    const r = await carnot(["record", "--out", out, "--", "sh", "-c", "exit 7"]);
    expect(r.exitCode).toBe(7);
    expect(existsSync(`${out}.seal.json`)).toBe(true);
    expect((await carnot(["verify", out])).exitCode).toBe(0);
  });

  test("SIGTERM and SIGINT: flushed, sealed and detached within 3 s, nothing left attached", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const out = join(dir, `${signal}.jsonl`);
      const before = recordLinks().length;
      // a file, not a pipe: the sleep, left running after carnot detaches, keeps carnot's stderr open
      const errPath = join(dir, `${signal}.stderr`);
      const child = Bun.spawn([process.execPath, CLI, "record", "--out", out, "--", "sleep", "30"], {
        stdout: "ignore",
        stderr: Bun.file(errPath),
      });
      // recording: the sleep's calls reach the file within the write interval
      for (
        let i = 0;
        i < 100 && !(existsSync(out) && readFileSync(out, "utf8").includes('"call":"execve"'));
        i++
      )
        await Bun.sleep(100);
      const sent = performance.now();
      child.kill(signal);
      const code = await child.exited;
      expect(performance.now() - sent).toBeLessThan(3000);
      expect(code).toBe(signal === "SIGTERM" ? 143 : 130);
      expect(readFileSync(errPath, "utf8")).toContain(" 0 dropped");
      expect(existsSync(`${out}.seal.json`)).toBe(true);
      expect((await carnot(["verify", out])).exitCode).toBe(0);
      // the sleep was written, with its call in progress cut
      const text = readFileSync(out, "utf8");
      expect(text).toContain('"call":"clock_nanosleep"');
      // the sleep goes on after carnot detached: ended here by its pid
      const sleeper = JSON.parse(text.split("\n")[0]!).pid as number;
      process.kill(sleeper, "SIGKILL");
      expect(recordLinks().length).toBe(before);
    }
  }, 30_000);

  test("--pid follows a running process and what it starts, until it ends", async () => {
    const target = Bun.spawn(["sh", "-c", "read x; cat /etc/hostname >/dev/null"], { stdin: "pipe" });
    const out = join(dir, "pid.jsonl");
    const rec = carnot(["record", "--pid", String(target.pid), "--out", out]);
    for (let i = 0; i < 100 && !existsSync(out); i++) await Bun.sleep(50);
    await Bun.sleep(300);
    target.stdin.write("go\n");
    target.stdin.end();
    const r = await rec;
    expect(r.exitCode).toBe(0);
    const records = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const cat = records.find((x) => x.call === "openat" && x.abs_path === "/etc/hostname");
    expect(cat?.exe_path).toBe("/usr/bin/cat");
    expect(cat?.ppid).toBe(target.pid);
  });

  test("bad starts: one clear line, a non-zero exit, no output file", async () => {
    const out = join(dir, "bad.jsonl");
    const missing = await carnot(["record", "--out", out, "--", "no-such-command-here"]);
    expect(missing.stderr.trim()).toBe("carnot: command not found: no-such-command-here");
    expect(missing.exitCode).toBe(127);
    const pid = await carnot(["record", "--out", out, "--pid", "4194000"]);
    expect(pid.stderr.trim()).toBe("carnot: no such process: 4194000");
    expect(pid.exitCode).not.toBe(0);
    expect(existsSync(out)).toBe(false);
  });
});

describe.skipIf(!root)("carnot record without root", () => {
  test("one line saying it needs root", async () => {
    const r = Bun.spawnSync(
      [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        CLI,
        "record",
        "--",
        "true",
      ],
      {
        env: { ...process.env, BUN_INSTALL_CACHE_DIR: "/tmp" },
      },
    );
    expect(r.stderr.toString().trim()).toBe("carnot: carnot record needs root (it loads eBPF programs)");
    expect(r.exitCode).toBe(1);
  });
});
