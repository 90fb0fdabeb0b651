import { defineCommand } from "citty";
import { resolveAssetContext } from "../bom/context.ts";
import { buildCryptoBom } from "../bom/cryptobom.ts";
import { toCycloneDx } from "../bom/cyclonedx.ts";
import { formatJson, parseRuntimeJsonl, readJsonFile, readRuntimeJsonl } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { isNatsUrl, parseNatsUrl } from "../export/nats-url.ts";
import { writeTextOutput } from "../io/output.ts";
import { log } from "../log.ts";
import { assetContextArgs, commonArgs, fileOutputArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "bom",
    description: "Handshake observations (runtime.jsonl) → CryptoBOM v2.1 or CycloneDX 1.6 CBOM",
  },
  args: {
    ...commonArgs,
    input: {
      type: "positional",
      required: true,
      description:
        "runtime.jsonl written by `carnot trace`, or nats://HOST:PORT/SUBJECT its --export published to",
      valueHint: "FILE|nats://…",
    },
    ...fileOutputArgs,
    format: { type: "string", description: "cryptobom (default) or cyclonedx", default: "cryptobom" },
    ...assetContextArgs,
    context: {
      ...assetContextArgs.context,
      description: "JSON file with asset_id, owner, data_class, secrecy_lifetime_years, exposure",
    },
    "asset-id": { type: "string", description: "Asset id for every observation", valueHint: "ID" },
  },
  async run({ args }) {
    const format = args.format;
    if (format !== "cryptobom" && format !== "cyclonedx") {
      throw new CarnotError(`--format must be cryptobom or cyclonedx, not '${format}'`, { exitCode: 2 });
    }
    const fromFile = args.context ? await readJsonFile(args.context) : undefined;
    let context: ReturnType<typeof resolveAssetContext>;
    try {
      context = resolveAssetContext(fromFile, args);
    } catch (err) {
      const where = args.context ? `${args.context} (with flags)` : "asset context flags";
      throw new CarnotError(`${where}: ${(err as Error).message}`, { exitCode: 2 });
    }
    // a stream is read whole, then parsed as a file's text (the NATS client is loaded only for it)
    const { records, sealLines } = isNatsUrl(args.input)
      ? parseRuntimeJsonl(
          args.input,
          await (await import("../export/nats-read.ts")).readStreamText(parseNatsUrl(args.input, "input")),
        )
      : await readRuntimeJsonl(args.input);
    const bom = buildCryptoBom(records, context);
    log.debug(
      `bom: ${records.length} records, ${sealLines} seal line(s), ${bom.summary.components} components`,
    );
    if (records.length === 0) log.warn(`${args.input}: no handshake observations; the BOM is empty`);
    writeTextOutput(args.output, formatJson(format === "cyclonedx" ? toCycloneDx(bom) : bom), {
      followSymlinks: args["follow-symlinks"],
    });
    if (args.output) log.info(`bom: ${bom.summary.observations} observations → ${args.output}`);
  },
});
