/** The input edge of the BOM stages: reading inputs with errors that name the file (outputs: src/io/output.ts). */
import * as v from "valibot";
import { CarnotError, describeError, systemReason } from "../errors.ts";
import { CRYPTOBOM_SCHEMA, type CryptoBom, CryptoBomSchema, listsObservations } from "./cryptobom.ts";
import { cycloneDxToCryptoBom } from "./from-cyclonedx.ts";
import { forEachJsonLine, type InputFile, readInputText } from "../io/input-files.ts";
import {
  describeIssues,
  type HandshakeObservation,
  HandshakeObservationSchema,
  isCompleteObservation,
} from "./observation.ts";

async function readText(path: string): Promise<string> {
  const file = Bun.file(path);
  try {
    return await file.text();
  } catch (err) {
    throw new CarnotError(`${path}: cannot read: ${systemReason(err)}`);
  }
}

/** A line that closes a chained file rather than describing a handshake (written by the chained writer). */
function isSealLine(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  const o = value as Record<string, unknown>;
  return "seal" in o || o.type === "seal" || o.kind === "seal" || o.record === "seal";
}

export interface RuntimeInput {
  readonly records: HandshakeObservation[];
  readonly sealLines: number;
}

/** A runtime.jsonl line's value: a record, SEAL for the chained writer's closing line. */
export function runtimeRecordOf(
  path: string,
  value: unknown,
  line: number,
): HandshakeObservation | typeof SEAL {
  if (isCompleteObservation(value)) return value;
  if (isSealLine(value)) return SEAL;
  const parsed = v.safeParse(HandshakeObservationSchema, value);
  if (!parsed.success) {
    throw new CarnotError(`${path}:${line}: not a handshake observation: ${describeIssues(parsed.issues)}`);
  }
  return parsed.output;
}

const notRuntimeJson = (path: string, line: number): CarnotError =>
  new CarnotError(`${path}:${line}: not JSON (a runtime.jsonl line is one JSON object)`);

/** One line of runtime.jsonl: a record, SEAL for the chained writer's closing line, null for a blank line. */
export function parseRuntimeLine(
  path: string,
  text: string,
  line: number,
): HandshakeObservation | typeof SEAL | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    throw notRuntimeJson(path, line);
  }
  return runtimeRecordOf(path, value, line);
}

export const SEAL = Symbol("seal");

/** runtime.jsonl → validated records. Every non-empty line is a record or the seal; anything else fails. */
export function parseRuntimeJsonl(path: string, text: string): RuntimeInput {
  const records: HandshakeObservation[] = [];
  let sealLines = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const parsed = parseRuntimeLine(path, lines[i]!, i + 1);
    if (parsed === SEAL) sealLines++;
    else if (parsed !== null) records.push(parsed);
  }
  return { records, sealLines };
}

/** Streams an input's records to `onRecord` with their line numbers; memory stays flat. */
export function forEachRuntimeRecord(
  file: InputFile,
  onRecord: (record: HandshakeObservation, line: number) => void,
): { records: number; sealLines: number } {
  let records = 0;
  let sealLines = 0;
  forEachJsonLine(
    file,
    (value, line) => {
      const record = runtimeRecordOf(file.path, value, line);
      if (record === SEAL) sealLines++;
      else {
        records++;
        onRecord(record, line);
      }
    },
    (line) => notRuntimeJson(file.path, line),
  );
  return { records, sealLines };
}

export async function readRuntimeJsonl(path: string): Promise<RuntimeInput> {
  return parseRuntimeJsonl(path, await readText(path));
}

/** A JSON document, or a one-line error naming the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = await readText(path);
  if (text.trim() === "") throw new CarnotError(`${path}: empty file, expected a JSON document`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CarnotError(`${path}: not valid JSON: ${describeError(err)}`);
  }
}

/** A JSON document checked against a schema; `what` names the expected kind in the error. */
export async function readJsonDocument<S extends v.GenericSchema>(
  path: string,
  schema: S,
  what: string,
): Promise<v.InferOutput<S>> {
  const value = await readJsonFile(path);
  const parsed = v.safeParse(schema, value);
  if (!parsed.success)
    throw new CarnotError(`${path}: not a valid ${what}: ${describeIssues(parsed.issues)}`);
  return parsed.output;
}

/** Stable, diff-friendly JSON text. */
export const formatJson = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** A CryptoBOM v2.1 document (from `bom`, `merge`, or a static/cloud exporter), or a one-line error. */
export async function readCryptoBom(path: string): Promise<CryptoBom> {
  return parseCryptoBom(path, await readText(path));
}

/** The JSON value of a BOM's text; `label` (a path, or what a request is called) starts every error. */
function parseBomJson(label: string, text: string): unknown {
  if (text.trim() === "") throw new CarnotError(`${label}: empty file, expected a CryptoBOM document`);
  try {
    return JSON.parse(text);
  } catch (err) {
    const firstLine = text.slice(0, text.indexOf("\n") >>> 0);
    const looksJsonl = (() => {
      try {
        return (JSON.parse(firstLine) as { source?: unknown }).source !== undefined;
      } catch {
        return false;
      }
    })();
    if (looksJsonl)
      throw new CarnotError(`${label}: is handshake JSONL, not a BOM: run 'carnot bom ${label}' first`);
    throw new CarnotError(`${label}: not valid JSON: ${describeError(err)}`);
  }
}

const isCycloneDx = (value: unknown): boolean =>
  value !== null && typeof value === "object" && (value as Record<string, unknown>).bomFormat === "CycloneDX";

/** A CryptoBOM v2.1 document's text, checked; `label` names it in errors. */
export function parseCryptoBom(label: string, text: string): CryptoBom {
  const value = parseBomJson(label, text);
  if (isCycloneDx(value)) {
    throw new CarnotError(
      `${label}: is a CycloneDX document; this stage reads CryptoBOM v2.1 (bom --format cryptobom)`,
    );
  }
  return checkCryptoBom(label, value);
}

/** A CryptoBOM v2.1, or a CycloneDX 1.6 CBOM read as its keys and certificates (src/bom/from-cyclonedx.ts). */
export function parseAnyBom(label: string, text: string): CryptoBom {
  const value = parseBomJson(label, text);
  return isCycloneDx(value) ? cycloneDxToCryptoBom(label, value) : checkCryptoBom(label, value);
}

function checkCryptoBom(label: string, value: unknown): CryptoBom {
  const o = value as Record<string, unknown> | null;
  if (!o || typeof o !== "object" || o.schema !== CRYPTOBOM_SCHEMA) {
    const found = o && typeof o === "object" && typeof o.schema === "string" ? `'${o.schema}'` : "none";
    throw new CarnotError(`${label}: not a CryptoBOM: schema is ${found}, expected '${CRYPTOBOM_SCHEMA}'`);
  }
  const parsed = v.safeParse(CryptoBomSchema, value);
  if (!parsed.success) throw new CarnotError(`${label}: invalid CryptoBOM: ${describeIssues(parsed.issues)}`);
  const refs = new Set<string>();
  for (const obs of parsed.output.observations) {
    if (refs.has(obs.bom_ref))
      throw new CarnotError(`${label}: invalid CryptoBOM: bom_ref ${obs.bom_ref} is not unique`);
    refs.add(obs.bom_ref);
  }
  if (!listsObservations(parsed.output)) {
    // its components stand for the observations: each must say everything a later stage reads
    const at = parsed.output.metrics.components.findIndex((c) =>
      COUNTED_FIELDS.some((f) => c[f] === undefined),
    );
    if (at !== -1) {
      const c = parsed.output.metrics.components[at]!;
      const missing = COUNTED_FIELDS.find((f) => c[f] === undefined);
      throw new CarnotError(
        `${label}: invalid CryptoBOM: it lists no observations, and component ${at} (${c.bom_ref}) has no '${missing}'`,
      );
    }
  }
  return parsed.output;
}

/** What a component of a document without observations must carry (src/bom/cryptobom.ts ComponentTable). */
const COUNTED_FIELDS = [
  "failed_count",
  "groups_offered",
  "asset_id",
  "owner",
  "data_class",
  "secrecy_lifetime_years",
  "exposure",
] as const;

/** Each input read whole and checked as a CryptoBOM, one at a time (one text held at once), in order. */
export function forEachCryptoBom(
  files: readonly InputFile[],
  each: (bom: CryptoBom, text: string, file: InputFile) => void,
): void {
  for (const file of files) {
    const text = readInputText(file);
    each(parseCryptoBom(file.path, text), text, file);
  }
}
