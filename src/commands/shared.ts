import type { ArgsDef } from "citty";

/** Arguments every command accepts. */
export const commonArgs = {
  verbose: { type: "boolean", description: "Debug logging and stack traces on error", default: false },
} as const satisfies ArgsDef;

/** Where a command writes its output. */
export const outputArg = {
  output: { type: "string", alias: ["o"], description: "Output file (default: stdout)", valueHint: "FILE" },
} as const satisfies ArgsDef;

/** The optional secret for the hash chain of a command's JSONL output. */
export const keyFileArg = {
  "key-file": {
    type: "string",
    description: "Secret key file: makes the hash chain's genesis a secret (32+ bytes)",
    valueHint: "FILE",
  },
} as const satisfies ArgsDef;

/** Where a command writes its JSONL output, and the optional secret for the hash chain. */
export const outputArgs = { ...outputArg, ...keyFileArg } as const satisfies ArgsDef;

/** The input and output of the commands that read `carnot replay`'s records (actions, timeline). */
export const enrichedIoArgs = {
  file: {
    type: "positional",
    required: true,
    description: "enriched.jsonl from `carnot replay` (- for stdin)",
  },
  ...outputArg,
} as const satisfies ArgsDef;
