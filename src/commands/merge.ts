import { defineCommand } from "citty";
import { formatJson, readCryptoBom, writeOutput } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { log } from "../log.ts";
import { mergeBoms } from "../merge/merge.ts";
import { commonArgs, outputArg } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "merge",
    description: "Static, runtime and cloud CryptoBOMs → one BOM, with conflicts reported",
  },
  args: {
    ...commonArgs,
    inputs: {
      type: "positional",
      required: true,
      description: "CryptoBOM files, in priority order",
      valueHint: "FILE…",
    },
    ...outputArg,
  },
  async run({ args }) {
    const files = args._.length ? args._ : [args.inputs];
    if (files.length === 0) throw new CarnotError("merge needs at least one CryptoBOM file", { exitCode: 2 });
    // Read every input before writing anything: one bad file stops the merge, nothing is skipped.
    const inputs = [];
    for (const file of files) inputs.push({ file, bom: await readCryptoBom(file) });
    const merged = mergeBoms(inputs);
    await writeOutput(args.output, formatJson(merged));
    const m = merged.merge!;
    log.info(
      `merge: ${files.length} input(s), ${merged.summary.observations} observations, ${merged.assets?.length ?? 0} assets, ` +
        `${m.duplicates_removed} duplicate(s) removed, ${m.conflicts.length} conflict(s)`,
    );
    for (const c of m.conflicts) {
      log.warn(
        `conflict: ${c.kind} ${c.ref} ${c.field}: ${c.values.map((x) => `${x.file}=${JSON.stringify(x.value)}`).join(" vs ")}; ${c.resolution}`,
      );
    }
  },
});
