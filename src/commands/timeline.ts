import { defineCommand } from "citty";
import { forEachEnrichedRecord } from "../consumers/enriched-reader.ts";
import { TimelineBuilder } from "../consumers/timeline/build.ts";
import { renderTimelineHtml } from "../consumers/timeline/html.ts";
import { COLOUR_STYLE, PLAIN_STYLE, renderTimelineText, wantsColour } from "../consumers/timeline/text.ts";
import { TraceEventWriter } from "../consumers/timeline/trace-event.ts";
import { CarnotError } from "../errors.ts";
import { writeTextOutput, writeThrough } from "../io/output.ts";
import { commonArgs, enrichedIoArgs } from "./shared.ts";

const FORMATS = ["text", "html", "json", "trace-event"];

export default defineCommand({
  meta: {
    name: "timeline",
    description:
      "Per-process tree (fork/exec parentage) with times, actions and risk tags: text, one HTML page, or Trace Event JSON for Perfetto",
  },
  args: {
    ...enrichedIoArgs,
    format: {
      type: "string",
      description:
        "text, html (self-contained page), json, or trace-event (Chrome Trace Event JSON: Perfetto, DevTools)",
    },
    all: { type: "boolean", description: "Also show path lookups and runtime calls", default: false },
    ...commonArgs,
  },
  async run({ args }) {
    const format = args.format ?? (args.output?.endsWith(".html") ? "html" : "text");
    if (!FORMATS.includes(format))
      throw new CarnotError(`--format must be text, html, json or trace-event, not ${format}`, {
        exitCode: 2,
      });
    const source = args.file === "-" ? "stdin" : args.file;
    const outputOptions = { followSymlinks: args["follow-symlinks"] };
    if (format === "trace-event") {
      // streamed: events are written as the records come, nothing is built first
      await writeThrough(args.output, outputOptions, async (out) => {
        const writer = new TraceEventWriter((text) => out.write(text), { source, all: args.all });
        await forEachEnrichedRecord(args.file, (record, line) => writer.push(record, line));
        if (writer.finish().records === 0) throw new CarnotError(`${args.file}: no records`);
      });
      return 0;
    }
    const builder = new TimelineBuilder();
    await forEachEnrichedRecord(args.file, (record, line) => builder.push(record, line));
    const timeline = builder.finish();
    if (timeline.records === 0) throw new CarnotError(`${args.file}: no records`);
    let text: string;
    if (format === "html") text = renderTimelineHtml(timeline, { source, all: args.all });
    else if (format === "json") text = `${JSON.stringify(timeline)}\n`;
    else {
      const toTerminal =
        (!args.output || args.output === "-") && wantsColour(process.stdout.isTTY === true, process.env);
      text = `${renderTimelineText(timeline, { style: toTerminal ? COLOUR_STYLE : PLAIN_STYLE, all: args.all, source })}\n`;
    }
    writeTextOutput(args.output, text, outputOptions);
    return 0;
  },
});
