import { relative } from "node:path";
import { defineCommand } from "citty";
import { formatJson, readCryptoBom, writeOutput } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { log } from "../log.ts";
import { evaluatePolicy } from "../policy/rules.ts";
import { formatPolicyText, toSarif } from "../policy/sarif.ts";
import { commonArgs, outputArg } from "./shared.ts";

export default defineCommand({
  meta: { name: "policy", description: "Post-quantum policy gate over a CryptoBOM (warns; --enforce fails)" },
  args: {
    ...commonArgs,
    input: {
      type: "positional",
      required: true,
      description: "CryptoBOM from bom or merge",
      valueHint: "FILE",
    },
    format: { type: "string", description: "json (default), sarif or text", default: "json" },
    ...outputArg,
    enforce: { type: "boolean", description: "Exit 1 when any rule is violated", default: false },
  },
  async run({ args }) {
    const format = args.format;
    if (format !== "json" && format !== "sarif" && format !== "text") {
      throw new CarnotError(`--format must be json, sarif or text, not '${format}'`, { exitCode: 2 });
    }
    const bom = await readCryptoBom(args.input);
    const result = evaluatePolicy(bom, { input: args.input, enforce: args.enforce });
    let text: string;
    if (format === "json") text = formatJson(result);
    else if (format === "text") text = formatPolicyText(result);
    else
      text = formatJson(
        toSarif(result, await Bun.file(args.input).text(), relative(process.cwd(), args.input)),
      );
    await writeOutput(args.output, text);
    const s = result.summary.by_severity;
    const verdict = `policy: ${result.summary.findings} finding(s) (critical ${s.critical}, high ${s.high}, medium ${s.medium}, low ${s.low})`;
    if (result.status === "pass") log.success(`${verdict}: pass`);
    // citty drops a subcommand's return value, so the enforced failure is raised as the one-line error.
    else if (args.enforce) throw new CarnotError(`${verdict}: enforced`, { exitCode: 1 });
    else log.warn(`${verdict}: warning only (use --enforce to fail)`);
  },
});
