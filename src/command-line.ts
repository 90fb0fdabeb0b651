/**
 * The grammar every command shares, read from the command's own `args` definition (the one its --help
 * shows) and checked before the command runs, so that nothing is done for a command line that is not
 * understood:
 *   --name VALUE, --name=VALUE, -n VALUE (a one-letter alias), -name VALUE (one dash: trace's `-out FILE`);
 *   --flag and --no-flag for a boolean; positional arguments in their order;
 *   after `--`, more positional arguments, or the words of a command carnot runs (meta.runsCommand).
 * A value hint ending in "…" means more than one: such a flag may be repeated, such a (last) positional
 * takes every remaining word. The command gets the words back in one spelling (`--name=VALUE`).
 */
import type { ArgDef, ArgsDef } from "citty";
import { CarnotError } from "./errors.ts";

declare module "citty" {
  interface CommandMeta {
    /** The words after `--` are a command this one runs (`carnot seccomp --apply p.json -- curl --help`). */
    runsCommand?: boolean;
  }
}

export interface FlagSpec {
  name: string;
  type: "boolean" | "string" | "enum";
  /** Every way to write it that --help lists: `--out`, `-o`, `--output`, and `--no-x` where shown. */
  spellings: string[];
  description: string;
  valueHint?: string;
  options?: string[];
  repeatable: boolean;
  required: boolean;
}

export interface PositionalSpec {
  name: string;
  description: string;
  required: boolean;
  variadic: boolean;
}

export interface ArgsSpec {
  flags: FlagSpec[];
  positionals: PositionalSpec[];
}

/** The flags every command takes on top of its own (handled before the command is looked at). */
export const HELP_FLAGS = ["--help", "-h"] as const;

const usageError = (message: string) => new CarnotError(message, { exitCode: 2 });

const takesMany = (def: ArgDef) => /(…|\.\.\.)$/.test(def.valueHint ?? "");

/** A command's `args`, as the grammar above reads them. */
export function argsSpec(args: ArgsDef): ArgsSpec {
  const flags: FlagSpec[] = [];
  const positionals: PositionalSpec[] = [];
  for (const [name, def] of Object.entries(args)) {
    const description = def.description ?? "";
    if (def.type === "positional") {
      const required = def.required !== false && def.default === undefined;
      positionals.push({ name: name.toUpperCase(), description, required, variadic: takesMany(def) });
      continue;
    }
    const type = def.type === "boolean" || def.type === "enum" ? def.type : "string";
    const alias = "alias" in def ? def.alias : undefined;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    const spellings = [`--${name}`, ...aliases.map((a) => (a.length === 1 ? `-${a}` : `--${a}`))];
    // as citty's help: the negative form is listed where the flag is on by default or says what it does
    if (type === "boolean" && (def.default === true || "negativeDescription" in def))
      spellings.push(`--no-${name}`);
    flags.push({
      name,
      type,
      spellings,
      description,
      valueHint: def.valueHint,
      options: "options" in def ? def.options : undefined,
      repeatable: takesMany(def),
      required: def.required === true && def.default === undefined,
    });
  }
  return { flags, positionals };
}

/** Optimal string alignment distance: an edit is an insertion, a deletion, a substitution or a swap. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known names closest to a word that is not one (a typo, or the start of a longer name). */
export function closestNames(word: string, known: Iterable<string>): string[] {
  const limit = word.length >= 5 ? 2 : 1;
  let best = Number.POSITIVE_INFINITY;
  let names: string[] = [];
  for (const name of new Set(known)) {
    const prefix = word.length >= 2 && (name.startsWith(word) || word.startsWith(name));
    const distance = prefix ? 1 : editDistance(word, name);
    if (distance > limit || distance > best) continue;
    if (distance < best) names = [];
    best = distance;
    names.push(name);
  }
  return names.sort().slice(0, 3);
}

/** " (did you mean --pid?)", or nothing when no known name is close. */
export function didYouMean(word: string, known: Iterable<string>, prefix = ""): string {
  const names = closestNames(word, known);
  return names.length ? ` (did you mean ${names.map((n) => `${prefix}${n}`).join(" or ")}?)` : "";
}

/** A word that may be a flag's value in `--flag VALUE`: not another flag (`-` is stdin, `-5` a number). */
const isValueWord = (word: string | undefined): word is string =>
  word !== undefined && (!word.startsWith("-") || word === "-" || /^-\d/.test(word));

function flagIndex(spec: ArgsSpec): Map<string, { flag: FlagSpec; negated: boolean }> {
  const index = new Map<string, { flag: FlagSpec; negated: boolean }>();
  for (const flag of spec.flags) {
    for (const spelling of flag.spellings) {
      const negated = spelling === `--no-${flag.name}`;
      index.set(spelling, { flag, negated });
      // one dash for a long name too: `-out FILE`, as trace always took it
      if (spelling.startsWith("--")) index.set(spelling.slice(1), { flag, negated });
    }
    if (flag.type === "boolean") {
      index.set(`--no-${flag.name}`, { flag, negated: true });
      index.set(`-no-${flag.name}`, { flag, negated: true });
    }
  }
  return index;
}

function knownLongNames(spec: ArgsSpec): string[] {
  const names = ["help"];
  for (const flag of spec.flags) {
    for (const s of flag.spellings) if (s.startsWith("--")) names.push(s.slice(2));
    if (flag.type === "boolean") names.push(`no-${flag.name}`);
  }
  return names;
}

function describePositionals(positionals: PositionalSpec[]): string {
  if (positionals.length === 0) return "no arguments";
  return positionals
    .map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`) + (p.variadic ? "…" : ""))
    .join(" ");
}

/**
 * Checks the words after a command's name against its arguments and returns them in one spelling for the
 * argument parser; a word it does not understand is a usage error (exit 2) naming it.
 */
export function checkArguments(
  spec: ArgsSpec,
  words: readonly string[],
  command: { name: string; runsCommand?: boolean },
): string[] {
  const index = flagIndex(spec);
  const flags: string[] = [];
  const positionals: string[] = [];
  const given = new Set<string>();
  let rest: string[] | null = null;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === "--") {
      rest = words.slice(i + 1);
      break;
    }
    if (!word.startsWith("-") || word === "-") {
      positionals.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    const written = eq === -1 ? word : word.slice(0, eq);
    const found = index.get(written);
    if (!found) {
      throw usageError(
        `unknown flag ${written}${didYouMean(written.replace(/^--?/, ""), knownLongNames(spec), "--")}`,
      );
    }
    const { flag, negated } = found;
    if (flag.type === "boolean") {
      if (eq !== -1) throw usageError(`${written} takes no value`);
      flags.push(negated ? `--no-${flag.name}` : `--${flag.name}`);
      continue;
    }
    let value = eq === -1 ? undefined : word.slice(eq + 1);
    if (value === undefined && isValueWord(words[i + 1])) value = words[++i];
    if (value === undefined || value === "") throw usageError(`${written} needs a value`);
    if (flag.options?.length && !flag.options.includes(value))
      throw usageError(`invalid ${written} ${value}: expected ${flag.options.join(", ")}`);
    if (given.has(flag.name) && !flag.repeatable) throw usageError(`--${flag.name} given more than once`);
    given.add(flag.name);
    flags.push(`--${flag.name}=${value}`);
  }
  for (const flag of spec.flags)
    if (flag.required && !given.has(flag.name)) throw usageError(`missing flag --${flag.name}`);
  // after `--`: the command carnot runs, or more positional arguments (a file named `-x`)
  const counted = rest === null || command.runsCommand ? positionals : [...positionals, ...rest];
  const missing = spec.positionals.find((p, i) => p.required && counted[i] === undefined);
  if (missing) throw usageError(`missing argument <${missing.name}> (see ${command.name} --help)`);
  if (!spec.positionals.at(-1)?.variadic && counted.length > spec.positionals.length) {
    const extra = counted[spec.positionals.length];
    throw usageError(
      `unexpected argument ${extra} (${command.name} takes ${describePositionals(spec.positionals)})`,
    );
  }
  return [...flags, ...positionals, ...(rest === null ? [] : ["--", ...rest])];
}
