/**
 * `carnot inventory aws`: every region read, then one CryptoBOM of cloud assets (keys, certificates).
 * An entry point of its own in the compiled binary: the AWS SDK it pulls in is parsed only by this command.
 */
import { createHash } from "node:crypto";
import type { AssetContext } from "../../bom/context.ts";
import {
  type Asset,
  assembleCryptoBom,
  type CryptoBom,
  canonicalJson,
  type InventoryError,
} from "../../bom/cryptobom.ts";
import { acmCertificateAsset, kmsKeyAsset } from "./assets.ts";
import { type AwsClientOptions, inventoryRegion } from "./collect.ts";

export { defaultRegion } from "./collect.ts";

export const AWS_SERVICES = ["acm", "kms"];

export interface AwsInventoryOptions {
  regions: readonly string[];
  client: AwsClientOptions;
  /** context for resources without the tags that give it */
  defaults: AssetContext;
  /** called once per region as it is done */
  progress?: (region: string, keys: number, certificates: number, errors: InventoryError[]) => void;
}

const byAssetId = (a: Asset, b: Asset) => (a.asset_id < b.asset_id ? -1 : a.asset_id > b.asset_id ? 1 : 0);

/** Reads every region (one after the other: a gentle caller) and assembles the inventory document. */
export async function inventoryAws(opts: AwsInventoryOptions): Promise<CryptoBom> {
  const assets: Asset[] = [];
  const errors: InventoryError[] = [];
  let keys = 0;
  let certificates = 0;
  for (const region of opts.regions) {
    const r = await inventoryRegion(region, opts.client);
    for (const k of r.keys) assets.push(kmsKeyAsset(k, opts.defaults));
    for (const c of r.certificates) assets.push(acmCertificateAsset(c, opts.defaults));
    keys += r.keys.length;
    certificates += r.certificates.length;
    errors.push(...r.errors);
    opts.progress?.(region, r.keys.length, r.certificates.length, r.errors);
  }
  assets.sort(byAssetId);
  // the same resources give the same run id, whenever they are read
  const digest = createHash("sha256").update(canonicalJson(assets)).digest("hex").slice(0, 16);
  const defaults = Object.fromEntries(
    Object.entries(opts.defaults).filter((e): e is [string, string | number] => e[1] !== undefined),
  );
  return assembleCryptoBom(`inventory-aws-${digest}`, [], {
    assets,
    inventory: {
      provider: "aws",
      regions: [...opts.regions],
      services: AWS_SERVICES,
      defaults,
      keys,
      certificates,
      errors,
    },
  });
}
