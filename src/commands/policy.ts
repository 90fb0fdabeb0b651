import { relative } from "node:path";
import { defineCommand } from "citty";
import { formatJson } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { writeTextOutput } from "../io/output.ts";
import { log } from "../log.ts";
import { expandInputs } from "../io/input-files.ts";
import { readBomInputs } from "../merge/inputs.ts";
import { evaluatePolicy } from "../policy/rules.ts";
import { formatPolicyText, toSarif } from "../policy/sarif.ts";
import {
  commonArgs,
  fileOutputArgs,
  maxObservationsArgs,
  maxObservationsOf,
  positionalWords,
} from "./shared.ts";

export default defineCommand({
  meta: {
    name: "policy",
    description: "Post-quantum policy gate over a CryptoBOM, or several merged (warns; --enforce fails)",
  },
  args: {
    ...commonArgs,
    input: {
      type: "positional",
      required: true,
      description: "CryptoBOM from bom or merge; several files or quoted patterns are merged first",
      valueHint: "FILE…",
    },
    format: { type: "string", description: "json (default), sarif or text", default: "json" },
    ...fileOutputArgs,
    enforce: { type: "boolean", description: "Exit 1 when any rule is violated", default: false },
    ...maxObservationsArgs,
  },
  async run({ args }) {
    const format = args.format;
    if (format !== "json" && format !== "sarif" && format !== "text") {
      throw new CarnotError(`--format must be json, sarif or text, not '${format}'`, { exitCode: 2 });
    }
    const words = positionalWords(args, args.input);
    const maxObservations = maxObservationsOf(args["max-observations"]);
    const files = expandInputs(words);
    // SARIF locations are lines of one file: a merged document is in none
    if (format === "sarif" && files.length > 1)
      throw new CarnotError(
        "--format sarif points at lines of one BOM file: merge the inputs first (carnot merge … -o fleet.json)",
        { exitCode: 2 },
      );
    const { bom, label, text: bomText } = readBomInputs(files, words, maxObservations);
    const result = evaluatePolicy(bom, { input: label, enforce: args.enforce });
    let text: string;
    if (format === "json") text = formatJson(result);
    else if (format === "text") text = formatPolicyText(result);
    else text = formatJson(toSarif(result, bomText ?? "", relative(process.cwd(), label)));
    writeTextOutput(args.output, text, { followSymlinks: args["follow-symlinks"] });
    const s = result.summary.by_severity;
    const verdict = `policy: ${result.summary.findings} finding(s) (critical ${s.critical}, high ${s.high}, medium ${s.medium}, low ${s.low})`;
    if (result.status === "pass") log.success(`${verdict}: pass`);
    // citty drops a subcommand's return value, so the enforced failure is raised as the one-line error.
    else if (args.enforce) throw new CarnotError(`${verdict}: enforced`, { exitCode: 1 });
    else log.warn(`${verdict}: warning only (use --enforce to fail)`);
  },
});
