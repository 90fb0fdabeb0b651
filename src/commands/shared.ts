import type { ArgsDef } from "citty";

/** Arguments every command accepts. */
export const commonArgs = {
  verbose: { type: "boolean", description: "Debug logging and stack traces on error", default: false },
} as const satisfies ArgsDef;

/** Every command that writes a file it is given: an existing symlink there is refused unless this is set. */
export const symlinkArgs = {
  "follow-symlinks": {
    type: "boolean",
    description: "Write through an existing symlink at the output path (refused by default)",
    default: false,
  },
} as const satisfies ArgsDef;

/** `-o FILE` of a command that writes one output (default stdout), with --follow-symlinks. */
export const fileOutputArgs = {
  output: { type: "string", alias: ["o"], description: "Output file (default: stdout)", valueHint: "FILE" },
  ...symlinkArgs,
} as const satisfies ArgsDef;

/** The secret for the hash chain of a JSONL log. */
export const keyFileArgs = {
  "key-file": {
    type: "string",
    description: "Secret key file: every link of the hash chain needs it (carnot.chain.v2; 32+ bytes)",
    valueHint: "FILE",
  },
} as const satisfies ArgsDef;

/** Where a command writes its JSONL output, and the optional secret for the hash chain. */
export const outputArgs = { ...fileOutputArgs, ...keyFileArgs } as const satisfies ArgsDef;

/** The input and output of the commands that read `carnot replay`'s records (actions, timeline). */
export const enrichedIoArgs = {
  file: {
    type: "positional",
    required: true,
    description: "enriched.jsonl from `carnot replay` (- for stdin)",
  },
  ...fileOutputArgs,
} as const satisfies ArgsDef;
