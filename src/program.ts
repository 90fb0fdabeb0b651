/** The command line: subcommands, help with examples, one-line errors and exit codes. */
import { type CommandDef, defineCommand, renderUsage, runCommand } from "citty";
import { CarnotError, describeError } from "./errors.ts";
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
  const rendered = await renderUsage(cmd, path.length > 1 ? main : undefined);
  const usage = colour ? rendered : rendered.replace(ANSI_COLOUR, "");
  const examples = EXAMPLES[path[path.length - 1] ?? "carnot"] ?? [];
  const block = examples.length ? `\n\nEXAMPLES\n${examples.map((e) => `  ${e}`).join("\n")}\n` : "\n";
  process.stdout.write(`${usage}${block}`);
}

export async function runCli(rawArgs: string[]): Promise<number> {
  // after "--" the words belong to a command carnot runs (`carnot seccomp --apply p.json -- curl --help`)
  // hidden: the offset calibration child that `carnot trace` runs for each library it probes
  if (rawArgs[0] === "__calibrate")
    return (await import("./commands/calibrate.ts")).runCalibrate(rawArgs.slice(1));
  // hidden: what the calibration runs from a user-given path runs through it, confined
  if (rawArgs[0] === "__sandbox") return (await import("./commands/sandbox.ts")).runSandbox(rawArgs.slice(1));
  const separator = rawArgs.indexOf("--");
  const ownArgs = separator === -1 ? rawArgs : rawArgs.slice(0, separator);
  if (rawArgs.length === 0 || ownArgs.some((a) => a === "--help" || a === "-h")) {
    await printHelp(rawArgs);
    return rawArgs.length === 0 ? 1 : 0;
  }
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  try {
    // run the subcommand itself: citty drops a subcommand's return value (the exit code)
    const [cmd, path] = await resolveTarget(rawArgs);
    const { result } = await runCommand(cmd, { rawArgs: rawArgs.slice(path.length - 1) });
    return typeof result === "number" ? result : 0;
  } catch (err) {
    const message = describeError(err);
    // citty colours names in its own messages; a log file or a pipe wants the plain words
    const colour = !process.env.NO_COLOR && process.stderr.isTTY === true;
    process.stderr.write(`carnot: ${colour ? message : message.replace(ANSI_COLOUR, "")}\n`);
    if (rawArgs.includes("--verbose") && err instanceof Error && err.stack)
      process.stderr.write(`${err.stack}\n`);
    if (err instanceof CarnotError) return err.exitCode;
    // citty's own argument errors (unknown command, missing positional) are usage errors
    const code = (err as { code?: string }).code;
    return code === "EARG" || code?.startsWith("E_") ? 2 : 1;
  }
}
