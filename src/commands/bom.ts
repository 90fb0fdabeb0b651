import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { resolveAssetContext } from "../bom/context.ts";
import { toCycloneDx } from "../bom/cyclonedx.ts";
import { buildFleetBom } from "../bom/fleet-pool.ts";
import { formatJson, readJsonFile } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import { isNatsUrl, parseNatsUrl } from "../export/nats-url.ts";
import { expandInputs, type InputFile } from "../io/input-files.ts";
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
        "runtime.jsonl files written by `carnot trace`, quoted patterns ('hosts/*/runtime*.jsonl'), " +
        "or nats://HOST:PORT/SUBJECT its --export published to",
      valueHint: "FILE|nats://…",
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
    const words = positionalWords(args, args.inputs);
    const streams = words.filter(isNatsUrl);
    const staging = streams.length === 0 ? null : mkdtempSync(join(tmpdir(), "carnot-bom-"));
    let bom: Awaited<ReturnType<typeof buildFleetBom>>;
    let files: InputFile[];
    try {
      // files and patterns first, then each stream as it is stored now (the NATS client is loaded only for one)
      files = expandInputs(words.filter((w) => !isNatsUrl(w)));
      if (staging !== null) {
        const { stageStream } = await import("../export/nats-read.ts");
        for (const [i, url] of streams.entries())
          files.push(await stageStream(parseNatsUrl(url, "input"), join(staging, `stream-${i}.jsonl`)));
      }
      bom = await buildFleetBom(files, {
        context,
        maxObservations,
        jobs,
        onPart: (p) => log.debug(`bom: ${p.file}: ${p.records} records, ${p.sealLines} seal line(s)`),
      });
    } finally {
      if (staging !== null) rmSync(staging, { recursive: true, force: true });
    }
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
