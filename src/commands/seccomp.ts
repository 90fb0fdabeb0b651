import { basename } from "node:path";
import { defineCommand } from "citty";
import { forEachEnrichedRecord } from "../consumers/enriched-reader.ts";
import { writeThroughSink } from "../consumers/output-sink.ts";
import { execUnderProfile, readOciProfile } from "../consumers/seccomp/apply.ts";
import {
  buildSeccompProfile,
  renderOciProfile,
  renderSpoProfile,
  SyscallUsage,
  type UnknownSyscall,
} from "../consumers/seccomp/profile.ts";
import { CarnotError } from "../errors.ts";
import { commonArgs, outputArg } from "./shared.ts";

function describeUnknown(file: string, unknown: UnknownSyscall[]): string {
  const list = unknown.map((u) => `${u.name} (${u.count} records, first at line ${u.firstLine})`).join(", ");
  const noun = unknown.length === 1 ? "name" : "names";
  return `${file}: ${unknown.length} syscall ${noun} not in the x86-64 table: ${list}`;
}

export default defineCommand({
  meta: {
    name: "seccomp",
    description:
      "Least-privilege seccomp profile (OCI/Docker JSON or Kubernetes SPO) from an enriched.jsonl; " +
      "--apply runs a command under a profile",
  },
  args: {
    file: {
      type: "positional",
      required: false,
      description: "enriched.jsonl from `carnot replay` (- for stdin)",
    },
    ...outputArg,
    exe: {
      type: "string",
      description: "Only the syscalls of this executable (exe_path)",
      valueHint: "PATH",
    },
    args: {
      type: "boolean",
      description: "Add argument filters where safe and certain (open flags, socket family/type)",
      default: false,
    },
    format: {
      type: "string",
      description: "oci (Docker/runc JSON) or spo (SeccompProfile YAML)",
      default: "oci",
    },
    name: {
      type: "string",
      description: "metadata.name of the SPO resource (default: from --exe or the file)",
    },
    "skip-unknown": {
      type: "boolean",
      description: "Write the profile without syscall names x86-64 does not know (they are still listed)",
      default: false,
    },
    apply: {
      type: "string",
      description: "Run the command after -- under this OCI profile (libseccomp, then execve)",
      valueHint: "PROFILE",
    },
    ...commonArgs,
  },
  async run({ args, rawArgs }) {
    if (args.apply) {
      const separator = rawArgs.indexOf("--");
      if (separator === -1) throw new CarnotError("--apply needs a command after --", { exitCode: 2 });
      const profile = await readOciProfile(args.apply);
      return execUnderProfile(profile, rawArgs.slice(separator + 1));
    }
    const file = args.file;
    if (!file) throw new CarnotError("missing the enriched.jsonl to read (see --help)", { exitCode: 2 });
    if (args.format !== "oci" && args.format !== "spo")
      throw new CarnotError(`--format must be oci or spo, not ${args.format}`, { exitCode: 2 });

    const usage = new SyscallUsage({ exe: args.exe ?? null });
    await forEachEnrichedRecord(file, (record, line) => usage.add(record, line));

    if (usage.records === 0) throw new CarnotError(`${file}: no records`);
    if (args.exe && usage.matched === 0) {
      const seen = usage.executablesSeen().slice(0, 8).join(", ") || "none";
      throw new CarnotError(`${file}: no records of ${args.exe}; executables in the trace: ${seen}`);
    }
    const unknown = usage.unknownSyscalls();
    if (unknown.length > 0) {
      if (!args["skip-unknown"])
        throw new CarnotError(
          `${describeUnknown(file, unknown)}; --skip-unknown writes the profile without them`,
        );
      process.stderr.write(`carnot: left out of the profile: ${describeUnknown(file, unknown)}\n`);
    }
    const profile = buildSeccompProfile(usage, { withArgs: args.args });
    const text =
      args.format === "spo"
        ? renderSpoProfile(profile, args.name ?? basename(args.exe ?? file).replace(/\.jsonl$/, ""))
        : renderOciProfile(profile);
    await writeThroughSink(args.output, async (sink) => sink.write(text));
    return 0;
  },
});
