import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CommandNode, commandTree } from "../../src/program.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const tmp = mkdtempSync(join(tmpdir(), "carnot-completion-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The script `carnot completion SHELL` prints, also saved to a file. */
function script(shell: string): { text: string; path: string } {
  const res = Bun.spawnSync([process.execPath, CLI, "completion", shell], { stdout: "pipe", stderr: "pipe" });
  expect(res.stderr.toString()).toBe("");
  expect(res.exitCode).toBe(0);
  const path = join(tmp, `carnot.${shell}`);
  writeFileSync(path, res.stdout);
  return { text: res.stdout.toString(), path };
}

function run(cmd: string[]) {
  const res = Bun.spawnSync(cmd, {
    stdout: "pipe",
    stderr: "pipe",
    cwd: tmp,
    env: { ...process.env, HOME: tmp },
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

/** Every long flag --help lists for a command, and --help (--version for carnot itself). */
const longFlags = (c: CommandNode) => {
  const own = c.args.flags.flatMap((f) => f.spellings.filter((s) => s.startsWith("--")));
  return [...new Set(["--help", ...(c.path.length === 1 ? ["--version"] : []), ...own])].sort();
};
const subcommandNames = (c: CommandNode) => c.subcommands.map((s) => s.path.at(-1)!).sort();

/** A single-quoted shell word. */
const shq = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

const sorted = (lines: string) => lines.split("\n").filter(Boolean).sort();

const which = (name: string) => Bun.which(name);

describe("bash", () => {
  const bash = script("bash");
  /** Completions bash offers for the words typed so far (the last one being completed), by carnot's own function. */
  const offered = (...words: string[]) => {
    const line = words.map((w) => `'${w}'`).join(" ");
    const r = run([
      "bash",
      "--norc",
      "-c",
      `source <(${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} completion bash) || exit 9
       COMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMP_LINE="\${COMP_WORDS[*]}"
       _carnot && printf '%s\\n' "\${COMPREPLY[@]}"`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return sorted(r.stdout);
  };

  test("loaded in a real bash, carnot has a completion function", () => {
    const r = run([
      "bash",
      "--norc",
      "-c",
      `source ${bash.path} && complete -p carnot && declare -F _carnot`,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("complete -o default -F _carnot carnot\n_carnot\n");
  });

  test("the commands, hidden ones left out; a prefix completes to its command", () => {
    expect(offered("carnot", "")).toEqual(subcommandNames(tree));
    expect(offered("carnot", "")).not.toContain("__calibrate");
    expect(offered("carnot", "rep")).toEqual(["replay"]);
  });

  test("every command is offered the flags its definitions list, and only those", () => {
    for (const command of commands) expect(offered(...command.path, "--")).toEqual(longFlags(command));
    expect(offered("carnot", "trace", "--metrics-")).toEqual([
      "--metrics-addr",
      "--metrics-interval",
      "--metrics-json",
    ]);
  });

  test("subcommands where a command is expected (attest verify), not after its arguments", () => {
    expect(offered("carnot", "attest", "v")).toContain("verify");
    expect(offered("carnot", "attest", "merged.json", "v")).toEqual([]);
    expect(offered("carnot", "attest", "verify", "--")).toEqual(["--help", "--public-key", "--verbose"]);
  });

  test("after a flag that takes a value: nothing of carnot's (readline completes a file)", () => {
    expect(offered("carnot", "trace", "--out", "")).toEqual([]);
    expect(offered("carnot", "trace", "--out", "--")).toEqual([]);
  });

  test("after seccomp --apply P --: the name of a command to run", () => {
    expect(offered("carnot", "seccomp", "--apply", "p.json", "--", "bas")).toContain("bash");
  });
});

describe("zsh", () => {
  const zsh = which("zsh");
  if (!zsh) console.log("zsh: skipped: zsh is not installed (make setup installs it)");

  /**
   * What zsh offers for each line, typed with a TAB into an interactive zsh on a pseudo-terminal (zpty):
   * compadd is wrapped to write down the matches; a command typed after the TAB says it is finished. What zsh
   * writes to the terminal is read away meanwhile: a full terminal buffer would stop it.
   */
  function offered(path: string, lines: string[]): string[][] {
    const dir = mkdtempSync(join(tmp, "zsh-"));
    const steps = lines.map(
      (line, i) => `zpty -w z ${shq(`M=${dir}/m${i}`)}
zpty -w -n z ${shq(line)}$'\t'
zpty -w z $'C-u'${shq(`print > ${dir}/done${i}`)}
for t in {1..600}; do [[ -e ${dir}/done${i} ]] && break; while zpty -r -t z junk; do :; done; sleep 0.05; done`,
    );
    const driver = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z ${shq(`autoload -Uz compinit; compinit -u -d ${dir}/zcompdump; source ${path}`)}
zpty -w z ${shq(`compadd() { builtin compadd "$@"; local -a m; builtin compadd -O m "$@"; print -rl -- $m >> $M; }`)}
${steps.join("\n")}
zpty -d z
`;
    writeFileSync(join(dir, "driver.zsh"), driver);
    const r = run([zsh!, "-f", join(dir, "driver.zsh")]);
    expect(r.code).toBe(0);
    return lines.map((_, i) => {
      expect(existsSync(join(dir, `done${i}`))).toBe(true);
      return existsSync(join(dir, `m${i}`))
        ? [...new Set(sorted(readFileSync(join(dir, `m${i}`), "utf8")))]
        : [];
    });
  }

  test.skipIf(!zsh)("the script parses (zsh -n) and registers _carnot for carnot with compinit", () => {
    const { path } = script("zsh");
    expect(run([zsh!, "-n", path])).toEqual({ code: 0, stdout: "", stderr: "" });
    const r = run([
      zsh!,
      "-f",
      "-c",
      `autoload -Uz compinit && compinit -u -d ${tmp}/zcompdump && source ${path} && print -r -- $_comps[carnot]`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("_carnot\n");
  });

  test.skipIf(!zsh)(
    "typed into a real zsh: the commands, and every command's flags from its definitions",
    () => {
      const { path } = script("zsh");
      const lines = ["carnot ", "carnot trace --metrics-", ...commands.map((c) => `${c.path.join(" ")} --`)];
      const [top, metrics, ...flags] = offered(path, lines);
      expect(top).toEqual(subcommandNames(tree));
      expect(metrics).toEqual(["--metrics-addr", "--metrics-interval", "--metrics-json"]);
      for (const [i, command] of commands.entries()) expect(flags[i]).toEqual(longFlags(command));
    },
  );
});

describe("fish", () => {
  const fish = which("fish");
  if (!fish) console.log("fish: skipped: fish is not installed (make setup installs it)");
  /** What fish itself completes for a command line (`complete -C`), names only. */
  const offered = (path: string, line: string) => {
    const r = run([fish!, "--no-config", "-c", `source ${path}; complete -C ${JSON.stringify(line)}`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return sorted(r.stdout.replace(/\t.*$/gm, ""));
  };

  test.skipIf(!fish)("the script parses (fish -n); fish completes every command's flags from it", () => {
    const { path } = script("fish");
    expect(run([fish!, "-n", path])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(offered(path, "carnot ")).toEqual(subcommandNames(tree));
    for (const command of commands)
      expect(offered(path, `${command.path.join(" ")} --`)).toEqual(longFlags(command));
    expect(offered(path, "carnot attest verify --")).toEqual(["--help", "--public-key", "--verbose"]);
  });
});

test("an unsupported shell: one line, exit 2", () => {
  const res = Bun.spawnSync([process.execPath, CLI, "completion", "tcsh"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(res.stderr.toString()).toBe("carnot: no completion for tcsh: bash, zsh or fish\n");
  expect(res.exitCode).toBe(2);
});
