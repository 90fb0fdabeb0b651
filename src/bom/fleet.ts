/**
 * Many runtime files → one CryptoBOM, streaming: each input is read line by line into its part (components
 * with counts, its observations while there are few), parts add up in input order. The document lists every
 * observation while there are at most `maxObservations`; past that it omits them and its components are the
 * unit, so memory follows the number of components, not of observations. Pure but for reading the inputs.
 */
import { createHash } from "node:crypto";
import type { InputFile } from "../io/input-files.ts";
import { type GroupIndex, indexGroups } from "./algorithms.ts";
import type { AssetContext } from "./context.ts";
import {
  assembleCryptoBom,
  ComponentTable,
  type CryptoBom,
  type CryptoBomComponent,
  type CryptoBomObservation,
  type FleetInfo,
  fleetCounts,
  observationRef,
  RefAllocator,
  runIdOf,
  toBomObservation,
} from "./cryptobom.ts";
import { forEachRuntimeRecord } from "./read.ts";

/** What one input gives: made in a worker thread or in line, then added to the others in input order. */
export interface InputPart {
  readonly file: string;
  readonly records: number;
  readonly sealLines: number;
  /** sha256 (hex) of the records' refs, one a line, in input order */
  readonly refDigest: string;
  readonly components: CryptoBomComponent[];
  /** null when the input has more observations than it was asked to list */
  readonly observations: CryptoBomObservation[] | null;
}

/** Reads one runtime file into its part; lists at most `listLimit` observations (else none). */
export function readRuntimePart(
  file: InputFile,
  context: AssetContext,
  listLimit: number,
  index: GroupIndex = indexGroups(),
): InputPart {
  const table = new ComponentTable();
  const digest = new Bun.CryptoHasher("sha256");
  // refs are hashed a batch at a time: one call per record cost a twentieth of the reading
  let refs: string[] = [];
  let hashed = false;
  const hashRefs = (): void => {
    if (refs.length === 0) return;
    digest.update(hashed ? `\n${refs.join("\n")}` : refs.join("\n"));
    hashed = true;
    refs = [];
  };
  let observations: CryptoBomObservation[] | null = listLimit > 0 ? [] : null;
  const { records, sealLines } = forEachRuntimeRecord(file, (record, line) => {
    const ref = observationRef(record);
    refs.push(ref);
    if (refs.length === 512) hashRefs();
    const observation = toBomObservation(record, context, ref, index);
    table.addObservation(observation, file.path, line);
    if (observations === null) return;
    if (observations.length < listLimit) observations.push(observation);
    else observations = null;
  });
  hashRefs();
  return {
    file: file.path,
    records,
    sealLines,
    refDigest: digest.digest("hex"),
    components: table.components(),
    observations,
  };
}

/** Adds parts in input order and assembles the document. */
export class FleetBomAssembler {
  private readonly table = new ComponentTable();
  private readonly parts: Omit<InputPart, "components" | "observations">[] = [];
  private listed: CryptoBomObservation[] | null = [];

  constructor(private readonly maxObservations: number) {}

  /** How many more observations the document may still list (0 once it omits them). */
  get listLimit(): number {
    if (this.listed === null) return 0;
    return Math.max(0, this.maxObservations - this.listed.length);
  }

  add(part: InputPart): void {
    const { components, observations, ...summary } = part;
    this.parts.push(summary);
    for (const c of components) this.table.addComponent(c);
    if (this.listed === null) return;
    if (observations === null || this.listed.length + observations.length > this.maxObservations) {
      this.listed = null;
      return;
    }
    for (const o of observations) this.listed.push(o);
  }

  finish(): CryptoBom {
    const digests = this.parts.map((p) => p.refDigest);
    const runId = runIdOf(
      digests.length === 1 ? digests[0]! : createHash("sha256").update(digests.join("\n")).digest("hex"),
    );
    const inputs = this.parts.map((p) => ({ file: p.file, records: p.records, seal_lines: p.sealLines }));
    if (this.listed !== null) {
      const refs = new RefAllocator();
      const observations = this.listed.map((o) => ({ ...o, bom_ref: refs.next(o.bom_ref) }));
      // one input listed whole is the document a single file always gave
      if (this.parts.length <= 1) return assembleCryptoBom(runId, observations);
      const bom = assembleCryptoBom(runId, observations);
      return { ...bom, fleet: this.fleetInfo(true, bom.metrics.components, inputs) };
    }
    const components = this.table.components();
    return assembleCryptoBom(runId, [], {
      components,
      fleet: this.fleetInfo(false, components, inputs),
    });
  }

  private fleetInfo(
    listed: boolean,
    components: CryptoBomComponent[],
    inputs: FleetInfo["inputs"],
  ): FleetInfo {
    const max = Number.isFinite(this.maxObservations) ? this.maxObservations : null;
    return { observations_listed: listed, max_observations: max, ...fleetCounts(components), inputs };
  }
}
