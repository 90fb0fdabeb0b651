import { defineCommand } from "citty";
import { type Action, ActionCollapser } from "../consumers/actions/collapse.ts";
import { actionToJsonLine, actionToTextLine } from "../consumers/actions/render.ts";
import { forEachEnrichedRecord } from "../consumers/enriched-reader.ts";
import { CarnotError } from "../errors.ts";
import { writeThrough } from "../io/output.ts";
import { commonArgs, enrichedIoArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "actions",
    description:
      "What each process did, in words: correlated calls collapsed into actions (text or JSON lines)",
  },
  args: {
    ...enrichedIoArgs,
    format: { type: "string", description: "text or json (one JSON object per line)", default: "text" },
    pid: { type: "string", description: "Only the actions of this process id" },
    ...commonArgs,
  },
  async run({ args }) {
    if (args.format !== "text" && args.format !== "json")
      throw new CarnotError(`--format must be text or json, not ${args.format}`, { exitCode: 2 });
    const onlyPid = args.pid === undefined ? null : Number(args.pid);
    if (onlyPid !== null && !Number.isInteger(onlyPid))
      throw new CarnotError(`--pid must be a process id, not ${args.pid}`, { exitCode: 2 });
    const render = args.format === "json" ? actionToJsonLine : actionToTextLine;
    await writeThrough(args.output, { followSymlinks: args["follow-symlinks"] }, async (out) => {
      const emit = (action: Action) => {
        if (onlyPid === null || action.pid === onlyPid) out.write(render(action));
      };
      const collapser = new ActionCollapser(emit);
      const records = await forEachEnrichedRecord(args.file, (record, line) => collapser.push(record, line));
      if (records === 0) throw new CarnotError(`${args.file}: no records`);
      collapser.finish();
    });
    return 0;
  },
});
