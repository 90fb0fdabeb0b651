/**
 * Reads many runtime files on every core: one worker thread per core takes the next file, parts come back
 * and are added in input order (so the document does not depend on which thread finished first). One file,
 * one core, or a build without the worker module: read in line.
 */
import { availableParallelism } from "node:os";
import { CarnotError } from "../errors.ts";
import type { InputFile } from "../io/input-files.ts";
import { log } from "../log.ts";
import { entryModule } from "../self.ts";
import type { AssetContext } from "./context.ts";
import type { CryptoBom } from "./cryptobom.ts";
import { FleetBomAssembler, type InputPart, readRuntimePart } from "./fleet.ts";

export interface PartJob {
  file: InputFile;
  context: AssetContext;
  listLimit: number;
}

export type PartResult = { ok: true; part: InputPart } | { ok: false; message: string };

export interface FleetBomOptions {
  context: AssetContext;
  /** list observations while there are at most this many (Infinity: always) */
  maxObservations: number;
  /** worker threads (default: one per core) */
  jobs?: number;
  /** called with each part as it is added, in input order */
  onPart?: (part: InputPart) => void;
}

export async function buildFleetBom(
  files: readonly InputFile[],
  options: FleetBomOptions,
): Promise<CryptoBom> {
  const assembler = new FleetBomAssembler(options.maxObservations);
  const jobs = Math.min(options.jobs ?? availableParallelism(), files.length);
  const workerPath = jobs > 1 ? entryModule("bom/fleet-worker") : null;
  if (workerPath === null) {
    for (const file of files) {
      const part = readRuntimePart(file, options.context, assembler.listLimit);
      options.onPart?.(part);
      assembler.add(part);
    }
    return assembler.finish();
  }
  log.debug(`bom: ${files.length} inputs read by ${jobs} worker threads`);
  await readInWorkers(workerPath, jobs, files, options, assembler);
  return assembler.finish();
}

/** Parts done out of order wait here until every earlier one is added; the first failure in input order wins. */
async function readInWorkers(
  workerPath: string,
  jobs: number,
  files: readonly InputFile[],
  options: FleetBomOptions,
  assembler: FleetBomAssembler,
): Promise<void> {
  const done: (PartResult | undefined)[] = [];
  let nextToRead = 0;
  let nextToAdd = 0;
  let firstFailure = files.length;
  const workers = Array.from({ length: jobs }, () => new Worker(workerPath));
  try {
    await new Promise<void>((resolve, reject) => {
      let busy = 0;
      const settle = (): void => {
        while (nextToAdd < files.length && done[nextToAdd]?.ok) {
          const result = done[nextToAdd] as { ok: true; part: InputPart };
          done[nextToAdd] = undefined;
          options.onPart?.(result.part);
          assembler.add(result.part);
          nextToAdd++;
        }
        const failed = done[nextToAdd];
        if (failed && !failed.ok) reject(new CarnotError(failed.message));
        else if (busy === 0 && nextToRead >= Math.min(files.length, firstFailure)) resolve();
      };
      const dispatch = (worker: Worker): void => {
        if (nextToRead >= Math.min(files.length, firstFailure)) return;
        const at = nextToRead++;
        busy++;
        worker.onmessage = (e: MessageEvent<PartResult>) => {
          busy--;
          done[at] = e.data;
          if (!e.data.ok) firstFailure = Math.min(firstFailure, at);
          dispatch(worker);
          settle();
        };
        worker.onerror = (e) => {
          busy--;
          done[at] = { ok: false, message: `${files[at]!.path}: worker failed: ${e.message}` };
          firstFailure = Math.min(firstFailure, at);
          settle();
        };
        const job: PartJob = { file: files[at]!, context: options.context, listLimit: assembler.listLimit };
        worker.postMessage(job);
      };
      for (const w of workers) dispatch(w);
    });
  } finally {
    for (const w of workers) w.terminate();
  }
}
