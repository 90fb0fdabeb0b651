/**
 * Large documents are answered in a worker thread, so that parsing and rendering megabytes does not hold up
 * the server's other requests (/healthz, small documents); at most one worker per core at a time, the rest
 * wait their turn. Small ones are answered at once on the server's thread, where a worker's start-up
 * (tens of milliseconds) would cost more than the work.
 */
import { availableParallelism } from "node:os";
import { log } from "../log.ts";
import { entryModule } from "../self.ts";
import { type Answer, answer, HttpError, errorAnswer, type Job } from "./answer.ts";

/** Bodies from this size on go to a worker (about 10 ms of work on the server's thread). */
export const OFFLOAD_BYTES = 256 * 1024;

/** A counting semaphore: `acquire` resolves when one of `size` slots is free. */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export function createAnswerer(): (job: Job) => Promise<Answer> {
  const workerPath = entryModule("serve/worker");
  if (workerPath === null)
    log.debug("serve: no worker module in this build, large documents answered inline");
  const slots = new Slots(Math.max(1, availableParallelism()));
  const inWorker = async (job: Job, path: string): Promise<Answer> => {
    await slots.acquire();
    log.debug(`serve: /${job.endpoint} answered in a worker thread (${job.text.length} bytes)`);
    const worker = new Worker(path);
    try {
      return await new Promise<Answer>((resolve) => {
        worker.onmessage = (e: MessageEvent<Answer>) => resolve(e.data);
        worker.onerror = (e) =>
          resolve(errorAnswer(new HttpError(500, `internal error: worker failed: ${e.message}`)));
        worker.postMessage(job);
      });
    } finally {
      worker.terminate();
      slots.release();
    }
  };
  return async (job) =>
    workerPath !== null && job.text.length >= OFFLOAD_BYTES ? inWorker(job, workerPath) : answer(job);
}
