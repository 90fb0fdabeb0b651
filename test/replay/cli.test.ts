/** `carnot replay` as a user runs it: exit codes, the counts line, the chained output and its seal. */
import { afterAll, setDefaultTimeout, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { EnhancedEventSchema } from "../../src/replay/schema.ts";
import { tempDir } from "./strace-run.ts";

// real strace runs and subprocesses: slow when the shared machine is busy
setDefaultTimeout(60_000);

const CLI = join(import.meta.dir, "../../src/cli.ts");
const FIXTURES = join(import.meta.dir, "../fixtures/strace");
const tmp = tempDir("replay-cli");
afterAll(() => tmp.remove());

async function carnot(
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["bun", CLI, ...args], {
    stdin: stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

describe("carnot replay", () => {
  test("writes chained records and a seal that carnot verify accepts", async () => {
    const out = join(tmp.dir, "fd.jsonl");
    const r = await carnot(["replay", join(FIXTURES, "fd-lifecycle.strace"), "-o", out]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("16 lines: 16 events, 0 merged, 0 state-only, 0 unparsed\n");
    const lines = (await Bun.file(out).text()).trimEnd().split("\n");
    expect(lines.length).toBe(16);
    for (const line of lines) {
      const rec = v.parse(EnhancedEventSchema, JSON.parse(line));
      expect(rec.raw_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(rec.chain).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(existsSync(`${out}.seal.json`)).toBe(true);
    expect((await carnot(["verify", out])).code).toBe(0);
  });

  test("reads stdin with - and writes JSONL to stdout", async () => {
    const input = await Bun.file(join(FIXTURES, "midnight-tt.strace")).bytes();
    const r = await carnot(["replay", "-"], input);
    expect(r.code).toBe(0);
    const recs = r.out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(recs.map((x) => x.ts)).toEqual([0, 900, 2000, 1_001_000]);
    expect(r.err).toBe("4 lines: 4 events, 0 merged, 0 state-only, 0 unparsed\n");
  });

  test("from a pipe that pauses, records reach stdout while the input is still open", async () => {
    const lines = (await Bun.file(join(FIXTURES, "fd-lifecycle.strace")).text()).split("\n").filter(Boolean);
    const p = Bun.spawn(["bun", CLI, "replay", "-"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    p.stdin.write(`${lines.slice(0, 8).join("\n")}\n`);
    await p.stdin.flush();
    const reader = p.stdout.getReader();
    let out = "";
    // the last record waits for the next line (a `-k` stack line would join it): 7 of 8 come now
    while (out.split("\n").length - 1 < 7) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(out.split("\n").length - 1).toBe(7);
    expect(p.exitCode).toBeNull();
    p.stdin.write(`${lines.slice(8).join("\n")}\n`);
    await p.stdin.end();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(await p.exited).toBe(0);
    const recs = out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(recs.length).toBe(lines.length);
    expect(recs[0].call).toBe("pipe2");
    expect(await new Response(p.stderr).text()).toBe(
      `${lines.length} lines: ${lines.length} events, 0 merged, 0 state-only, 0 unparsed\n`,
    );
  });

  test("names the first unparsed lines; --strict makes them an error (exit 2)", async () => {
    const file = join(FIXTURES, "garbage-and-truncated.strace");
    const loose = await carnot(["replay", file, "-o", join(tmp.dir, "g.jsonl")]);
    expect(loose.code).toBe(0);
    expect(loose.err).toBe(
      "5 lines: 2 events, 0 merged, 0 state-only, 3 unparsed\nfirst unparsed lines: 2, 3, 5\n",
    );

    const out = join(tmp.dir, "strict.jsonl");
    const strict = await carnot(["replay", file, "--strict", "-o", out]);
    expect(strict.code).toBe(2);
    expect(strict.err).toContain("carnot: line 2 is not strace output (--strict)\n");
    expect(strict.err).not.toContain("    at ");
    // what was written before the bad line is whole, and the seal says the log is incomplete
    const seal = JSON.parse(await Bun.file(`${out}.seal.json`).text());
    expect(seal.complete).toBe(false);
    expect((await carnot(["verify", out])).code).toBe(1);
  });

  test("an empty file, binary junk and a long line without newline do not crash it", async () => {
    const empty = join(tmp.dir, "empty.strace");
    await Bun.write(empty, "");
    const e = await carnot(["replay", empty, "-o", join(tmp.dir, "e.jsonl")]);
    expect(e.code).toBe(0);
    expect(e.err).toBe("0 lines: 0 events, 0 merged, 0 state-only, 0 unparsed\n");

    const junk = new Uint8Array(300_000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + (i >> 3)) & 0xff;
    const bin = join(tmp.dir, "junk.bin");
    await Bun.write(bin, junk);
    const j = await carnot(["replay", bin, "-o", join(tmp.dir, "j.jsonl")]);
    expect(j.code).toBe(0);
    const [head] = j.err.split("\n");
    const m = /^(\d+) lines: 0 events, 0 merged, 0 state-only, (\d+) unparsed$/.exec(head ?? "");
    expect(m).not.toBeNull();
    expect(m![1]).toBe(m![2]);

    // 17 MB with no newline: cut into bounded pieces, each an unparsed line
    const long = join(tmp.dir, "long.strace");
    await Bun.write(long, "A".repeat(17 * 1024 * 1024));
    const l = await carnot(["replay", long, "-o", join(tmp.dir, "l.jsonl")]);
    expect(l.code).toBe(0);
    expect(l.err).toBe("2 lines: 0 events, 0 merged, 0 state-only, 2 unparsed\nfirst unparsed lines: 1, 2\n");
  });

  test("a large file gets a progress bar on a terminal's stderr", async () => {
    const line = (await Bun.file(join(FIXTURES, "fd-lifecycle.strace")).text()).split("\n")[1]!;
    const big = join(tmp.dir, "big.strace");
    await Bun.write(big, `${line}\n`.repeat(Math.ceil((33 * 1024 * 1024) / (line.length + 1))));
    // `script` gives the command a pseudo-terminal
    const cmd = `bun ${CLI} replay ${big} -o ${join(tmp.dir, "big.jsonl")}`;
    const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out).toContain("replay [");
    expect(out).toMatch(/100%/);
    expect(out).toMatch(/\d+ lines: \d+ events, 0 merged, 0 state-only, 0 unparsed/);
  });

  test("a missing input is one line and exit 2", async () => {
    const r = await carnot(["replay", join(tmp.dir, "nope.strace")]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`carnot: cannot read ${join(tmp.dir, "nope.strace")}: no such file or directory\n`);
  });
});
