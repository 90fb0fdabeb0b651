import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };

const CLI = join(import.meta.dir, "../../src/cli.ts");

function carnot(args: string[]) {
  const res = Bun.spawnSync([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: res.exitCode, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
}

describe("the command line", () => {
  test("--version prints the package version", () => {
    const r = carnot(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });

  test("--help lists every command and ends with real examples, plain when not a terminal", () => {
    const r = carnot(["--help"]);
    expect(r.code).toBe(0);
    for (const name of ["trace", "replay", "verify", "demo", "bom", "merge", "policy", "attest", "seccomp"])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${name}\\s`, "m"));
    expect(r.stdout).toMatch(/\nEXAMPLES\n {2}sudo carnot trace/);
    expect(r.stdout).not.toContain("\x1b[");
  });

  test("a command's --help shows its options and its own examples", () => {
    const r = carnot(["replay", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--strict");
    expect(r.stdout).toMatch(/EXAMPLES\n {2}strace -f/);
  });

  test("an unknown command: one plain line, exit 2", () => {
    const r = carnot(["bogus"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("carnot: unknown command bogus\n");
    expect(r.stdout).toBe("");
  });

  test("no arguments: usage, exit 1", () => {
    const r = carnot([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("USAGE carnot");
  });
});
