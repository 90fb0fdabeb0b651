import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArgsDef, parseArgs } from "citty";
import type { FlagSpec } from "../../src/command-line.ts";
import { repeatedOption } from "../../src/commands/shared.ts";
import { CarnotError } from "../../src/errors.ts";
import { type CommandNode, commandTree, planCommandLine } from "../../src/program.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const STRACE = join(import.meta.dir, "../fixtures/strace/garbage-and-truncated.strace");
const tmp = mkdtempSync(join(tmpdir(), "carnot-command-line-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function carnot(args: string[], env: Record<string, string> = {}) {
  const res = Bun.spawnSync([process.execPath, CLI, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  return { code: res.exitCode, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
}

const tree = await commandTree();
const commands: CommandNode[] = [];
const walk = (node: CommandNode) => {
  commands.push(node);
  node.subcommands.forEach(walk);
};
walk(tree);
const runnable = commands.filter((c) => c.path.length > 1 && c.runs);
const words = (c: CommandNode) => c.path.slice(1);
/** The positional arguments a command needs, so that a line with one flag is otherwise complete. */
const needed = (c: CommandNode) => c.args.positionals.filter((p) => p.required).map((p) => `${p.name}.arg`);

/** The command line planned as carnot would run it: the command's arguments as the command gets them. */
async function argsSeen(line: string[]) {
  const plan = await planCommandLine(line);
  if (plan.kind !== "run") throw new Error(`not a command to run: ${line.join(" ")}`);
  const def = (plan.target.cmd.args ?? {}) as ArgsDef;
  return { argv: plan.argv, args: parseArgs(plan.argv, def) as Record<string, unknown> };
}

/** The usage error a command line is refused with (it must be one). */
async function refusal(line: string[]): Promise<string> {
  try {
    await planCommandLine(line);
  } catch (err) {
    expect(err).toBeInstanceOf(CarnotError);
    expect((err as CarnotError).exitCode).toBe(2);
    return (err as Error).message;
  }
  throw new Error(`accepted: carnot ${line.join(" ")}`);
}

/** Misspellings of a long flag: two letters swapped, one dropped, the last doubled. */
function misspellings(spelling: string, known: Set<string>): string[] {
  const name = spelling.slice(2);
  const variants = [
    name.length > 2 ? name.slice(0, 1) + name[2] + name[1] + name.slice(3) : `${name}x`,
    name.slice(0, -1),
    name + name.at(-1),
  ];
  return [...new Set(variants)].map((v) => `--${v}`).filter((v) => v.length > 3 && !known.has(v));
}

const sampleValue = (flag: FlagSpec) => flag.options?.[0] ?? `value-of-${flag.name}`;

describe("every command and flag from the definitions", () => {
  test("the walk sees every command, the hidden ones left out", () => {
    const names = runnable.map((c) => words(c).join(" "));
    for (const name of ["trace", "replay", "verify", "attest", "attest verify", "seccomp", "completion"])
      expect(names).toContain(name);
    expect(names).not.toContain("__calibrate");
  });

  for (const command of runnable) {
    const name = words(command).join(" ");
    test(`${name}: each documented flag reaches the command, each misspelling is refused with the flag it meant`, async () => {
      expect(command.args.flags.length).toBeGreaterThan(0);
      const known = new Set(command.args.flags.flatMap((f) => f.spellings));
      for (const flag of command.args.flags) {
        for (const spelling of flag.spellings) {
          const negated = spelling === `--no-${flag.name}`;
          const given = flag.type === "boolean" ? [spelling] : [spelling, sampleValue(flag)];
          const { args } = await argsSeen([...words(command), ...given, ...needed(command)]);
          expect(args[flag.name]).toBe(flag.type === "boolean" ? !negated : sampleValue(flag));
          if (flag.type !== "boolean") {
            const inline = await argsSeen([
              ...words(command),
              `${spelling}=${sampleValue(flag)}`,
              ...needed(command),
            ]);
            expect(inline.args[flag.name]).toBe(sampleValue(flag));
          }
          if (!spelling.startsWith("--")) continue;
          for (const wrong of misspellings(spelling, known)) {
            const message = await refusal(
              [...words(command), ...given, ...needed(command)].map((w) => (w === spelling ? wrong : w)),
            );
            expect(message).toStartWith(`unknown flag ${wrong} (did you mean `);
            expect(message).toContain(spelling);
          }
        }
      }
    });

    test(`${name}: --help shows every flag and ends with its EXAMPLES`, () => {
      const r = carnot([...words(command), "--help"]);
      expect(r.code).toBe(0);
      for (const flag of command.args.flags)
        for (const spelling of flag.spellings) expect(r.stdout).toContain(spelling);
      expect(command.examples.length).toBeGreaterThan(0);
      expect(r.stdout).toEndWith(`\n\nEXAMPLES\n${command.examples.map((e) => `  ${e}\n`).join("")}`);
      expect(command.examples.some((e) => e.includes(`carnot ${name}`))).toBe(true);
    });
  }
});

describe("a command line that is not understood is refused before anything runs", () => {
  test("trace --pdi: one line naming --pid, exit 2; nothing attached, no output, not even the engine's cache file", () => {
    const dir = mkdtempSync(join(tmp, "trace-"));
    const started = performance.now();
    const r = carnot(["trace", "--pdi", "1", "--out", join(dir, "x.jsonl"), "--duration", "1"], {
      CARNOT_CACHE_DIR: join(dir, "cache"),
    });
    expect(r.stderr).toBe("carnot: unknown flag --pdi (did you mean --pid?)\n");
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(readdirSync(dir)).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  test("replay --strictt: refused (it would have run without --strict and exited 0), no output file", () => {
    const out = join(tmp, "strictt.jsonl");
    const r = carnot(["replay", "--strictt", STRACE, "-o", out]);
    expect(r.stderr).toBe("carnot: unknown flag --strictt (did you mean --strict?)\n");
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.seal.json`)).toBe(false);
  });

  test("verify --key for --key-file: refused, not a check without the key", () => {
    const r = carnot(["verify", "--key", "secret.key", "log.jsonl"]);
    expect(r.stderr).toBe("carnot: unknown flag --key (did you mean --key-file?)\n");
    expect(r.code).toBe(2);
  });

  test("an unknown command, with or without --help: one line, exit 2, no help", () => {
    for (const line of [["no-such-command"], ["no-such-command", "--help"], ["no-such-command", "-h", "x"]]) {
      const r = carnot(line);
      expect(r.stderr).toBe("carnot: unknown command no-such-command\n");
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
    }
    expect(carnot(["replya", "x.strace"]).stderr).toBe(
      "carnot: unknown command replya (did you mean replay?)\n",
    );
  });

  test("a positional argument the command does not take: refused, no output file", () => {
    const out = join(tmp, "two-inputs.jsonl");
    const r = carnot(["replay", STRACE, "second.strace", "-o", out]);
    expect(r.stderr).toBe("carnot: unexpected argument second.strace (carnot replay takes <FILE>)\n");
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  test("missing and malformed values: one line naming the flag", async () => {
    expect(await refusal(["trace", "--pid"])).toBe("--pid needs a value");
    expect(await refusal(["trace", "--pid", "--comm", "curl"])).toBe("--pid needs a value");
    expect(await refusal(["trace", "--comm="])).toBe("--comm needs a value");
    expect(await refusal(["trace", "--out", ""])).toBe("--out needs a value");
    expect(await refusal(["replay", "x.strace", "--strict=yes"])).toBe("--strict takes no value");
    expect(await refusal(["trace", "--pid", "1", "--pid", "2"])).toBe("--pid given more than once");
    expect(await refusal(["bom", "in.jsonl", "-o", "a.json", "--output", "b.json"])).toBe(
      "--output given more than once",
    );
    expect(await refusal(["replay"])).toBe("missing argument <FILE> (see carnot replay --help)");
    expect(await refusal(["attest", "verify"])).toBe(
      "missing argument <FILE> (see carnot attest verify --help)",
    );
    expect(await refusal(["trace", "-outt", "x"])).toBe("unknown flag -outt (did you mean --out?)");
  });

  test("flags of one command are not another's: attest verify takes no signing key", async () => {
    expect(await refusal(["attest", "verify", "a.json", "--key", "k.pem"])).toStartWith("unknown flag --key");
    expect(await refusal(["attest", "bom.json", "--public-key", "p.pem"])).toStartWith(
      "unknown flag --public-key",
    );
  });
});

describe("what the grammar takes", () => {
  test("trace: -out FILE (one dash, the historical line), -o, --output, --out=FILE and - for stdout", async () => {
    for (const given of [["-out", "x.jsonl"], ["-o", "x.jsonl"], ["--output", "x.jsonl"], ["--out=x.jsonl"]])
      expect((await argsSeen(["trace", ...given])).args.out).toBe("x.jsonl");
    expect((await argsSeen(["trace", "--out", "-"])).args.out).toBe("-");
  });

  test("trace --libssl is repeatable, in every spelling, in order", async () => {
    const { argv } = await argsSeen([
      "trace",
      "--libssl",
      "/a/libssl.so",
      "--libssl=/b/node",
      "-libssl",
      "/c",
    ]);
    expect(repeatedOption(argv, "libssl", { commas: false })).toEqual(["/a/libssl.so", "/b/node", "/c"]);
  });

  test("booleans: --flag and --no-flag; a value that starts with a dash through --flag=VALUE", async () => {
    expect((await argsSeen(["replay", "x", "--strict"])).args.strict).toBe(true);
    expect((await argsSeen(["replay", "x", "--strict", "--no-strict"])).args.strict).toBe(false);
    expect((await argsSeen(["trace", "--comm=-bash"])).args.comm).toBe("-bash");
  });

  test("merge takes any number of files; after -- a word starting with a dash is a file", async () => {
    expect((await argsSeen(["merge", "a.json", "b.json", "c.json"])).args._).toEqual([
      "a.json",
      "b.json",
      "c.json",
    ]);
    expect((await argsSeen(["replay", "--", "-odd.strace"])).args.file).toBe("-odd.strace");
    expect(await refusal(["replay", "a.strace", "--", "b.strace"])).toStartWith(
      "unexpected argument b.strace",
    );
  });

  test("seccomp --apply: the words after -- are the command's, never checked as carnot's", async () => {
    const { argv } = await argsSeen(["seccomp", "--apply", "p.json", "--", "curl", "--bogus", "x", "y"]);
    expect(argv.slice(argv.indexOf("--"))).toEqual(["--", "curl", "--bogus", "x", "y"]);
    const r = carnot(["seccomp", "--apply", join(tmp, "missing.json"), "--", "true", "--bogus"]);
    expect(r.stderr).not.toContain("--bogus");
    expect(r.stderr).toContain("missing.json");
  });

  test("the hidden __calibrate still runs", () => {
    const r = carnot(["__calibrate"]);
    expect(r.stderr).toBe("carnot: __calibrate needs a libssl path\n");
    expect(r.code).toBe(2);
  });
});
