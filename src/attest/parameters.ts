/** The HNDL parameters of an attestation from text (command-line flags, query parameters), checked. */
import type { CryptoBom } from "../bom/cryptobom.ts";
import { CarnotError } from "../errors.ts";
import { defaultAsOfYear } from "./attestation.ts";
import {
  DEFAULT_CRQC_SOURCE,
  DEFAULT_CRQC_YEAR,
  DEFAULT_MIGRATION_YEARS,
  type HndlParameters,
} from "./hndl.ts";

export interface RawHndlParameters {
  crqcYear?: string;
  crqcSource?: string;
  migrationYears?: string;
  asOf?: string;
}

/** How each parameter is called where it came from: `--crqc-year` on the command line, `crqc_year` in a URL. */
export type ParameterNames = Record<keyof RawHndlParameters, string>;

function wholeNumber(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new CarnotError(`${name} must be a whole number from ${min} to ${max}, not '${raw}'`, {
      exitCode: 2,
    });
  }
  return n;
}

export function hndlParameters(
  raw: RawHndlParameters,
  names: ParameterNames,
  bom: CryptoBom,
  nowYear: number,
): HndlParameters {
  const crqcYear = wholeNumber(names.crqcYear, raw.crqcYear, DEFAULT_CRQC_YEAR, 2000, 2200);
  const migrationYears = wholeNumber(
    names.migrationYears,
    raw.migrationYears,
    DEFAULT_MIGRATION_YEARS,
    0,
    100,
  );
  const crqcSource =
    raw.crqcSource ?? (raw.crqcYear === undefined ? DEFAULT_CRQC_SOURCE : `set with ${names.crqcYear}`);
  const asOfYear = wholeNumber(names.asOf, raw.asOf, defaultAsOfYear(bom, nowYear), 2000, 2200);
  return { crqcYear, crqcSource, migrationYears, asOfYear };
}
