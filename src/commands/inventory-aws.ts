import { defineCommand } from "citty";
import { type AssetContext, type AssetContextFlags, resolveAssetContext } from "../bom/context.ts";
import type { InventoryError } from "../bom/cryptobom.ts";
import { formatJson, readJsonFile } from "../bom/read.ts";
import { CarnotError } from "../errors.ts";
import type { RetryMode } from "../inventory/aws/collect.ts";
import { writeTextOutput } from "../io/output.ts";
import { log } from "../log.ts";
import { entryModule } from "../self.ts";
import { assetContextArgs, commonArgs, fileOutputArgs, repeatedOption } from "./shared.ts";

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const DEFAULT_MAX_ATTEMPTS = 8;

const usage = (message: string) => new CarnotError(message, { exitCode: 2 });

function parseRegions(rawArgs: readonly string[]): string[] {
  const regions = [...new Set(repeatedOption(rawArgs, "region"))];
  for (const r of regions) if (!REGION.test(r)) throw usage(`--region: '${r}' is not an AWS region name`);
  return regions;
}

function parseEndpoint(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usage(`--endpoint-url: '${raw}' is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw usage(`--endpoint-url: '${raw}' must be an http:// or https:// URL`);
  return raw;
}

function parseMaxAttempts(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 1 || n > 20)
    throw usage(`--max-attempts must be a whole number from 1 to 20, not '${raw}'`);
  return n;
}

function parseRetryMode(raw: string): RetryMode {
  if (raw !== "standard" && raw !== "adaptive")
    throw usage(`--retry-mode must be standard or adaptive, not '${raw}'`);
  return raw;
}

async function defaultsFrom(args: AssetContextFlags & { context?: string }): Promise<AssetContext> {
  const file = args.context;
  const fromFile = file ? await readJsonFile(file) : undefined;
  let context: AssetContext;
  try {
    context = resolveAssetContext(fromFile, args);
  } catch (err) {
    throw usage(`${file ? `${file} (with flags)` : "asset context flags"}: ${(err as Error).message}`);
  }
  if (context.asset_id !== undefined)
    throw usage(`${file}: asset_id cannot be a default: every key and certificate is its own asset`);
  return context;
}

/**
 * The AWS SDK's half of the command, loaded by path: a literal import() would bundle the SDK into the module
 * every command parses at start-up (+70 ms to `carnot --version`).
 */
async function loadAwsInventory(): Promise<typeof import("../inventory/aws/run.ts")> {
  const path = entryModule("inventory/aws/run");
  if (path === null) throw new CarnotError("inventory aws: this build of carnot has no AWS inventory module");
  return import(path);
}

const describe = (e: InventoryError) =>
  `${e.region} ${e.service} ${e.operation}${e.resource ? ` ${e.resource}` : ""}: ${e.error}: ${e.message}`;

export default defineCommand({
  meta: {
    name: "aws",
    description:
      "AWS KMS keys and ACM certificates (AWS SDK v3) → a CryptoBOM of cloud assets for merge/policy",
  },
  args: {
    ...commonArgs,
    ...fileOutputArgs,
    region: {
      type: "string",
      description:
        "Region to read; repeat or separate with commas (default: the SDK's, AWS_REGION or the profile's)",
      valueHint: "REGION…",
    },
    profile: {
      type: "string",
      description: "Profile of the shared AWS config/credentials files",
      valueHint: "NAME",
    },
    "endpoint-url": {
      type: "string",
      description: "Send every request to this URL instead of AWS's endpoints",
      valueHint: "URL",
    },
    "max-attempts": {
      type: "string",
      description: `Attempts per request, throttled ones retried with backoff and jitter (default ${DEFAULT_MAX_ATTEMPTS})`,
      default: String(DEFAULT_MAX_ATTEMPTS),
      valueHint: "N",
    },
    "retry-mode": {
      type: "string",
      description:
        "The SDK's retry strategy: adaptive (default: also slows down after throttling) or standard",
      default: "adaptive",
      valueHint: "MODE",
    },
    strict: {
      type: "boolean",
      description: "Fail (and write nothing) when any region or service could not be read",
      default: false,
    },
    ...assetContextArgs,
  },
  async run({ args, rawArgs }) {
    let regions = parseRegions(rawArgs);
    const client = {
      profile: args.profile,
      endpoint: parseEndpoint(args["endpoint-url"]),
      maxAttempts: parseMaxAttempts(args["max-attempts"]),
      retryMode: parseRetryMode(args["retry-mode"]),
    };
    const defaults = await defaultsFrom(args);
    const { defaultRegion, inventoryAws } = await loadAwsInventory();
    if (regions.length === 0) {
      const region = await defaultRegion(client);
      if (!region) throw usage("no region: give --region, or set AWS_REGION or a region in the AWS profile");
      regions = [region];
    }
    const bom = await inventoryAws({
      regions,
      client,
      defaults,
      progress: (region, keys, certs, errors) =>
        log.debug(
          `inventory aws: ${region}: ${keys} key(s), ${certs} certificate(s), ${errors.length} error(s)`,
        ),
    });
    const info = bom.inventory!;
    const failedListings = info.errors.filter((e) => e.resource === null);
    if (failedListings.length === regions.length * info.services.length)
      throw new CarnotError(`inventory aws: nothing could be read: ${describe(failedListings[0]!)}`);
    if (args.strict && info.errors.length)
      throw new CarnotError(
        `inventory aws: ${info.errors.length} error(s) with --strict, nothing written; first: ${describe(info.errors[0]!)}`,
      );
    writeTextOutput(args.output, formatJson(bom), { followSymlinks: args["follow-symlinks"] });
    for (const e of info.errors) log.warn(`not read: ${describe(e)}`);
    log.info(
      `inventory aws: ${info.keys} key(s), ${info.certificates} certificate(s) in ${regions.join(", ")}` +
        `${info.errors.length ? `; ${info.errors.length} error(s), listed in the output` : ""}`,
    );
  },
});
