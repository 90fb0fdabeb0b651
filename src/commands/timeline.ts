import { defineCommand } from "citty";
import { forEachEnrichedRecord } from "../consumers/enriched-reader.ts";
import { TimelineBuilder } from "../consumers/timeline/build.ts";
import { renderTimelineHtml } from "../consumers/timeline/html.ts";
import { COLOUR_STYLE, PLAIN_STYLE, renderTimelineText, wantsColour } from "../consumers/timeline/text.ts";
import { CarnotError } from "../errors.ts";
import { writeTextOutput } from "../io/output.ts";
import { commonArgs, enrichedIoArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "timeline",
    description:
      "Per-process tree (fork/exec parentage) with times, actions and risk tags: text or one HTML page",
  },
  args: {
    ...enrichedIoArgs,
    format: { type: "string", description: "text, html (self-contained page) or json" },
    all: { type: "boolean", description: "Also show path lookups and runtime calls", default: false },
    ...commonArgs,
  },
  async run({ args }) {
    const format = args.format ?? (args.output?.endsWith(".html") ? "html" : "text");
    if (format !== "text" && format !== "html" && format !== "json")
      throw new CarnotError(`--format must be text, html or json, not ${format}`, { exitCode: 2 });
    const builder = new TimelineBuilder();
    await forEachEnrichedRecord(args.file, (record, line) => builder.push(record, line));
    const timeline = builder.finish();
    if (timeline.records === 0) throw new CarnotError(`${args.file}: no records`);
    const source = args.file === "-" ? "stdin" : args.file;
    let text: string;
    if (format === "html") text = renderTimelineHtml(timeline, { source, all: args.all });
    else if (format === "json") text = `${JSON.stringify(timeline)}\n`;
    else {
      const toTerminal =
        (!args.output || args.output === "-") && wantsColour(process.stdout.isTTY === true, process.env);
      text = `${renderTimelineText(timeline, { style: toTerminal ? COLOUR_STYLE : PLAIN_STYLE, all: args.all, source })}\n`;
    }
    writeTextOutput(args.output, text, { followSymlinks: args["follow-symlinks"] });
    return 0;
  },
});
