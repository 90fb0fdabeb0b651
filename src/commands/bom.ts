import { defineCommand } from "citty";
import { resolveAssetContext } from "../bom/context.ts";
import { toCycloneDx } from "../bom/cyclonedx.ts";
import { buildFleetBom } from "../bom/fleet-pool.ts";
import { formatJson, readJsonFile } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { expandInputs } from "../io/input-files.ts";
import { writeTextOutput } from "../io/output.ts";
import { log } from "../log.ts";
import {
  assetContextArgs,
  commonArgs,
  fileOutputArgs,
  maxObservationsArgs,
  maxObservationsOf,
  parseCount,
  positionalWords,
} from "./shared.ts";

export default defineCommand({
  meta: {
    name: "bom",
    description: "Handshake observations (runtime.jsonl, one or many) → CryptoBOM v2.1 or CycloneDX 1.6 CBOM",
  },
  args: {
    ...commonArgs,
    inputs: {
      type: "positional",
      required: true,
      description:
        "runtime.jsonl files written by `carnot trace`, or quoted patterns ('hosts/*/runtime*.jsonl')",
      valueHint: "FILE…",
    },
    ...fileOutputArgs,
    format: { type: "string", description: "cryptobom (default) or cyclonedx", default: "cryptobom" },
    ...maxObservationsArgs,
    jobs: {
      type: "string",
      description: "Files read at once, one per thread (default: one per core)",
      valueHint: "N",
    },
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
    const maxObservations = maxObservationsOf(args["max-observations"]);
    const jobs = args.jobs === undefined ? undefined : parseCount(args.jobs, "--jobs", 1);
    const fromFile = args.context ? await readJsonFile(args.context) : undefined;
    let context: ReturnType<typeof resolveAssetContext>;
    try {
      context = resolveAssetContext(fromFile, args);
    } catch (err) {
      const where = args.context ? `${args.context} (with flags)` : "asset context flags";
      throw new CarnotError(`${where}: ${(err as Error).message}`, { exitCode: 2 });
    }
    const files = expandInputs(positionalWords(args, args.inputs));
    const bom = await buildFleetBom(files, {
      context,
      maxObservations,
      jobs,
      onPart: (p) => log.debug(`bom: ${p.file}: ${p.records} records, ${p.sealLines} seal line(s)`),
    });
    const n = bom.summary.observations;
    if (n === 0)
      log.warn(
        `${files.length === 1 ? files[0]!.path : "the inputs"}: no handshake observations; the BOM is empty`,
      );
    if (bom.fleet && !bom.fleet.observations_listed)
      log.info(
        `bom: ${n} observations in ${files.length} file(s), more than --max-observations ${maxObservations}: ` +
          `${bom.summary.components} components with counts, observations omitted`,
      );
    writeTextOutput(args.output, formatJson(format === "cyclonedx" ? toCycloneDx(bom) : bom), {
      followSymlinks: args["follow-symlinks"],
    });
    const from = files.length === 1 ? "" : ` from ${files.length} files`;
    if (args.output) log.info(`bom: ${n} observations${from} → ${args.output}`);
  },
});
