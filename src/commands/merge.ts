import { defineCommand } from "citty";
import { forEachCryptoBom, formatJson } from "../bom/read.ts";
import { expandInputs } from "../io/input-files.ts";
import { writeTextOutput } from "../io/output.ts";
import { log } from "../log.ts";
import { BomMerger } from "../merge/merge.ts";
import {
  commonArgs,
  fileOutputArgs,
  maxObservationsArgs,
  maxObservationsOf,
  positionalWords,
} from "./shared.ts";

export default defineCommand({
  meta: {
    name: "merge",
    description:
      "Static, runtime and cloud CryptoBOMs (or many hosts' BOMs) → one BOM, with conflicts reported",
  },
  args: {
    ...commonArgs,
    inputs: {
      type: "positional",
      required: true,
      description: "CryptoBOM files or quoted patterns, in priority order",
      valueHint: "FILE…",
    },
    ...fileOutputArgs,
    ...maxObservationsArgs,
  },
  async run({ args }) {
    const merger = new BomMerger({ maxObservations: maxObservationsOf(args["max-observations"]) });
    const files = expandInputs(positionalWords(args, args.inputs));
    // Read every input before writing anything: one bad file stops the merge, nothing is skipped.
    forEachCryptoBom(files, (bom, _text, file) => merger.add({ file: file.path, bom }));
    const merged = merger.finish();
    writeTextOutput(args.output, formatJson(merged), { followSymlinks: args["follow-symlinks"] });
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
