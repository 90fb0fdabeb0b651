/** The command line: subcommands, help with examples, one-line errors and exit codes. */
import {
  type ArgsDef,
  type CommandDef,
  type CommandMeta,
  defineCommand,
  renderUsage,
  runCommand,
  type SubCommandsDef,
} from "citty";
import { type ArgsSpec, argsSpec, checkArguments, didYouMean, HELP_FLAGS } from "./command-line.ts";
import { BROKEN_PIPE_EXIT, CarnotError, describeError, isBrokenPipe } from "./errors.ts";
import { writeStderr, writeStdout } from "./io/output.ts";
import { VERSION } from "./version.ts";

/** Real command lines, shown at the end of `--help`. */
const EXAMPLES: Record<string, string[]> = {
  carnot: [
    "sudo carnot trace --out runtime.jsonl",
    "strace -f -tt -T -yy -o app.strace ./app && carnot replay app.strace -o enriched.jsonl",
    "carnot verify enriched.jsonl",
    "carnot demo",
  ],
  replay: [
    "strace -f -ttt -T -yy -o app.strace -- python3 app.py",
    "carnot replay app.strace -o enriched.jsonl",
    "strace -f -o /dev/stdout ls 2>/dev/null | carnot replay - --strict",
  ],
  record: [
    "sudo carnot record --out enriched.jsonl -- python3 app.py",
    "sudo carnot record --out enriched.jsonl --seccomp profile.json -- tar czf /tmp/etc.tgz /etc",
    "sudo carnot record --pid 1234 --out enriched.jsonl",
  ],
  verify: ["carnot verify enriched.jsonl", "carnot verify runtime.jsonl --key-file secret.key"],
  trace: [
    "sudo carnot trace",
    "sudo carnot trace --out runtime.jsonl --metrics-json metrics.json",
    "sudo carnot trace --libssl /usr/bin/node --comm node",
  ],
  demo: ["sudo carnot demo"],
  bom: [
    "carnot bom runtime.jsonl -o runtime.bom.json --owner payments --secrecy-years 15 --exposure PUBLIC_INTERNET",
    "carnot bom runtime.jsonl --format cyclonedx -o runtime.cdx.json",
    "carnot bom 'hosts/*/runtime*.jsonl' -o fleet.bom.json",
  ],
  merge: [
    "carnot merge runtime.bom.json static.cryptobom.json cloud.cryptobom.json -o merged.json",
    "carnot merge 'sites/*/fleet.bom.json' cloud.cryptobom.json -o fleet.json",
  ],
  policy: [
    "carnot policy merged.json",
    "carnot policy merged.json --format sarif -o policy.sarif --enforce",
    "carnot policy 'sites/*/fleet.bom.json' --format text",
  ],
  attest: [
    "carnot attest merged.json --policy policy.json --key ed25519.pem -o reports/attestation",
    "carnot attest 'sites/*/fleet.bom.json' cloud.cryptobom.json --key ed25519.pem -o reports/fleet",
    "carnot attest verify reports/attestation.json --public-key ed25519.pub.pem",
  ],
  "attest verify": [
    "carnot attest verify reports/attestation.json --public-key ed25519.pub.pem",
    "carnot attest verify reports/attestation.json",
  ],
  seccomp: [
    "carnot seccomp enriched.jsonl -o profile.json",
    "carnot seccomp enriched.jsonl --exe /usr/bin/python3.11 --args -o profile.json",
    "carnot seccomp enriched.jsonl --format spo --name my-app -o seccompprofile.yaml",
    "carnot seccomp --apply profile.json -- python3 app.py",
  ],
  actions: ["carnot actions enriched.jsonl", "carnot actions enriched.jsonl --format json -o actions.jsonl"],
  timeline: [
    "carnot timeline enriched.jsonl",
    "carnot timeline enriched.jsonl -o timeline.html",
    "carnot timeline enriched.jsonl --format trace-event -o trace.json",
  ],
  serve: [
    "carnot serve --addr 127.0.0.1:8080 --key ed25519.pem",
    "curl -s -H 'Content-Type: application/json' --data-binary @merged.json localhost:8080/attest",
    "curl -s -H 'Content-Type: application/json' -H 'Accept: application/sarif+json' --data-binary @merged.json localhost:8080/policy",
  ],
  inventory: ["carnot inventory aws --region eu-west-1 -o cloud.cryptobom.json"],
  "inventory aws": [
    "carnot inventory aws --region eu-west-1 --region us-east-1 -o cloud.cryptobom.json",
    "carnot inventory aws --profile audit --owner platform --exposure INTERNAL -o cloud.cryptobom.json",
    "carnot merge runtime.bom.json cloud.cryptobom.json -o merged.json && carnot policy merged.json",
  ],
  completion: [
    "source <(carnot completion bash)",
    "carnot completion zsh > /usr/local/share/zsh/site-functions/_carnot",
    "carnot completion fish > ~/.config/fish/completions/carnot.fish",
  ],
};

const main = defineCommand({
  meta: {
    name: "carnot",
    version: VERSION,
    description: "What cryptography and system calls programs really use",
  },
  subCommands: {
    trace: () => import("./commands/trace.ts").then((m) => m.default),
    replay: () => import("./commands/replay.ts").then((m) => m.default),
    record: () => import("./commands/record.ts").then((m) => m.default),
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    demo: () => import("./commands/demo.ts").then((m) => m.default),
    bom: () => import("./commands/bom.ts").then((m) => m.default),
    merge: () => import("./commands/merge.ts").then((m) => m.default),
    policy: () => import("./commands/policy.ts").then((m) => m.default),
    attest: () => import("./commands/attest.ts").then((m) => m.default),
    seccomp: () => import("./commands/seccomp.ts").then((m) => m.default),
    actions: () => import("./commands/actions.ts").then((m) => m.default),
    timeline: () => import("./commands/timeline.ts").then((m) => m.default),
    completion: () => import("./commands/completion.ts").then((m) => m.default),
    inventory: () => import("./commands/inventory.ts").then((m) => m.default),
    serve: () => import("./commands/serve.ts").then((m) => m.default),
  },
});

const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

const usageError = (message: string) => new CarnotError(message, { exitCode: 2 });

const resolve = async <T>(value: T | Promise<T> | (() => T | Promise<T>)): Promise<T> =>
  typeof value === "function" ? (value as () => T | Promise<T>)() : value;

async function subCommandsOf(cmd: CommandDef): Promise<SubCommandsDef> {
  return (await resolve(cmd.subCommands)) ?? {};
}

/** A command, the words that name it (`carnot attest verify`) and the words given to it. */
interface Target {
  cmd: CommandDef;
  meta: CommandMeta;
  path: string[];
  words: string[];
}

/** The command the leading words name; a word that names none where a command is expected is refused. */
async function resolveTarget(rawArgs: string[]): Promise<Target> {
  let cmd: CommandDef = main;
  const path = ["carnot"];
  let i = 0;
  for (; i < rawArgs.length; i++) {
    const word = rawArgs[i]!;
    const subs = await subCommandsOf(cmd);
    if (word.startsWith("-") || Object.keys(subs).length === 0) break;
    const next = subs[word];
    if (next === undefined) {
      // a command that also runs itself (`attest FILE`, `attest verify FILE`) takes the word as an argument
      if (cmd.run) break;
      const visible = [];
      for (const [name, sub] of Object.entries(subs))
        if (!(await resolve((await resolve(sub)).meta))?.hidden) visible.push(name);
      throw usageError(`unknown command ${word}${didYouMean(word, visible)}`);
    }
    cmd = await resolve(next);
    path.push(word);
  }
  return { cmd, meta: (await resolve(cmd.meta)) ?? {}, path, words: rawArgs.slice(i) };
}

/** What a command line asks for. */
export type Plan =
  | { kind: "help"; target: Target }
  | { kind: "version" }
  | { kind: "run"; target: Target; argv: string[] };

/** The command line checked against the definitions, before anything is done; a usage error if it is refused. */
export async function planCommandLine(rawArgs: string[]): Promise<Plan> {
  const target = await resolveTarget(rawArgs);
  const separator = target.words.indexOf("--");
  const ownWords = separator === -1 ? target.words : target.words.slice(0, separator);
  // help for a command that exists, whatever else is on the line
  if (rawArgs.length === 0 || ownWords.some((w) => (HELP_FLAGS as readonly string[]).includes(w)))
    return { kind: "help", target };
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) return { kind: "version" };
  const spec = argsSpec(await resolve(target.cmd.args ?? {}));
  const name = target.path.join(" ");
  const argv = checkArguments(spec, target.words, { name, runsCommand: target.meta.runsCommand });
  if (!target.cmd.run) throw usageError(`missing command (see ${name} --help)`);
  return { kind: "run", target, argv };
}

/** One command of the tree, with its arguments as the grammar reads them (help, checks, completion). */
export interface CommandNode {
  path: string[];
  description: string;
  args: ArgsSpec;
  runsCommand: boolean;
  /** false for a group of subcommands that does nothing itself (`carnot inventory`) */
  runs: boolean;
  examples: string[];
  subcommands: CommandNode[];
}

/** Every command carnot has, hidden ones left out. */
export async function commandTree(cmd: CommandDef = main, path = ["carnot"]): Promise<CommandNode> {
  const meta = (await resolve(cmd.meta)) ?? {};
  const subcommands: CommandNode[] = [];
  for (const [name, sub] of Object.entries(await subCommandsOf(cmd))) {
    const def = await resolve(sub);
    if (!(await resolve(def.meta))?.hidden) subcommands.push(await commandTree(def, [...path, name]));
  }
  return {
    path,
    description: meta.description ?? "",
    args: argsSpec(await resolve(cmd.args ?? {})),
    runsCommand: meta.runsCommand === true,
    runs: cmd.run !== undefined,
    examples: examplesOf(path),
    subcommands,
  };
}

const examplesOf = (path: string[]) => EXAMPLES[path.slice(1).join(" ") || "carnot"] ?? [];

/** citty's help writes every alias with one dash (`-output`); the grammar and completion say `--output`. */
async function longAliasesWithTwoDashes(cmd: CommandDef): Promise<ArgsDef> {
  const args: ArgsDef = { ...(await resolve(cmd.args ?? {})) };
  for (const [name, def] of Object.entries(args)) {
    if (!("alias" in def) || def.alias === undefined) continue;
    const aliases = Array.isArray(def.alias) ? def.alias : [def.alias];
    args[name] = { ...def, alias: aliases.map((a) => (a.length > 1 ? `-${a}` : a)) };
  }
  return args;
}

async function printHelp({ cmd, path }: Target): Promise<void> {
  const colour = !process.env.NO_COLOR && process.stdout.isTTY === true;
  // citty names a command after its parent: `carnot attest` for `verify`
  const parent =
    path.length > 1 ? { meta: { name: path.slice(0, -1).join(" "), version: VERSION } } : undefined;
  const rendered = await renderUsage({ ...cmd, args: await longAliasesWithTwoDashes(cmd) }, parent);
  const usage = colour ? rendered : rendered.replace(ANSI_COLOUR, "");
  const examples = examplesOf(path);
  const block = examples.length ? `\n\nEXAMPLES\n${examples.map((e) => `  ${e}`).join("\n")}\n` : "\n";
  writeStdout(`${usage}${block}`);
}

/**
 * What the user sees of an error and the exit code: a closed pipe ends quietly with 141 (as SIGPIPE would),
 * anything else is one line on stderr, the stack only with --verbose.
 */
export function reportError(err: unknown, verbose: boolean): number {
  if (isBrokenPipe(err)) return BROKEN_PIPE_EXIT;
  const message = describeError(err);
  // citty colours names in its own messages; a log file or a pipe wants the plain words
  const colour = !process.env.NO_COLOR && process.stderr.isTTY === true;
  writeStderr(`carnot: ${colour ? message : message.replace(ANSI_COLOUR, "")}\n`);
  if (verbose && err instanceof Error && err.stack) writeStderr(`${err.stack}\n`);
  if (err instanceof CarnotError) return err.exitCode;
  // citty's own argument errors (unknown command, missing positional) are usage errors
  const code = (err as { code?: string }).code;
  return code === "EARG" || code?.startsWith("E_") ? 2 : 1;
}

/**
 * For this process being carnot: an error nothing caught (a timer's, a stream's 'error' event, a rejected
 * promise no one awaited) is reported like any other, and ends the process; never Bun's own trace.
 */
export function handleStrayErrors(rawArgs: string[]): void {
  const verbose = rawArgs.includes("--verbose");
  const stray = (err: unknown) => process.exit(reportError(err, verbose));
  process.on("uncaughtException", stray);
  process.on("unhandledRejection", stray);
  // writes carnot makes are synchronous (src/io/output.ts); these catch a library's asynchronous ones
  process.stdout.on("error", stray);
  process.stderr.on("error", () => {});
}

/** Hidden: the offset calibration child that `carnot trace` runs for each library it probes. */
const HIDDEN_CALIBRATE = "__calibrate";
/** Hidden: what the calibration runs from a user-given path runs through it, confined (src/trace/sandbox). */
const HIDDEN_SANDBOX = "__sandbox";

/**
 * For this process being carnot, before anything else runs (trace re-executes itself first): a command line
 * that is not understood is reported, and its exit code returned; null when it is fine.
 */
export async function refuseCommandLine(rawArgs: string[]): Promise<number | null> {
  if (rawArgs[0] === HIDDEN_CALIBRATE || rawArgs[0] === HIDDEN_SANDBOX) return null;
  try {
    await planCommandLine(rawArgs);
    return null;
  } catch (err) {
    return reportError(err, rawArgs.includes("--verbose"));
  }
}

export async function runCli(rawArgs: string[]): Promise<number> {
  if (rawArgs[0] === HIDDEN_CALIBRATE)
    return (await import("./commands/calibrate.ts")).runCalibrate(rawArgs.slice(1));
  if (rawArgs[0] === HIDDEN_SANDBOX)
    return (await import("./commands/sandbox.ts")).runSandbox(rawArgs.slice(1));
  try {
    const plan = await planCommandLine(rawArgs);
    if (plan.kind === "help") {
      await printHelp(plan.target);
      return rawArgs.length === 0 ? 1 : 0;
    }
    if (plan.kind === "version") {
      writeStdout(`${VERSION}\n`);
      return 0;
    }
    // the command alone: its subcommands were resolved above, and citty drops a subcommand's exit code
    const { cmd } = plan.target;
    const { result } = await runCommand({ ...cmd, subCommands: undefined }, { rawArgs: plan.argv });
    return typeof result === "number" ? result : 0;
  } catch (err) {
    return reportError(err, rawArgs.includes("--verbose"));
  }
}
