import { CarnotError } from "../errors.ts";
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

/** The asset context a command applies (bom: to every observation; inventory: to resources without tags for it). */
export const assetContextArgs = {
  context: {
    type: "string",
    description: "JSON file with owner, data_class, secrecy_lifetime_years, exposure",
    valueHint: "FILE",
  },
  owner: { type: "string", description: "Owning team", valueHint: "NAME" },
  "data-class": {
    type: "string",
    description: "Data classification, e.g. confidential",
    valueHint: "CLASS",
  },
  "secrecy-years": {
    type: "string",
    description: "How long the data must stay secret",
    valueHint: "YEARS",
  },
  exposure: {
    type: "string",
    description: "PUBLIC_INTERNET, EXTERNAL_B2B or INTERNAL",
    valueHint: "WHERE",
  },
} as const satisfies ArgsDef;

/**
 * Every value of an option that may be repeated (`--region a --region b`, `--region=a`), each also split at
 * commas unless `commas` is false (a path may hold one); the parser itself keeps only the last. The command
 * line was checked before (src/command-line.ts): every such flag has its value.
 */
export function repeatedOption(rawArgs: readonly string[], name: string, { commas = true } = {}): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return commas ? values.flatMap((v) => v.split(",")).map((v) => v.trim()) : values;
}

/** A whole number given as a flag's text, at least `min`; anything else is a usage error (exit 2). */
export function parseCount(text: string, flag: string, min: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) {
    throw new CarnotError(`invalid ${flag} "${text}": expected an integer ≥ ${min}`, { exitCode: 2 });
  }
  return Number(text);
}

/** A document lists its observations up to this many; past it the components are the unit (README). */
export const DEFAULT_MAX_OBSERVATIONS = 10_000;

/** For the commands that make one document of many inputs (bom, merge, policy, attest). */
export const maxObservationsArgs = {
  "max-observations": {
    type: "string",
    description: `List observations while there are at most N (default ${DEFAULT_MAX_OBSERVATIONS}); past N, components with counts only`,
    valueHint: "N",
  },
} as const satisfies ArgsDef;

export const maxObservationsOf = (raw: string | undefined): number =>
  raw === undefined ? DEFAULT_MAX_OBSERVATIONS : parseCount(raw, "--max-observations", 0);

/** Every positional word of a command whose last positional takes many (citty keeps all of them in `_`). */
export const positionalWords = (args: { _: string[] }, first: string): string[] =>
  args._.length ? args._ : [first];
