/** Bad input for the three consumers: one line naming file and line, non-zero exit, no output file. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeRecord, writeJsonl } from "./make-record.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");
let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "carnot-consumers-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function carnot(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

describe.each(["seccomp", "actions", "timeline"])("carnot %s on bad input", (command) => {
  test("strace text instead of JSONL: one line naming file:line, exit 1, no output file", async () => {
    const file = join(dir, `${command}-strace.txt`);
    await Bun.write(file, '1234  openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3\n');
    const out = join(dir, `${command}-out-1`);
    const result = await carnot([command, file, "-o", out]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(
      `carnot: ${file}:1: not JSON (is this an enriched.jsonl from \`carnot replay\`?)\n`,
    );
    expect(await Bun.file(out).exists()).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes("partial"))).toEqual([]);
  });

  test("a record without a required key names the key and the line", async () => {
    const file = await writeJsonl(dir, `${command}-missing.jsonl`, [
      makeRecord({ call: "read" }),
      makeRecord({ call: "write" }),
    ]);
    const lines = (await Bun.file(file).text()).split("\n");
    const second = JSON.parse(lines[1]!);
    delete second.call;
    lines[1] = JSON.stringify(second);
    await Bun.write(file, lines.join("\n"));
    const result = await carnot([command, file]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(`carnot: ${file}:2: not an enriched record: missing key "call"\n`);
  });

  test("a missing file is a usage error; an empty one says so", async () => {
    const absent = await carnot([command, join(dir, "absent.jsonl")]);
    expect(absent.exitCode).toBe(2);
    expect(absent.stderr).toBe(`carnot: ${join(dir, "absent.jsonl")}: no such file\n`);
    const empty = join(dir, `${command}-empty.jsonl`);
    await Bun.write(empty, "");
    const result = await carnot([command, empty]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(`carnot: ${empty}: no records\n`);
  });
});

describe("carnot seccomp names", () => {
  test("an unknown syscall name is reported; --skip-unknown writes the profile without it and still reports it", async () => {
    const file = await writeJsonl(dir, "unknown.jsonl", [
      makeRecord({ call: "read" }),
      makeRecord({ call: "syscall_0x1c9" }),
      makeRecord({ call: "syscall_0x1c9" }),
    ]);
    const out = join(dir, "unknown.profile.json");
    const refused = await carnot(["seccomp", file, "-o", out]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe(
      `carnot: ${file}: 1 syscall name not in the x86-64 table: syscall_0x1c9 (2 records, first at line 2); --skip-unknown writes the profile without them\n`,
    );
    expect(await Bun.file(out).exists()).toBe(false);

    const skipped = await carnot(["seccomp", file, "-o", out, "--skip-unknown"]);
    expect(skipped.exitCode).toBe(0);
    expect(skipped.stderr).toContain("left out of the profile");
    expect(skipped.stderr).toContain("syscall_0x1c9 (2 records, first at line 2)");
    expect((await Bun.file(out).json()).syscalls[0].names).toEqual(["execve", "read"]);
  });

  test("--exe that matches nothing lists the executables of the trace", async () => {
    const file = await writeJsonl(dir, "exe.jsonl", [makeRecord({ call: "read", exe_path: "/usr/bin/app" })]);
    const result = await carnot(["seccomp", file, "--exe", "/usr/bin/other"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(
      `carnot: ${file}: no records of /usr/bin/other; executables in the trace: /usr/bin/app\n`,
    );
  });

  test("--apply with a file that is not a profile", async () => {
    const file = join(dir, "not-profile.json");
    await Bun.write(file, JSON.stringify({ syscalls: [] }));
    const result = await carnot(["seccomp", "--apply", file, "--", "true"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toStartWith(`carnot: ${file}: not an OCI seccomp profile: defaultAction: `);
    expect(result.stderr.split("\n")).toHaveLength(2);
  });
});

describe("carnot seccomp --apply", () => {
  test("words after -- belong to the command, even --help", async () => {
    const profile = join(dir, "allow-all.json");
    await Bun.write(profile, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [] }));
    const result = await carnot(["seccomp", "--apply", profile, "--", "printf", "%s\\n", "--help"]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("--help\n");
    expect(result.exitCode).toBe(0);
  });

  test("a command that does not exist exits 127", async () => {
    const profile = join(dir, "allow-all.json");
    const result = await carnot(["seccomp", "--apply", profile, "--", "no-such-command-here"]);
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toBe("carnot: no-such-command-here: command not found\n");
  });
});
