/**
 * Input files from paths and from patterns carnot expands itself, on a real directory tree with the things a
 * directory others can write to may hold: links to files and to directories, a FIFO, hidden files, the same
 * file twice, a file swapped for another after it was found. Then the line reader on awkward files.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CarnotError } from "../../src/errors.ts";
import {
  expandInputs,
  forEachJsonLine,
  type InputFile,
  openInput,
  readInputText,
  splitPattern,
} from "../../src/io/input-files.ts";
import { log } from "../../src/log.ts";

let dir = "";
const warnings: string[] = [];
const originalWarn = log.warn;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "carnot-inputs-"));
  for (const h of ["a", "b", "c"]) {
    mkdirSync(join(dir, "hosts", h), { recursive: true });
    writeFileSync(join(dir, "hosts", h, "runtime.jsonl"), `{"host":"${h}"}\n`);
  }
  mkdirSync(join(dir, "secret"));
  writeFileSync(join(dir, "secret", "runtime.jsonl"), '{"secret":true}\n');
  // planted: a link to a directory, a link to a file, a FIFO, a hidden temporary
  symlinkSync(join(dir, "secret"), join(dir, "hosts", "evil"));
  symlinkSync(join(dir, "secret", "runtime.jsonl"), join(dir, "hosts", "a", "runtime-link.jsonl"));
  Bun.spawnSync(["mkfifo", join(dir, "hosts", "b", "runtime-fifo.jsonl")]);
  writeFileSync(join(dir, "hosts", "c", ".runtime.jsonl.tmp-1234"), "{}\n");
  // the same file under two names
  linkSync(join(dir, "hosts", "c", "runtime.jsonl"), join(dir, "hosts", "c", "runtime_z.jsonl"));
  log.warn = ((message: string) => warnings.push(message)) as unknown as typeof log.warn;
});

afterAll(() => {
  log.warn = originalWarn;
  rmSync(dir, { recursive: true, force: true });
});

const paths = (files: InputFile[]) => files.map((f) => f.path.slice(dir.length + 1));

describe("expandInputs", () => {
  test("a pattern gives the regular files it matches, in order; every other match is named on stderr", () => {
    warnings.length = 0;
    const files = expandInputs([join(dir, "hosts/*/runtime*.jsonl")]);
    expect(paths(files)).toEqual(["hosts/a/runtime.jsonl", "hosts/b/runtime.jsonl", "hosts/c/runtime.jsonl"]);
    const said = warnings.join("\n");
    expect(said).toContain("hosts/a/runtime-link.jsonl: a symbolic link; name it to read it");
    expect(said).toContain("hosts/b/runtime-fifo.jsonl: not a regular file");
    expect(said).toContain("hosts/c/runtime_z.jsonl: the same file as");
    // the link to a directory is not entered (and said): nothing of secret/ is read
    expect(said).toContain("hosts/evil: a symbolic link, not entered");
    expect(said).not.toContain("secret");
    expect(files.some((f) => f.path.includes("evil"))).toBe(false);
  });

  test("a pattern without a directory part, relative to the working directory, and '**'", () => {
    const cwd = process.cwd();
    process.chdir(join(dir, "hosts"));
    try {
      expect(expandInputs(["*/runtime.jsonl"]).map((f) => f.path)).toEqual([
        "a/runtime.jsonl",
        "b/runtime.jsonl",
        "c/runtime.jsonl",
      ]);
      expect(expandInputs(["**/runtime.jsonl"]).map((f) => f.path)).toEqual([
        "a/runtime.jsonl",
        "b/runtime.jsonl",
        "c/runtime.jsonl",
      ]);
    } finally {
      process.chdir(cwd);
    }
  });

  test("hidden names only by a pattern that starts them with a dot", () => {
    expect(paths(expandInputs([join(dir, "hosts/c/*")])).some((p) => p.includes(".runtime"))).toBe(false);
    expect(paths(expandInputs([join(dir, "hosts/c/.*")]))).toEqual(["hosts/c/.runtime.jsonl.tmp-1234"]);
  });

  test("a named link or FIFO is read as named; the same file twice is read once", () => {
    warnings.length = 0;
    const named = join(dir, "hosts", "a", "runtime-link.jsonl");
    const files = expandInputs([
      named,
      join(dir, "secret", "runtime.jsonl"),
      join(dir, "hosts/*/runtime.jsonl"),
    ]);
    expect(files.map((f) => f.path)).toEqual([
      named,
      join(dir, "hosts/a/runtime.jsonl"),
      join(dir, "hosts/b/runtime.jsonl"),
      join(dir, "hosts/c/runtime.jsonl"),
    ]);
    expect(warnings).toContain(
      `${join(dir, "secret", "runtime.jsonl")}: the same file as ${named} (read once)`,
    );
    expect(readInputText(files[0]!)).toBe('{"secret":true}\n');
  });

  test("nothing to read: a missing file, a pattern that matches nothing, a directory, an empty name", () => {
    const error = (args: string[]) => {
      try {
        expandInputs(args);
      } catch (err) {
        return { message: (err as CarnotError).message, exitCode: (err as CarnotError).exitCode };
      }
      return null;
    };
    expect(error([join(dir, "nope.jsonl")])?.message).toBe(
      `${join(dir, "nope.jsonl")}: cannot read: no such file or directory`,
    );
    expect(error([join(dir, "hosts/*/nope*.jsonl")])).toEqual({
      message: `no file matches '${join(dir, "hosts/*/nope*.jsonl")}'`,
      exitCode: 2,
    });
    expect(error([join(dir, "nowhere/*/x.jsonl")])?.exitCode).toBe(2);
    expect(error([join(dir, "hosts")])?.message).toMatch(/hosts: is a directory/);
    expect(error([""])?.exitCode).toBe(2);
  });

  test("splitPattern: the fixed directory before the first pattern character", () => {
    expect(splitPattern("hosts/*/runtime*.jsonl")).toEqual({ dir: "hosts", rest: "*/runtime*.jsonl" });
    expect(splitPattern("/var/lib/carnot/*.jsonl")).toEqual({ dir: "/var/lib/carnot", rest: "*.jsonl" });
    expect(splitPattern("*.jsonl")).toEqual({ dir: ".", rest: "*.jsonl" });
    expect(splitPattern("/*/x")).toEqual({ dir: "/", rest: "*/x" });
  });

  test("a file swapped for a link after it was found is refused, not followed", () => {
    const victim = join(dir, "hosts", "b", "runtime.jsonl");
    const [found] = expandInputs([join(dir, "hosts/b/runtime.j*")]);
    renameSync(victim, `${victim}.moved`);
    symlinkSync(join(dir, "secret", "runtime.jsonl"), victim);
    try {
      expect(() => openInput(found!)).toThrow(/cannot read: is a symbolic link \(refused\)/);
      rmSync(victim);
      writeFileSync(victim, '{"host":"b2"}\n');
      expect(() => openInput(found!)).toThrow(/replaced by another file while carnot ran \(refused\)/);
    } finally {
      rmSync(victim, { force: true });
      renameSync(`${victim}.moved`, victim);
    }
  });
});

describe("forEachJsonLine", () => {
  const read = (name: string, text: string | Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    const [file] = expandInputs([path]);
    const seen: [unknown, number][] = [];
    const lines = forEachJsonLine(
      file!,
      (value, line) => seen.push([value, line]),
      (line) => new CarnotError(`${name}:${line}: not JSON`),
    );
    return { lines, seen };
  };

  test("line numbers count blank lines; CRLF and a last line without newline are lines", () => {
    expect(read("blank.jsonl", '{"a":1}\n\n{"a":2}\r\n{"a":3}')).toEqual({
      lines: 4,
      seen: [
        [{ a: 1 }, 1],
        [{ a: 2 }, 3],
        [{ a: 3 }, 4],
      ],
    });
  });

  test("a value over two lines, or two on one, is an error naming its line", () => {
    expect(() => read("split.jsonl", '{"a":1}\n{"a":\n2}\n')).toThrow("split.jsonl:2: not JSON");
    expect(() => read("two.jsonl", '{"a":1}\n{"a":1}{"a":2}\n')).toThrow("two.jsonl:2: not JSON");
  });

  test("thousands of lines across chunk boundaries, a 300 KB line, characters cut by a chunk's end", () => {
    const many = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, name: `héllo-🦀-${i}` }));
    const big = JSON.stringify({ big: "x".repeat(300_000) });
    const { lines, seen } = read("many.jsonl", `${many.join("\n")}\n${big}\n${many[7]}\n`);
    expect(lines).toBe(5002);
    expect(seen.map(([, l]) => l)).toEqual(Array.from({ length: 5002 }, (_, i) => i + 1));
    expect(seen[4999]).toEqual([{ i: 4999, name: "héllo-🦀-4999" }, 5000]);
    expect((seen[5000]![0] as { big: string }).big.length).toBe(300_000);
  });

  test("a line over 1 MiB is refused with its number, whole or cut off (memory stays bounded)", () => {
    const refused = (text: string) => {
      try {
        read("long.jsonl", text);
        return "read";
      } catch (err) {
        return (err as Error).message.replace(dir, "DIR");
      }
    };
    const long = `"${"y".repeat(2_000_000)}"`;
    expect(refused(`{"a":1}\n${long}\n{"a":2}\n`)).toBe(
      "DIR/long.jsonl:2: a line longer than 1048576 bytes (refused)",
    );
    expect(refused(`{"a":1}\n{"a":2}\n${long}`)).toBe(
      "DIR/long.jsonl:3: a line longer than 1048576 bytes (refused)",
    );
    expect(refused(`{"a":1}\n"${"y".repeat(1_000_000)}"\n`)).toBe("read");
  });
});
