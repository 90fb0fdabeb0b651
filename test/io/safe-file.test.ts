import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTempBeside, resolveDestination, writeFileSafely } from "../../src/io/safe-file.ts";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "carnot-safe-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileSafely", () => {
  test("writes the whole file with the asked mode and leaves no temporary behind", () => {
    const out = join(dir, "out.json");
    writeFileSafely(out, "hello\n", { mode: 0o600 });
    expect(readFileSync(out, "utf8")).toBe("hello\n");
    expect(lstatSync(out).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["out.json"]);
  });

  test("an existing symlink at the destination is refused, its target untouched", () => {
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious");
    symlinkSync(victim, join(dir, "out.json"));
    expect(() => writeFileSafely(join(dir, "out.json"), "x")).toThrow(/symbolic link/);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(readdirSync(dir).sort()).toEqual(["out.json", "victim"]);
  });

  test("followSymlinks writes the link's target; a dangling link is still refused", () => {
    const target = join(dir, "target");
    writeFileSync(target, "old");
    symlinkSync(target, join(dir, "out.json"));
    writeFileSafely(join(dir, "out.json"), "new", { followSymlinks: true });
    expect(readFileSync(target, "utf8")).toBe("new");
    expect(lstatSync(join(dir, "out.json")).isSymbolicLink()).toBe(true);
    symlinkSync(join(dir, "nowhere"), join(dir, "dangling"));
    expect(() => resolveDestination(join(dir, "dangling"), true)).toThrow(/to nothing/);
  });

  test("temporary names are unpredictable and never opened through a planted name", () => {
    const out = join(dir, "out.json");
    const a = createTempBeside(out);
    const b = createTempBeside(out);
    expect(a.path).not.toBe(b.path);
    expect(a.path.startsWith(join(dir, ".out.json."))).toBe(true);
    a.discard();
    b.discard();
    expect(readdirSync(dir)).toEqual([]);
  });
});
