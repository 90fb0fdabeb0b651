import { defineCommand } from "citty";
import { readKeyFile } from "../chain/writer.ts";
import { CarnotError } from "../errors.ts";
import { DEFAULT_RINGBUF_SIZE, runRecord } from "../record/run.ts";
import { PID_MAX, parseInteger, parseSize } from "./trace.ts";
import { commonArgs, keyFileArgs, symlinkArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "record",
    description:
      "Record the system calls of a command and its descendants (or of a running process tree) as enriched, hash-chained records, live through eBPF (needs root)",
    runsCommand: true,
  },
  args: {
    out: {
      type: "string",
      alias: ["o", "output"],
      description: "Output JSONL file, sealed on exit (default: stdout)",
      valueHint: "FILE",
    },
    pid: { type: "string", description: "Follow this running process and its descendants", valueHint: "N" },
    seccomp: {
      type: "string",
      description: "Also write the seccomp profile (OCI JSON) of what was recorded",
      valueHint: "FILE",
    },
    "ringbuf-size": {
      type: "string",
      description: "Kernel ring buffer size: a power of two ≥ the page size (default 128M)",
      valueHint: "BYTES",
    },
    ...symlinkArgs,
    ...keyFileArgs,
    ...commonArgs,
  },
  async run({ args, rawArgs }) {
    const separator = rawArgs.indexOf("--");
    const command = separator >= 0 ? rawArgs.slice(separator + 1) : [];
    const pid =
      args.pid === undefined ? undefined : parseInteger(args.pid, "--pid", 1, PID_MAX, "a process id");
    if (pid !== undefined && command.length > 0)
      throw new CarnotError("give either --pid N or a command after --, not both", { exitCode: 2 });
    if (pid === undefined && command.length === 0)
      throw new CarnotError("missing the command to record: carnot record -- COMMAND (or --pid N)", {
        exitCode: 2,
      });
    const ringbufSize = args["ringbuf-size"]
      ? parseSize(args["ringbuf-size"], "--ringbuf-size")
      : DEFAULT_RINGBUF_SIZE;
    if (ringbufSize < 4096 || (ringbufSize & (ringbufSize - 1)) !== 0)
      throw new CarnotError(`invalid --ringbuf-size: ${ringbufSize} is not a power of two of at least 4096`, {
        exitCode: 2,
      });
    const summary = await runRecord({
      out: args.out ?? null,
      command,
      pid,
      ringbufSize,
      key: args["key-file"] ? await readKeyFile(args["key-file"]) : undefined,
      followSymlinks: args["follow-symlinks"],
      seccomp: args.seccomp,
    });
    return summary.exitCode;
  },
});
