import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { CarnotError } from "../errors.ts";
import { TOOL } from "../version.ts";
import { Blake3, wordsToHex } from "./blake3.ts";
import { canonicalJson } from "./canonical.ts";
import { type ChainKeys, deriveChainKeys } from "./keys.ts";
import { buildSeal, type ChainSeal, sealPathOf, sealTime } from "./seal.ts";

export type { ChainSeal } from "./seal.ts";
export { readKeyFile } from "./keys.ts";

/** Output is written in chunks of about this size: one write syscall per ~1 MiB, never per line. */
const FLUSH_BYTES = 1 << 20;
/** `,"chain":"` — the chain value is the last key of every line. */
const CHAIN_PREFIX = new TextEncoder().encode(',"chain":"');
/** Bytes a line gains after its record JSON loses its final `}`: prefix, 64 hex, `"}` and `\n`. */
const SUFFIX_LEN = CHAIN_PREFIX.length + 64 + 3;

/**
 * The one writer of every JSONL output: each record gets `raw_hash` and a `chain` value, and a
 * seal beside the file marks it complete.
 *
 * The chain (format carnot.chain.v1) extends the spec's `state = blake3_keyed(state, raw_hash)`:
 *   raw_hash = blake3(raw_line), or blake3(canonical JSON of the record without raw_hash/chain)
 *   chain_i  = blake3_keyed(key = chain_{i-1}, message = the UTF-8 line without its chain key)
 * The message is the whole serialized record (which contains raw_hash), not raw_hash alone,
 * so an edited enriched field (abs_path, risk_tags, …) breaks the chain too; under the spec's
 * rule only raw_line was protected. chain_0 is blake3("carnot.chain.v1 genesis"), or, with a
 * key file, blake3_keyed(blake3(key), "carnot.chain.v1 genesis") so the chain cannot be
 * recomputed without the key. The line is the record JSON with `,"chain":"<hex>"` before its `}`.
 */
export class ChainedWriter {
  private readonly hasher = new Blake3(8192);
  private readonly chain: Uint32Array;
  private buf = new Uint8Array(FLUSH_BYTES + 64 * 1024);
  private pos = 0;
  private appended = 0;
  /** What is known to be on disk: whole lines only. */
  private readonly flushedChain: Uint32Array;
  private flushedCount = 0;
  private flushedBytes = 0;
  private state: "open" | "closed" = "open";
  private seal: ChainSeal | null = null;

  private constructor(
    private readonly fd: number,
    /** The output's name in messages. */
    private readonly name: string,
    /** Where the seal goes; null for stdout, pipes and devices (no seal, no fsync, no truncation). */
    private readonly sealPath: string | null,
    private readonly keys: ChainKeys,
    private readonly tool: string,
  ) {
    this.chain = new Uint32Array(keys.genesis);
    this.flushedChain = new Uint32Array(keys.genesis);
  }

  /** path null → stdout (no seal file). key → secret genesis (from --key-file). */
  static async open(
    path: string | null,
    opts: { key?: Uint8Array; tool?: string } = {},
  ): Promise<ChainedWriter> {
    const keys = deriveChainKeys(opts.key);
    const tool = opts.tool ?? TOOL;
    if (path === null) return new ChainedWriter(1, "stdout", null, keys, tool);
    let fd: number;
    try {
      fd = openSync(path, "w", 0o644);
    } catch (err) {
      throw ioError("cannot create", path, err, 2);
    }
    // -o /dev/stdout or a FIFO: a stream like stdout, nothing to seal beside it
    const sealPath = fstatSync(fd).isFile() ? sealPathOf(path) : null;
    if (sealPath !== null) {
      // A seal from an earlier run describes other content: until this one closes there is none.
      try {
        unlinkSync(sealPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          closeSync(fd);
          throw ioError("cannot remove the old seal", sealPath, err);
        }
      }
    }
    return new ChainedWriter(fd, path, sealPath, keys, tool);
  }

  /** Records appended so far. */
  get count(): number {
    return this.appended;
  }

  /**
   * Append one record (a plain object whose keys are in publication order). Sets record.raw_hash
   * (keeping its position if the key exists) and adds `chain` last. Throws (appending nothing)
   * if the record cannot be serialized.
   */
  append(record: Record<string, unknown>): void {
    if (this.state !== "open") throw new Error("ChainedWriter: append after close");
    const h = this.hasher;
    const raw = record.raw_line;
    const rawText = typeof raw === "string" ? raw : canonicalJson(record, ["raw_hash", "chain"]);
    h.digest(h.encode(rawText));
    record.raw_hash = h.outHex();
    if (record.chain !== undefined) delete record.chain;
    const json = JSON.stringify(record);
    if (json === undefined || json.charCodeAt(0) !== 123)
      throw new TypeError("ChainedWriter: a record must be a JSON object");
    const n = h.encode(json);
    h.digest(n, this.chain);
    const chainHex = h.outHex();
    this.chain.set(h.out);

    if (this.pos + n + SUFFIX_LEN > this.buf.length) {
      this.flush();
      if (n + SUFFIX_LEN > this.buf.length) this.buf = new Uint8Array(n + SUFFIX_LEN + 64 * 1024);
    }
    const buf = this.buf;
    let p = this.pos;
    buf.set(h.scratch.subarray(0, n - 1), p);
    p += n - 1;
    buf.set(CHAIN_PREFIX, p);
    p += CHAIN_PREFIX.length;
    for (let i = 0; i < 64; i++) buf[p++] = chainHex.charCodeAt(i);
    buf[p++] = 34; // "
    buf[p++] = 125; // }
    buf[p++] = 10; // \n
    this.pos = p;
    this.appended++;
    record.chain = chainHex;
    if (p >= FLUSH_BYTES) this.flush();
  }

  /** Flush, then write FILE.seal.json (only now: the seal marks the output complete). */
  async close(): Promise<ChainSeal | null> {
    if (this.state === "closed") return this.seal;
    try {
      this.flush();
    } catch (err) {
      await this.abort(`write failed: ${(err as Error).message}`);
      throw err;
    }
    this.state = "closed";
    if (this.sealPath === null) {
      if (this.fd !== 1) closeSync(this.fd);
      return null;
    }
    try {
      fsyncSync(this.fd);
    } catch (err) {
      throw ioError("cannot write", this.name, err);
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
    this.state = "closed";
    try {
      this.flush();
    } catch (err) {
      reason = `${reason}; ${(err as Error).message}`;
    }
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

  /** Write the buffered lines. On a failed write the file is cut back to its last whole line. */
  private flush(): void {
    let off = 0;
    try {
      while (off < this.pos) off += writeAll(this.fd, this.buf, off, this.pos - off);
    } catch (err) {
      if (this.sealPath !== null) {
        try {
          ftruncateSync(this.fd, this.flushedBytes);
        } catch {
          // verify will report the torn last line
        }
      }
      this.pos = 0;
      this.appended = this.flushedCount;
      this.chain.set(this.flushedChain);
      throw ioError("cannot write", this.name, err);
    }
    this.flushedBytes += this.pos;
    this.pos = 0;
    this.flushedCount = this.appended;
    this.flushedChain.set(this.chain);
  }

  private writeSeal(sealPath: string, complete: boolean, reason: string | null): ChainSeal {
    const seal = buildSeal(
      {
        tool: this.tool,
        count: this.flushedCount,
        final: wordsToHex(this.flushedChain),
        complete,
        reason,
        created: sealTime(),
      },
      this.keys,
    );
    const tmp = `${sealPath}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, `${JSON.stringify(seal)}\n`, { mode: 0o644 });
      renameSync(tmp, sealPath);
    } catch (err) {
      throw ioError("cannot write seal", sealPath, err);
    }
    return seal;
  }
}

/** writeSync that waits out EAGAIN (a non-blocking stdout pipe that is full). */
function writeAll(fd: number, buf: Uint8Array, off: number, len: number): number {
  for (;;) {
    try {
      return writeSync(fd, buf, off, len);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Bun.sleepSync(1);
    }
  }
}

function ioError(what: string, path: string, err: unknown, exitCode = 1): CarnotError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === "ENOENT" ? "no such file or directory" : (code ?? (err as Error).message ?? String(err));
  return new CarnotError(`${what} ${path}: ${why}`, { exitCode, cause: err });
}
