/** The asset context a BOM's observations are tagged with: from a small JSON file and/or flags. */
import * as v from "valibot";

export const EXPOSURES = ["PUBLIC_INTERNET", "EXTERNAL_B2B", "INTERNAL"] as const;
export type Exposure = (typeof EXPOSURES)[number];

const label = v.pipe(v.string(), v.trim(), v.minLength(1, "must not be empty"), v.maxLength(200));

export const AssetContextSchema = v.strictObject({
  asset_id: v.optional(label),
  owner: v.optional(label),
  data_class: v.optional(label),
  secrecy_lifetime_years: v.optional(
    v.pipe(
      v.number("must be a number of years"),
      v.minValue(0, "must be ≥ 0"),
      v.maxValue(1000, "must be ≤ 1000"),
    ),
  ),
  exposure: v.optional(v.picklist(EXPOSURES, `must be one of ${EXPOSURES.join(", ")}`)),
});

export type AssetContext = v.InferOutput<typeof AssetContextSchema>;

/** Flags as citty hands them over (strings); numbers are converted here so the schema sees real types. */
export interface AssetContextFlags {
  "asset-id"?: string;
  owner?: string;
  "data-class"?: string;
  "secrecy-years"?: string;
  exposure?: string;
}

/** Merges file and flags (flags win) and validates the result; throws Error naming the bad field. */
export function resolveAssetContext(fromFile: unknown, flags: AssetContextFlags): AssetContext {
  const base = fromFile ?? {};
  if (typeof base !== "object" || Array.isArray(base)) throw new Error("context must be a JSON object");
  const years = flags["secrecy-years"];
  const merged: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  if (flags["asset-id"] !== undefined) merged.asset_id = flags["asset-id"];
  if (flags.owner !== undefined) merged.owner = flags.owner;
  if (flags["data-class"] !== undefined) merged.data_class = flags["data-class"];
  if (years !== undefined) merged.secrecy_lifetime_years = years.trim() === "" ? Number.NaN : Number(years);
  if (flags.exposure !== undefined) merged.exposure = flags.exposure.toUpperCase().replaceAll("-", "_");
  const parsed = v.safeParse(AssetContextSchema, merged);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const path = issue ? v.getDotPath(issue) : null;
    throw new Error(path ? `${path} ${issue?.message}` : (issue?.message ?? "invalid context"));
  }
  return parsed.output;
}
