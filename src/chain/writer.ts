import { closeSync, fstatSync, fsyncSync, unlinkSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { CarnotError, systemReason, writeFailure } from "../errors.ts";
import { isStdoutPath } from "../io/output.ts";
import { openInPlace, replaceFile } from "../io/safe-file.ts";
import { log } from "../log.ts";
import { entryModule } from "../self.ts";
import { TOOL } from "../version.ts";
import { Blake3, hexToWords, wordsToHex } from "./blake3.ts";
import { canonicalJson } from "./canonical.ts";
import type { HashWorkerInput, HashWorkerResult } from "./hash-worker.ts";
import { CHAIN_FORMAT_V2, type ChainKeys, deriveChainKeys, FORMAT_KEY, KEY_ID_KEY } from "./keys.ts";
import { LineSink } from "./line-sink.ts";
import { CTL, createRing, RingProducer, ringError } from "./ring.ts";
import { buildSeal, type ChainLink, type ChainSeal, sealPathOf, sealTime } from "./seal.ts";

export type { ChainSeal } from "./seal.ts";
export { readKeyFile } from "./keys.ts";

/** Records chained in the writer's thread before hashing moves to a worker (startup ≈ 10–100 ms). */
const PARALLEL_AFTER = 20_000;
/** The same for an output known to be large: about as long as the worker takes to start (≈ 10 ms). */
const PARALLEL_AFTER_LARGE = 4_096;
/** Frames are staged and copied into the ring in pieces of about this size. */
const STAGE_BYTES = 256 * 1024;
/** How long the writer waits for a new hash worker to run before it keeps hashing itself. */
const WORKER_START_MS = 3_000;
/** What a line adds to its record's JSON: `}` becomes `,"chain":"<64 hex>"}` and a newline. */
const LINE_SUFFIX_GROWTH = ',"chain":"'.length + 64 + 2;
/** The keys raw_hash does not cover (the chain's own: a record keeps its raw_hash in any log). */
const OMITTED: readonly string[] = ["raw_hash", "chain", FORMAT_KEY, KEY_ID_KEY];

/** Hashing moved to a worker: the ring, the frames staged for it, and its final report. */
interface ParallelState {
  worker: Worker;
  /**
   * Stands for raw_hash in the JSON until the worker puts the real value in its place: 64 random
   * hex characters drawn per writer, so no record content can contain it by chance or design.
   */
  standin: string;
  producer: RingProducer;
  /** a Buffer: write() encodes at an offset without allocating a view */
  stage: Buffer;
  stagePos: number;
  result: Promise<HashWorkerResult>;
}

export interface ChainedWriterOptions {
  /** Secret from --key-file: the log is written in carnot.chain.v2, every link keyed by it. */
  key?: Uint8Array;
  /** Program and version named in the seal (default: this carnot). */
  tool?: string;
  /** After how many records hashing moves to a worker thread; Infinity keeps it in this thread. */
  parallelAfter?: number;
  /** The caller knows the output will be large (replay of a big file): the worker starts sooner. */
  largeOutput?: boolean;
  /** Write through an existing symlink at the path (`--follow-symlinks`); refused otherwise. */
  followSymlinks?: boolean;
  /**
   * A full disk holds the lines in memory (up to 64 MiB) and flush() throws OutputHeld until a later flush writes
   * them (the tracer, which can stop reading meanwhile); without it the write error ends the output. Only while
   * this thread hashes.
   */
  holdWhenFull?: boolean;
  /**
   * A file of a rotated sequence: its chain starts from the previous file's final value (`previous`), and its
   * seal says where it stands. Without it the chain starts from the format's genesis, as a single file's.
   */
  link?: ChainLink;
}

/**
 * The one writer of every JSONL output: each record gets `raw_hash` and a `chain` value, and a
 * seal beside the file marks it complete.
 *
 * Unkeyed logs (format carnot.chain.v1) extend the spec's `state = blake3_keyed(state, raw_hash)`:
 *   raw_hash = blake3(raw_line), or blake3(canonical JSON of the record without raw_hash/chain)
 *   chain_i  = blake3_keyed(key = chain_{i-1}, message = the UTF-8 line without its chain key)
 * The message is the whole serialized record (which contains raw_hash), not raw_hash alone,
 * so an edited enriched field (abs_path, risk_tags, …) breaks the chain too; under the spec's
 * rule only raw_line was protected. chain_0 is blake3("carnot.chain.v1 genesis"). Anyone can
 * recompute such a chain: it finds accidents and careless edits, not an attacker.
 *
 * Keyed logs (--key-file, format carnot.chain.v2): with m = blake3(secret) and keys derived from m
 * under "carnot.chain.v2 genesis|link|seal|key-id" labels,
 *   k_i      = blake3_keyed(key = link key, message = the 32 bytes of chain_{i-1})
 *   chain_i  = blake3_keyed(key = k_i, message = the UTF-8 line without its chain key)
 * so every link is a MAC that needs the secret: no line can be edited, inserted or removed without
 * it, also in a log cut short before its seal. The first line carries `chain_format` and
 * `chain_key_id` (before `chain`, covered by it, not by raw_hash), so such a log is known as keyed
 * without its seal. The line is the record JSON with `,"chain":"<hex>"` before its `}`.
 *
 * Large outputs: after `parallelAfter` records the hashing and writing move to a worker thread
 * (src/chain/hash-worker.ts) fed through a shared ring, so this thread only serializes.
 */
export class ChainedWriter {
  private readonly hasher = new Blake3(8192);
  private readonly sink: LineSink;
  private parallel: ParallelState | null = null;
  private appended = 0;
  /** Bytes of the lines appended so far (what the file will hold once they are written). */
  private appendedBytes = 0;
  /** `appended` at the last flush: flush() has nothing to do while it is unchanged. */
  private flushedAt = 0;
  private state: "open" | "closed" = "open";
  private seal: ChainSeal | null = null;
  /** The first write error: every later append repeats it, and abort names it in the seal. */
  private failure: CarnotError | null = null;

  private constructor(
    private readonly fd: number,
    /** The output's name in messages. */
    private name: string,
    /** Where the seal goes; null for stdout, pipes and devices (no seal, no fsync, no truncation). */
    private sealPath: string | null,
    private readonly keys: ChainKeys,
    private readonly tool: string,
    private parallelAfter: number,
    private readonly link: ChainLink | null,
    holdWhenFull: boolean,
  ) {
    const start = link?.previous ? hexToWords(link.previous) : keys.genesis;
    if (start === null) throw new Error("ChainedWriter: link.previous is not a chain value");
    this.sink = new LineSink(fd, sealPath !== null, start, 0, 0, keys.linkKey, holdWhenFull);
  }

  /**
   * path null, `-` or /dev/stdout → stdout (no seal file). The file is written in place as records come (a live
   * log), so it is opened with O_NOFOLLOW: a symlink planted at its name is refused, not followed.
   */
  static async open(path: string | null, opts: ChainedWriterOptions = {}): Promise<ChainedWriter> {
    const keys = deriveChainKeys(opts.key);
    const tool = opts.tool ?? TOOL;
    // with one CPU a worker would only take turns with this thread
    const parallelAfter =
      opts.parallelAfter ??
      (availableParallelism() < 2
        ? Number.POSITIVE_INFINITY
        : opts.largeOutput === true
          ? PARALLEL_AFTER_LARGE
          : PARALLEL_AFTER);
    const link = opts.link ?? null;
    const hold = opts.holdWhenFull === true;
    if (isStdoutPath(path))
      return new ChainedWriter(1, "stdout", null, keys, tool, parallelAfter, link, hold);
    const file = path as string;
    let fd: number;
    try {
      fd = openInPlace(file, opts.followSymlinks);
    } catch (err) {
      throw writeFailure(file, err, "cannot create", 2);
    }
    // -o /dev/stdout or a FIFO: a stream like stdout, nothing to seal beside it
    const sealPath = fstatSync(fd).isFile() ? sealPathOf(file) : null;
    if (sealPath !== null) {
      // A seal from an earlier run describes other content: until this one closes there is none.
      try {
        unlinkSync(sealPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          closeSync(fd);
          throw writeFailure(sealPath, err, "cannot remove the old seal");
        }
      }
    }
    return new ChainedWriter(fd, file, sealPath, keys, tool, parallelAfter, link, hold);
  }

  /** Records appended so far. */
  get count(): number {
    return this.appended;
  }

  /** Bytes of the lines appended so far: the file's size once they are written. */
  get bytes(): number {
    return this.appendedBytes;
  }

  /** The output is a file with a seal (not stdout, a pipe or a device). */
  get sealed(): boolean {
    return this.sealPath !== null;
  }

  /** The descriptor of the output (a reader of what was written reopens it through /proc/self/fd). */
  get descriptor(): number {
    return this.fd;
  }

  /** The chain value of the last line written (after close or abort: the file's final value). */
  get lastChain(): string {
    return wordsToHex(this.sink.flushedChain);
  }

  /**
   * The open file was renamed to `path` (a rotation): messages name it, and the seal is written beside it.
   * Only for a sealed output, and before close.
   */
  movedTo(path: string): void {
    if (this.sealPath === null || this.state !== "open")
      throw new Error("ChainedWriter: movedTo on a stream or after close");
    this.name = path;
    this.sealPath = sealPathOf(path);
  }

  /**
   * Append one record (a plain object whose keys are in publication order). The line written is
   * the record with raw_hash set (at its position if the key exists, else last) and `chain` added
   * last. The record object is consumed: its raw_hash and chain keys are overwritten. Throws
   * (appending nothing) if the record cannot be serialized, or if an earlier write failed.
   *
   * `canonical`: the record's canonical JSON without raw_hash and chain, when the caller has it
   * cheaper than `canonicalJson` (a record of one fixed shape: see `canonicalObservation`); it must
   * be exactly that text, as `carnot verify` recomputes it. Ignored for a record with raw_line.
   */
  append(record: Record<string, unknown>, canonical?: string): void {
    if (this.state !== "open") throw new Error("ChainedWriter: append after close");
    if (this.failure !== null) throw this.failure;
    if (this.parallel === null && this.appended >= this.parallelAfter) this.startWorker();
    if (this.parallel !== null) this.stageRecord(record, this.parallel, canonical);
    else this.chainRecord(record, canonical);
    this.appended++;
  }

  /**
   * Write every line appended so far to the output now (a live `carnot trace | jq` shows them as
   * they happen), also when a worker hashes: it is asked to write what it has and this waits until
   * it did. Cheap when nothing was appended since the last flush. Throws as append does on a
   * write error. The seal still comes only with close().
   */
  flush(): void {
    if (this.state !== "open" || this.appended === this.flushedAt) return;
    if (this.failure !== null) throw this.failure;
    const p = this.parallel;
    if (p === null) {
      try {
        this.sink.flush();
      } catch (err) {
        // a full disk: the lines are held in order and written by a later flush, nothing is lost meanwhile
        if (this.sink.heldBytes > 0)
          throw new OutputHeld(this.name, err, this.appended - this.sink.flushedCount);
        this.failure = writeFailure(this.name, err);
        throw this.failure;
      }
    } else {
      this.sendStaged(p);
      let flushed: boolean;
      try {
        flushed = p.producer.requestFlush();
      } catch (err) {
        this.failure = new CarnotError(`cannot write ${this.name}: ${(err as Error).message}`);
        throw this.failure;
      }
      if (!flushed) {
        this.failure = writeFailure(this.name, {
          code: ringError(p.producer.shared, p.producer.ctl),
        });
        throw this.failure;
      }
    }
    this.flushedAt = this.appended;
  }

  /** Flush, then write FILE.seal.json (only now: the seal marks the output complete). */
  async close(): Promise<ChainSeal | null> {
    if (this.state === "closed") return this.seal;
    if (this.failure !== null) {
      // records were lost: the log can only be sealed as incomplete
      await this.abort(this.failure.message);
      throw this.failure;
    }
    let failure: string | null = null;
    try {
      await this.finishWriting();
    } catch (err) {
      failure = (err as Error).message;
    }
    if (failure !== null) {
      await this.abort(failure);
      throw new CarnotError(failure);
    }
    this.state = "closed";
    if (this.sealPath === null) {
      if (this.fd !== 1) closeSync(this.fd);
      return null;
    }
    try {
      fsyncSync(this.fd);
    } catch (err) {
      throw writeFailure(this.name, err);
    } finally {
      closeSync(this.fd);
    }
    this.seal = this.writeSeal(this.sealPath, true, null);
    return this.seal;
  }

  /**
   * Stop after an error: flush the whole lines written so far and seal them as incomplete
   * (complete:false, reason), so nothing is half-written and verify reports the log as incomplete.
   */
  async abort(reason: string): Promise<void> {
    if (this.state === "closed") return;
    try {
      await this.finishWriting();
    } catch (err) {
      this.failure ??= err as CarnotError;
    }
    if (this.failure !== null && !reason.includes(this.failure.message))
      reason = `${reason}; ${this.failure.message}`;
    this.state = "closed";
    if (this.sealPath === null) {
      if (this.fd !== 1) closeSync(this.fd);
      return;
    }
    try {
      fsyncSync(this.fd);
    } catch {
      // the seal below still records only lines that were written whole
    } finally {
      closeSync(this.fd);
    }
    this.seal = this.writeSeal(this.sealPath, false, reason);
  }

  /** After raw_hash: no `chain` yet (it comes last); a v2 log's first line names its format and key. */
  private chainKeysOf(record: Record<string, unknown>): void {
    if (record.chain !== undefined) delete record.chain;
    if (this.appended === 0 && this.keys.format === CHAIN_FORMAT_V2) {
      record[FORMAT_KEY] = CHAIN_FORMAT_V2;
      record[KEY_ID_KEY] = this.keys.keyId;
    }
  }

  /** Chain and buffer one record in this thread. */
  private chainRecord(record: Record<string, unknown>, canonical: string | undefined): void {
    const h = this.hasher;
    const raw = record.raw_line;
    h.digest(h.encode(typeof raw === "string" ? raw : (canonical ?? canonicalJson(record, OMITTED))));
    record.raw_hash = h.outHex();
    this.chainKeysOf(record);
    const n = h.encode(serialize(record));
    // the line: the JSON without its "}", then `,"chain":"<64 hex>"}` and a newline
    this.appendedBytes += n + LINE_SUFFIX_GROWTH;
    try {
      this.sink.appendBody(h, n);
    } catch (err) {
      this.failure = writeFailure(this.name, err);
      throw this.failure;
    }
    record.chain = wordsToHex(this.sink.chain);
  }

  /** Serialize one record into a frame for the hash worker (raw_hash and chain come from the worker). */
  private stageRecord(
    record: Record<string, unknown>,
    p: ParallelState,
    canonical: string | undefined,
  ): void {
    const failed = ringError(p.producer.shared, p.producer.ctl);
    if (failed !== null) {
      this.failure = writeFailure(this.name, { code: failed });
      throw this.failure;
    }
    const raw = record.raw_line;
    // a record with its own toJSON may drop the stand-in: hash it here
    if (typeof raw === "string" && typeof record.toJSON !== "function") {
      record.raw_hash = p.standin;
      this.chainKeysOf(record);
      this.stageFrame(p, raw, serialize(record));
      return;
    }
    const h = this.hasher;
    h.digest(h.encode(typeof raw === "string" ? raw : (canonical ?? canonicalJson(record, OMITTED))));
    record.raw_hash = h.outHex();
    this.chainKeysOf(record);
    this.stageFrame(p, null, serialize(record));
  }

  /** Put one frame in the stage: int32 rawLen (-1: raw_hash is in the JSON), int32 jsonLen, raw_line, JSON. */
  private stageFrame(p: ParallelState, raw: string | null, json: string): void {
    const need = 8 + 3 * ((raw?.length ?? 0) + json.length);
    if (p.stagePos + need > p.stage.length) {
      this.sendStaged(p);
      if (need > p.stage.length) p.stage = Buffer.allocUnsafe(need + STAGE_BYTES);
    }
    const stage = p.stage;
    const start = p.stagePos;
    let q = start + 8;
    let rawLen = -1;
    if (raw !== null) {
      rawLen = stage.write(raw, q);
      q += rawLen;
    }
    const jsonLen = stage.write(json, q);
    this.appendedBytes += jsonLen + LINE_SUFFIX_GROWTH;
    stage.writeInt32LE(rawLen, start);
    stage.writeInt32LE(jsonLen, start + 4);
    p.stagePos = q + jsonLen;
    if (p.stagePos >= STAGE_BYTES) this.sendStaged(p);
  }

  private sendStaged(p: ParallelState): void {
    if (p.stagePos === 0) return;
    const len = p.stagePos;
    // staged bytes go to the ring once: after a failure midway they must not be sent again
    p.stagePos = 0;
    try {
      p.producer.write(p.stage, len);
      p.producer.publish();
    } catch (err) {
      // a frame may be half in the ring: nothing more may follow it
      this.failure = new CarnotError(`cannot write ${this.name}: ${(err as Error).message}`);
      throw this.failure;
    }
  }

  /** Hand the chain to a worker thread; if it does not start, keep hashing here. */
  private startWorker(): void {
    this.parallelAfter = Number.POSITIVE_INFINITY; // one attempt
    try {
      this.sink.flush();
    } catch (err) {
      throw writeFailure(this.name, err);
    }
    const ring = createRing();
    const standin = randomBytes(32).toString("hex");
    const input: HashWorkerInput = {
      ring,
      standin,
      fd: this.fd,
      truncatable: this.sealPath !== null,
      chain: this.sink.chain,
      linkKey: this.keys.linkKey,
      count: this.sink.flushedCount,
      writtenBytes: this.sink.flushedBytes,
    };
    const entry = hashWorkerEntry();
    if (entry === null) {
      log.debug("chain: no hash worker in this build, hashing in the writer's thread");
      return;
    }
    let worker: Worker;
    try {
      worker = new Worker(entry, { workerData: input });
    } catch (err) {
      log.debug(
        `chain: cannot start the hash worker (${(err as Error).message}), hashing in the writer's thread`,
      );
      return;
    }
    worker.unref();
    const producer = new RingProducer(ring);
    // the worker thread boots on its own: waiting here does not need this thread's event loop
    if (Atomics.wait(producer.ctl, CTL.started, 0, WORKER_START_MS) === "timed-out") {
      log.debug(
        `chain: the hash worker did not start within ${WORKER_START_MS} ms, hashing in the writer's thread`,
      );
      void worker.terminate();
      return;
    }
    log.debug(`chain: hashing moved to a worker thread after ${this.appended} records`);
    const result = new Promise<HashWorkerResult>((resolve, reject) => {
      worker.once("message", (r: HashWorkerResult) => resolve(r));
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the hash worker exited (${code}) before it finished`)));
    });
    result.catch(() => {}); // observed in finishWriting
    const stage = Buffer.allocUnsafe(STAGE_BYTES + 64 * 1024);
    this.parallel = { worker, standin, producer, stage, stagePos: 0, result };
  }

  /** Write every whole line: flush this thread's buffer, or drain and stop the worker. */
  private async finishWriting(): Promise<void> {
    const p = this.parallel;
    if (p === null) {
      try {
        this.sink.flush();
      } catch (err) {
        throw writeFailure(this.name, err);
      }
      return;
    }
    this.parallel = null;
    try {
      if (this.failure === null) this.sendStaged(p);
    } finally {
      p.producer.end();
    }
    const r = await p.result;
    await p.worker.terminate();
    // the worker's count of what is on disk; the seal is written from the sink
    this.sink.chain.set(r.chain);
    this.sink.flushedChain.set(r.chain);
    this.sink.appended = this.sink.flushedCount = r.count;
    this.sink.flushedBytes = r.writtenBytes;
    if (r.error !== null) throw writeFailure(this.name, { code: r.error });
  }

  private writeSeal(sealPath: string, complete: boolean, reason: string | null): ChainSeal {
    const seal = buildSeal(
      {
        tool: this.tool,
        count: this.sink.flushedCount,
        final: wordsToHex(this.sink.flushedChain),
        complete,
        reason,
        created: sealTime(),
        link: this.link,
      },
      this.keys,
    );
    try {
      // the old seal was removed at open: whatever is at its name now is replaced, never followed
      replaceFile(sealPath, `${JSON.stringify(seal)}\n`);
    } catch (err) {
      throw writeFailure(sealPath, err, "cannot write seal");
    }
    return seal;
  }
}

/** A flush the disk refused for want of space; the lines stay held (`lines`), a later flush() tries again. */
export class OutputHeld extends CarnotError {
  constructor(
    readonly output: string,
    cause: unknown,
    readonly lines: number,
  ) {
    super(`cannot write ${output}: ${systemReason(cause)}`, { cause });
    this.name = "OutputHeld";
  }
}

/** The worker's module (an entry point of its own in the compiled binary), or null when this build has none. */
const hashWorkerEntry = (): string | null => entryModule("chain/hash-worker");

/** The record's JSON text, which must be an object. */
function serialize(record: Record<string, unknown>): string {
  const json = JSON.stringify(record);
  if (json === undefined || json.charCodeAt(0) !== 123)
    throw new TypeError("ChainedWriter: a record must be a JSON object");
  return json;
}
