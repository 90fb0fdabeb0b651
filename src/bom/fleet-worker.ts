/** A worker thread of `carnot bom`: reads one runtime file into its part at a time (src/bom/fleet-pool.ts). */
import { describeError } from "../errors.ts";
import { indexGroups } from "./algorithms.ts";
import { readRuntimePart } from "./fleet.ts";
import type { PartJob, PartResult } from "./fleet-pool.ts";

declare const self: Worker;

const index = indexGroups();

self.onmessage = (event: MessageEvent<PartJob>) => {
  const { file, context, listLimit } = event.data;
  let result: PartResult;
  try {
    result = { ok: true, part: readRuntimePart(file, context, listLimit, index) };
  } catch (err) {
    result = { ok: false, message: describeError(err) };
  }
  self.postMessage(result);
};
