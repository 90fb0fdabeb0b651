/**
 * `carnot trace --export nats://HOST:PORT/SUBJECT`: the tracer's side of the exporter. It tells the exporter's
 * thread (src/export/nats-worker.ts) which files exist and how much of them is written, and reads its counters;
 * it never waits for the broker while tracing. At the end it gives the exporter a grace period to have the
 * last records acknowledged and says what, if anything, was not.
 */
import { constants, openSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { CarnotError } from "../errors.ts";
import { entryModule } from "../self.ts";
import type { NatsTarget } from "./nats-url.ts";
import { COUNTER, COUNTERS, type ExportWorkerInput, type FromExporter, type ToExporter } from "./protocol.ts";

const O_CLOEXEC = 0o2000000;

export interface ExportCounters {
  published: number;
  failures: number;
  disconnects: number;
  readBytes: number;
  connected: boolean;
}

/** What the exporter left at the end: the first record the broker did not acknowledge, or null. */
export interface ExportOutcome {
  published: number;
  pending: { sequence: number; line: number } | null;
}

export class NatsExporter {
  readonly #worker: Worker;
  readonly #counters: Float64Array;
  #done: Promise<ExportOutcome>;

  private constructor(
    readonly target: NatsTarget,
    worker: Worker,
    counters: SharedArrayBuffer,
    onMessage: (line: string, warning: boolean) => void,
  ) {
    this.#worker = worker;
    this.#counters = new Float64Array(counters);
    const done = Promise.withResolvers<ExportOutcome>();
    this.#done = done.promise;
    worker.on("message", (m: FromExporter) => {
      if (m.kind === "done") done.resolve({ published: this.counters.published, pending: m.pending });
      else onMessage(m.text, m.kind === "warning");
    });
    worker.on("error", (err) => {
      onMessage(`export: the exporter stopped: ${(err as Error).message}`, true);
      done.resolve({ published: this.counters.published, pending: { sequence: 0, line: 0 } });
    });
  }

  /** Start the exporter's thread (it connects by itself, and again whenever it must). */
  static start(target: NatsTarget, onMessage: (line: string, warning: boolean) => void): NatsExporter {
    const entry = entryModule("export/nats-worker");
    if (entry === null) throw new CarnotError("--export: this build has no exporter");
    const counters = new SharedArrayBuffer(COUNTERS * 8);
    const input: ExportWorkerInput = { target, counters };
    const worker = new Worker(entry, { workerData: input });
    return new NatsExporter(target, worker, counters, onMessage);
  }

  get counters(): ExportCounters {
    const c = this.#counters;
    return {
      published: c[COUNTER.published]!,
      failures: c[COUNTER.failures]!,
      disconnects: c[COUNTER.disconnects]!,
      readBytes: c[COUNTER.readBytes]!,
      connected: c[COUNTER.connected] === 1,
    };
  }

  /**
   * A new output file, open as `fd`: the exporter reads it through a descriptor of its own (opened now, so a
   * rename or a deletion by --max-files does not take the file from under it).
   */
  file(sequence: number, fd: number): void {
    const reader = openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | O_CLOEXEC);
    this.#post({ kind: "file", sequence, fd: reader });
  }

  /** `bytes` of file `sequence` are whole lines on disk; `final`: no more will come. */
  written(sequence: number, bytes: number, final = false): void {
    this.#post({ kind: "written", sequence, bytes, final });
  }

  /** After the last file is sealed: wait at most `graceMs` for the rest to be acknowledged. */
  async finish(graceMs: number): Promise<ExportOutcome> {
    this.#post({ kind: "finish", graceMs });
    const outcome = await this.#done;
    await this.#worker.terminate();
    return outcome;
  }

  /** Stop at once (the trace failed before it could finish). */
  async stop(): Promise<void> {
    await this.#worker.terminate();
  }

  #post(m: ToExporter): void {
    this.#worker.postMessage(m);
  }
}
