/**
 * A chained output that rotates (`carnot trace --rotate-size/--rotate-every/SIGHUP`): the live file is always
 * at the path given (`runtime.jsonl`); a rotation finishes it, renames it to the next numbered name beside it
 * (`runtime.000001.jsonl`, `runtime.000002.jsonl`, … — the number before the extension, six digits or more,
 * so a shell glob lists them in order and never matches their seals), seals it there and opens a new live
 * file whose chain starts from the old one's final value. Each seal names its place in the sequence and the
 * value it started from, so `carnot verify runtime.*.jsonl runtime.jsonl` proves the files complete and in
 * order.
 *
 * File 1 of a sequence has a plain seal, byte for byte what a single file's is; files 2, 3, … add `sequence`
 * and `previous`. With rotation flags, a live file left by an earlier run is never truncated: it is moved to
 * the next numbered name first, and the new run's chain continues from it when its seal is intact (else a new
 * sequence starts, said once). Without them the output is replaced at start, as a single file always was;
 * SIGHUP still rotates it.
 * `--max-files N` keeps the newest N files (the live one included), deleting only regular files of this
 * naming, never through a symlink.
 */
import { closeSync, constants, lstatSync, openSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CarnotError, systemReason, writeFailure } from "../errors.ts";
import { createTempBeside, renameNoReplace } from "../io/safe-file.ts";
import { deriveChainKeys } from "./keys.ts";
import { type ChainLink, type ChainSeal, sealMac, sealPathOf } from "./seal.ts";
import { ChainedWriter, type ChainedWriterOptions } from "./writer.ts";

export interface RotationOptions {
  /** rotate once the live file holds this many bytes (checked by the caller between batches) */
  sizeBytes?: number;
  /** keep at most this many files, the live one included */
  maxFiles?: number;
  /** a live file an earlier run left is moved aside and continued, not replaced (rotation flags given) */
  keepEarlier?: boolean;
}

/** A file the log has opened: where the exporter reads it from, and where it will stand in the sequence. */
export interface LogFile {
  sequence: number;
  /** the open descriptor of the file (renames do not change it) */
  fd: number;
  path: string;
}

/** A file finished (rotated or closed at the end): its final size in bytes. */
export interface SealedFile {
  sequence: number;
  path: string;
  bytes: number;
}

/** What the log tells its caller about its files. */
export interface LogHooks {
  warn: (line: string) => void;
  /** a file was opened (before any line is written to it) */
  onFile?: (file: LogFile) => void;
  /** a file was finished: no line will be added to it */
  onSealed?: (file: SealedFile) => void;
}

/** What a rotation did, for the caller to report. */
export interface RotationOutcome {
  /** the file the old live file became, or null when the rotation was not made */
  archived: string | null;
  /** why it was not made, or what went wrong on the way (a warning) */
  warning: string | null;
}

export interface RotationCounters {
  rotations: number;
  failures: number;
  deleted: number;
  /** times the disk refused the output's lines (held, written later) */
  stalls: number;
}

/** The numbered name of `out`'s file number `n`: the number before the extension. */
export function numberedName(out: string, n: number): string {
  const { stem, ext } = splitName(basename(out));
  return join(dirname(out), `${stem}.${String(n).padStart(6, "0")}${ext}`);
}

function splitName(base: string): { stem: string; ext: string } {
  const dot = base.lastIndexOf(".");
  return dot > 0 ? { stem: base.slice(0, dot), ext: base.slice(dot) } : { stem: base, ext: "" };
}

/** The numbered files of `out` that exist now, oldest first: [number, path]. */
export function numberedFiles(out: string): [number, string][] {
  const dir = dirname(out);
  const { stem, ext } = splitName(basename(out));
  const literal = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^${literal(stem)}\\.(\\d{6,})${literal(ext)}$`);
  const found: [number, string][] = [];
  for (const name of readdirSync(dir)) {
    const m = pattern.exec(name);
    if (m) found.push([Number(m[1]), join(dir, name)]);
  }
  return found.sort((a, b) => a[0] - b[0]);
}

/** Fails early (a usage error) when new files cannot be created beside `out`: rotation needs that. */
export function assertRotationDirectory(out: string): void {
  try {
    createTempBeside(out).discard();
  } catch (err) {
    throw new CarnotError(`rotation directory not writable: ${dirname(out)} (${systemReason(err)})`, {
      exitCode: 2,
    });
  }
}

export class RotatingLog {
  #writer: ChainedWriter;
  #sequence: number;
  /** the next numbered name */
  #nextNumber: number;
  /** records in the files closed before the live one */
  #closedRecords = 0;
  /** where this run's files are now, by place in the sequence */
  readonly #paths = new Map<number, string>();
  readonly counters: RotationCounters = { rotations: 0, failures: 0, deleted: 0, stalls: 0 };

  private constructor(
    /** null: stdout */
    readonly out: string | null,
    private readonly writerOpts: ChainedWriterOptions,
    private readonly rotation: RotationOptions,
    writer: ChainedWriter,
    sequence: number,
    nextNumber: number,
    private readonly hooks: LogHooks,
  ) {
    this.#writer = writer;
    this.#sequence = sequence;
    this.#nextNumber = nextNumber;
    if (out !== null) this.#paths.set(sequence, out);
  }

  /** Where file `sequence` of this run is now (its numbered name once rotated). */
  pathOf(sequence: number): string | null {
    return this.#paths.get(sequence) ?? null;
  }

  /**
   * Open the live file at `out`. One left there by an earlier run is moved to the next numbered name first
   * (with its seal); `warn` hears why its chain cannot be continued, when it cannot.
   */
  static async open(
    out: string | null,
    writerOpts: ChainedWriterOptions,
    rotation: RotationOptions,
    hooks: LogHooks,
  ): Promise<RotatingLog> {
    if (out === null) {
      const writer = await ChainedWriter.open(null, writerOpts);
      return new RotatingLog(null, writerOpts, rotation, writer, 1, 1, hooks);
    }
    const numbers = numberedFiles(out);
    let next = (numbers[numbers.length - 1]?.[0] ?? 0) + 1;
    // file 1 has a single file's seal; a continued sequence goes on where the earlier run stopped
    let link: ChainLink | undefined;
    if (rotation.keepEarlier === true && isRegularFile(out)) {
      const earlier = continuationOf(out, writerOpts.key);
      const moved = numberedName(out, next);
      try {
        moveWithSeal(out, moved);
      } catch (err) {
        throw writeFailure(out, err, "cannot move aside the earlier output", 2);
      }
      next++;
      if (typeof earlier === "string")
        hooks.warn(`${out} from an earlier run moved to ${moved}; ${earlier}: a new sequence starts`);
      else link = earlier;
    }
    const writer = await ChainedWriter.open(out, { ...writerOpts, link });
    if (!writer.sealed && (rotation.keepEarlier === true || rotation.sizeBytes !== undefined)) {
      await writer.close();
      throw new CarnotError(`cannot rotate ${out}: not a regular file`, { exitCode: 2 });
    }
    const sequence = link?.sequence ?? 1;
    const log = new RotatingLog(out, writerOpts, rotation, writer, sequence, next, hooks);
    hooks.onFile?.({ sequence, fd: writer.descriptor, path: out });
    log.#prune();
    return log;
  }

  /** The output is a file (not stdout, a pipe or a device): it can rotate. */
  get rotatable(): boolean {
    return this.out !== null && this.#writer.sealed;
  }

  /** Records appended over every file of this run. */
  get count(): number {
    return this.#closedRecords + this.#writer.count;
  }

  /** The live file's place in the sequence. */
  get sequence(): number {
    return this.#sequence;
  }

  /** The live file has reached --rotate-size. */
  get full(): boolean {
    const size = this.rotation.sizeBytes;
    return size !== undefined && this.#writer.bytes >= size;
  }

  /** The live file's writer (appends, flushes). */
  get writer(): ChainedWriter {
    return this.#writer;
  }

  append(record: Record<string, unknown>, canonical?: string): void {
    this.#writer.append(record, canonical);
  }

  flush(): void {
    this.#writer.flush();
  }

  /**
   * Close and seal the live file under its numbered name and open the next one. The caller appends nothing
   * meanwhile. A directory that refuses a new file leaves the live file as it is (a warning, counted); a
   * failure after the live file was finished is thrown (the output cannot go on).
   */
  async rotate(): Promise<RotationOutcome> {
    const out = this.out;
    if (out === null || !this.rotatable) return { archived: null, warning: null };
    // the new file first: if the directory refuses it, nothing has changed yet
    let fresh: ReturnType<typeof createTempBeside>;
    try {
      fresh = createTempBeside(out);
    } catch (err) {
      this.counters.failures++;
      return { archived: null, warning: `cannot rotate ${out}: ${systemReason(err)}; writing on in it` };
    }
    fresh.discard();
    const old = this.#writer;
    let archived = numberedName(out, this.#nextNumber);
    // a name taken meanwhile (by anything) is never replaced: the next number
    for (let tries = 0; ; tries++) {
      try {
        renameNoReplace(out, archived);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || tries >= 100) {
          await old.abort(`rotation failed: ${systemReason(err)}`);
          throw writeFailure(out, err, "cannot rotate");
        }
        archived = numberedName(out, ++this.#nextNumber);
      }
    }
    this.#nextNumber++;
    old.movedTo(archived);
    // a write or seal that fails here (a full disk) stops the output, as it would a moment later
    await old.close();
    this.#closedRecords += old.count;
    this.#paths.set(this.#sequence, archived);
    this.hooks.onSealed?.({ sequence: this.#sequence, path: archived, bytes: old.bytes });
    const link = { sequence: this.#sequence + 1, previous: old.lastChain };
    this.#writer = await ChainedWriter.open(out, { ...this.writerOpts, link });
    this.#sequence = link.sequence;
    this.#paths.set(link.sequence, out);
    this.counters.rotations++;
    this.hooks.onFile?.({ sequence: link.sequence, fd: this.#writer.descriptor, path: out });
    this.#prune();
    return { archived, warning: null };
  }

  async close(): Promise<ChainSeal | null> {
    const seal = await this.#writer.close();
    if (this.out !== null)
      this.hooks.onSealed?.({ sequence: this.#sequence, path: this.out, bytes: this.#writer.bytes });
    return seal;
  }

  async abort(reason: string): Promise<void> {
    await this.#writer.abort(reason);
  }

  /** --max-files: delete the oldest numbered files (and their seals) beyond N − 1 beside the live one. */
  #prune(): void {
    const max = this.rotation.maxFiles;
    if (max === undefined || this.out === null) return;
    const numbered = numberedFiles(this.out);
    for (const [, path] of numbered.slice(0, Math.max(0, numbered.length - (max - 1)))) {
      if (removeRegularFile(path)) this.counters.deleted++;
      removeRegularFile(sealPathOf(path));
    }
  }
}

function isRegularFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/** Unlink `path` only when it is a regular file (never a symlink, a directory or a device); true when it did. */
function removeRegularFile(path: string): boolean {
  if (!isRegularFile(path)) return false;
  try {
    unlinkSync(path); // unlink(2) removes the name itself, never what a link points to
    return true;
  } catch {
    return false;
  }
}

/** Rename a log and then its seal (when it has one) to `to`, never replacing anything there. */
function moveWithSeal(from: string, to: string): void {
  renameNoReplace(from, to);
  if (isRegularFile(sealPathOf(from))) renameNoReplace(sealPathOf(from), sealPathOf(to));
}

/**
 * Where a run continues the sequence of the live file an earlier run left: after it, from its final value,
 * when its seal is intact under the same key; else why not.
 */
function continuationOf(path: string, key: Uint8Array | undefined): ChainLink | string {
  let seal: ChainSeal;
  try {
    // read, never followed: a link planted at the seal's name is no seal
    const fd = openSync(sealPathOf(path), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      seal = JSON.parse(readFileSync(fd, "utf8")) as ChainSeal;
    } finally {
      closeSync(fd);
    }
  } catch {
    return "it has no readable seal";
  }
  const keys = deriveChainKeys(key);
  const fine =
    seal !== null &&
    typeof seal === "object" &&
    seal.format === keys.format &&
    seal.key_id === keys.keyId &&
    typeof seal.final === "string" &&
    /^[0-9a-f]{64}$/.test(seal.final) &&
    (seal.sequence === undefined || Number.isSafeInteger(seal.sequence)) &&
    sealMac(seal, keys) === seal.mac;
  if (!fine) return "its seal is not intact under this key";
  return { sequence: (seal.sequence ?? 1) + 1, previous: seal.final };
}
