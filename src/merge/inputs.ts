/**
 * The BOM that `policy` and `attest` judge: one input as it is, or several (files and patterns) merged as
 * `carnot merge` would merge them, read one at a time.
 */
import { createHash } from "node:crypto";
import type { CryptoBom } from "../bom/cryptobom.ts";
import { forEachCryptoBom } from "../bom/read.ts";
import type { InputFile } from "../io/input-files.ts";
import { BomMerger } from "./merge.ts";

export interface BomInputs {
  bom: CryptoBom;
  /** what the inputs are called in reports: the one path, or the words given */
  label: string;
  /** each file read, with the sha256 of its bytes */
  files: { file: string; sha256: string }[];
  /** the one input's text; null for several (their merged document is in no file) */
  text: string | null;
}

/** `inputs` as expandInputs gave them for `words` (the words name several in reports). */
export function readBomInputs(
  inputs: readonly InputFile[],
  words: readonly string[],
  maxObservations: number,
): BomInputs {
  const files: BomInputs["files"] = [];
  const merger = new BomMerger({ maxObservations });
  let only: { bom: CryptoBom; text: string } | null = null;
  forEachCryptoBom(inputs, (bom, text, file) => {
    files.push({ file: file.path, sha256: createHash("sha256").update(text).digest("hex") });
    if (inputs.length === 1) only = { bom, text };
    else merger.add({ file: file.path, bom });
  });
  if (only !== null) {
    const { bom, text } = only;
    return { bom, label: inputs[0]!.path, files, text };
  }
  return { bom: merger.finish(), label: words.join(" "), files, text: null };
}

/** The inputs' `sha256sum` listing: its own sha256 names several inputs (`sha256sum A B … | sha256sum`). */
export const sha256sumListing = (files: BomInputs["files"]): string =>
  files.map((f) => `${f.sha256}  ${f.file}\n`).join("");
