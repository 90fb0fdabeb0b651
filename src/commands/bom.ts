import { defineCommand } from "citty";
import { resolveAssetContext } from "../bom/context.ts";
import { buildCryptoBom } from "../bom/cryptobom.ts";
import { toCycloneDx } from "../bom/cyclonedx.ts";
import { formatJson, readJsonFile, readRuntimeJsonl, writeOutput } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { log } from "../log.ts";
import { commonArgs, outputArg } from "./shared.ts";

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
      description: "runtime.jsonl written by `carnot trace`",
      valueHint: "FILE",
    },
    ...outputArg,
    format: { type: "string", description: "cryptobom (default) or cyclonedx", default: "cryptobom" },
    context: {
      type: "string",
      description: "JSON file with asset_id, owner, data_class, secrecy_lifetime_years, exposure",
      valueHint: "FILE",
    },
    "asset-id": { type: "string", description: "Asset id for every observation", valueHint: "ID" },
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
    const { records, sealLines } = await readRuntimeJsonl(args.input);
    const bom = buildCryptoBom(records, context);
    log.debug(
      `bom: ${records.length} records, ${sealLines} seal line(s), ${bom.summary.components} components`,
    );
    if (records.length === 0) log.warn(`${args.input}: no handshake observations; the BOM is empty`);
    await writeOutput(args.output, formatJson(format === "cyclonedx" ? toCycloneDx(bom) : bom));
    if (args.output) log.info(`bom: ${bom.summary.observations} observations → ${args.output}`);
  },
});
