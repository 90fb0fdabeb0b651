/**
 * The hash worker: takes record frames from the ring, computes raw_hash and the chain, writes
 * the lines. Runs on the second core so the writer's thread only serializes records.
 * Frame: int32 rawLen (-1: raw_hash already in the JSON), int32 jsonLen, raw_line bytes, JSON
 * bytes. With a raw_line, the JSON's raw_hash value is the writer's stand-in, which this thread
 * finds and overwrites.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Blake3 } from "./blake3.ts";
import { LineSink, putHex } from "./line-sink.ts";
import { CTL, RingConsumer, type RingShared, setRingError } from "./ring.ts";

/** What the writer hands the worker. */
export interface HashWorkerInput {
  ring: RingShared;
  /** the 64 characters that stand for raw_hash in the JSON of records with a raw_line */
  standin: string;
  fd: number;
  truncatable: boolean;
  /** chain value, count and bytes already written by the writer's own thread */
  chain: Uint32Array;
  /** v2: the link key (see LineSink); null for v1 */
  linkKey: Uint32Array | null;
  count: number;
  writtenBytes: number;
}

/** What the worker reports when the ring has ended: the state of what is on disk. */
export interface HashWorkerResult {
  count: number;
  chain: Uint32Array;
  writtenBytes: number;
  error: string | null;
}

export function runHashWorker(input: HashWorkerInput): HashWorkerResult {
  const ctl = new Int32Array(input.ring.control);
  const sink = new LineSink(
    input.fd,
    input.truncatable,
    input.chain,
    input.count,
    input.writtenBytes,
    input.linkKey,
  );
  let error: string | null = null;
  // the writer's flush(): everything it sent is in the sink, write it out now
  const flushSink = (): void => {
    if (error !== null) return;
    try {
      sink.flush();
    } catch (err) {
      error = describe(err);
      setRingError(input.ring, ctl, error);
    }
  };
  const ring = new RingConsumer(input.ring, flushSink);
  Atomics.store(ctl, CTL.started, 1);
  Atomics.notify(ctl, CTL.started);
  const h = new Blake3(1 << 16);
  const header = new Uint8Array(8);
  const headerView = new DataView(header.buffer);
  const standin = Buffer.from(input.standin);
  const rawHash = new Uint32Array(8);
  while (ring.readExact(header, 0, 8)) {
    const rawLen = headerView.getInt32(0, true);
    const jsonLen = headerView.getInt32(4, true);
    if (rawLen >= 0) {
      h.reserve(rawLen);
      if (!ring.readExact(h.scratch, 0, rawLen)) break;
      h.pad(rawLen);
      rawHash.set(h.digest(rawLen));
    }
    h.reserve(jsonLen);
    if (!ring.readExact(h.scratch, 0, jsonLen)) break;
    ring.release();
    if (error !== null) continue; // after a failed write: drain, so the writer never blocks
    if (rawLen >= 0) {
      const at = h.scratch.indexOf(standin);
      if (at < 0 || at + 64 > jsonLen) {
        error = "raw_hash stand-in missing from a record";
        setRingError(input.ring, ctl, error);
        continue;
      }
      putHex(rawHash, h.scratch, at);
    }
    h.pad(jsonLen);
    try {
      sink.appendBody(h, jsonLen);
    } catch (err) {
      error = describe(err);
      setRingError(input.ring, ctl, error);
    }
  }
  ring.release();
  flushSink();
  return { count: sink.flushedCount, chain: sink.flushedChain, writtenBytes: sink.flushedBytes, error };
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

if (parentPort && workerData && (workerData as { ring?: unknown }).ring) {
  parentPort.postMessage(runHashWorker(workerData as HashWorkerInput));
}
