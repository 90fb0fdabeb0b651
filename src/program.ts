/** The command line: subcommands, help with examples, one-line errors and exit codes. */
import { type CommandDef, defineCommand, renderUsage, runCommand } from "citty";
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
  ],
  merge: ["carnot merge runtime.bom.json static.cryptobom.json cloud.cryptobom.json -o merged.json"],
  policy: ["carnot policy merged.json", "carnot policy merged.json --format sarif -o policy.sarif --enforce"],
  attest: [
    "carnot attest merged.json --policy policy.json --key ed25519.pem -o reports/attestation",
    "carnot attest verify reports/attestation.json --public-key ed25519.pub.pem",
  ],
  seccomp: [
    "carnot seccomp enriched.jsonl -o profile.json",
    "carnot seccomp enriched.jsonl --exe /usr/bin/python3.11 --args -o profile.json",
    "carnot seccomp enriched.jsonl --format spo --name my-app -o seccompprofile.yaml",
    "carnot seccomp --apply profile.json -- python3 app.py",
  ],
  actions: ["carnot actions enriched.jsonl", "carnot actions enriched.jsonl --format json -o actions.jsonl"],
  timeline: ["carnot timeline enriched.jsonl", "carnot timeline enriched.jsonl -o timeline.html"],
  serve: [
    "carnot serve --addr 127.0.0.1:8080 --key ed25519.pem",
    "curl -s -H 'Content-Type: application/json' --data-binary @merged.json localhost:8080/attest",
    "curl -s -H 'Content-Type: application/json' -H 'Accept: application/sarif+json' --data-binary @merged.json localhost:8080/policy",
  ],
  inventory: ["carnot inventory aws --region eu-west-1 -o cloud.cryptobom.json"],
  aws: [
    "carnot inventory aws --region eu-west-1 --region us-east-1 -o cloud.cryptobom.json",
    "carnot inventory aws --profile audit --owner platform --exposure INTERNAL -o cloud.cryptobom.json",
    "carnot merge runtime.bom.json cloud.cryptobom.json -o merged.json && carnot policy merged.json",
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
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    demo: () => import("./commands/demo.ts").then((m) => m.default),
    bom: () => import("./commands/bom.ts").then((m) => m.default),
    merge: () => import("./commands/merge.ts").then((m) => m.default),
    policy: () => import("./commands/policy.ts").then((m) => m.default),
    attest: () => import("./commands/attest.ts").then((m) => m.default),
    seccomp: () => import("./commands/seccomp.ts").then((m) => m.default),
    actions: () => import("./commands/actions.ts").then((m) => m.default),
    timeline: () => import("./commands/timeline.ts").then((m) => m.default),
    inventory: () => import("./commands/inventory.ts").then((m) => m.default),
    serve: () => import("./commands/serve.ts").then((m) => m.default),
  },
});

const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

async function resolveTarget(rawArgs: string[]): Promise<[CommandDef, string[]]> {
  let cmd: CommandDef = main;
  const path = ["carnot"];
  for (const arg of rawArgs) {
    if (arg.startsWith("-")) break;
    const subs = typeof cmd.subCommands === "function" ? await cmd.subCommands() : await cmd.subCommands;
    const next = subs?.[arg];
    if (!next) break;
    cmd = (typeof next === "function" ? await next() : await next) as CommandDef;
    path.push(arg);
  }
  return [cmd, path];
}

async function printHelp(rawArgs: string[]): Promise<void> {
  const [cmd, path] = await resolveTarget(rawArgs);
  const colour = !process.env.NO_COLOR && process.stdout.isTTY === true;
  // the parent named by the whole path, so a nested command's usage reads `carnot inventory aws`
  const parent = defineCommand({ meta: { name: path.slice(0, -1).join(" "), version: VERSION } });
  const rendered = await renderUsage(cmd, path.length > 1 ? parent : undefined);
  const usage = colour ? rendered : rendered.replace(ANSI_COLOUR, "");
  const examples = EXAMPLES[path[path.length - 1] ?? "carnot"] ?? [];
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

export async function runCli(rawArgs: string[]): Promise<number> {
  // after "--" the words belong to a command carnot runs (`carnot seccomp --apply p.json -- curl --help`)
  // hidden: the offset calibration child that `carnot trace` runs for each library it probes
  if (rawArgs[0] === "__calibrate")
    return (await import("./commands/calibrate.ts")).runCalibrate(rawArgs.slice(1));
  const separator = rawArgs.indexOf("--");
  const ownArgs = separator === -1 ? rawArgs : rawArgs.slice(0, separator);
  try {
    if (rawArgs.length === 0 || ownArgs.some((a) => a === "--help" || a === "-h")) {
      await printHelp(rawArgs);
      return rawArgs.length === 0 ? 1 : 0;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      writeStdout(`${VERSION}\n`);
      return 0;
    }
    // run the subcommand itself: citty drops a subcommand's return value (the exit code)
    const [cmd, path] = await resolveTarget(rawArgs);
    const { result } = await runCommand(cmd, { rawArgs: rawArgs.slice(path.length - 1) });
    return typeof result === "number" ? result : 0;
  } catch (err) {
    return reportError(err, rawArgs.includes("--verbose"));
  }
}
