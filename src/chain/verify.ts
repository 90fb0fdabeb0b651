import { stat } from "node:fs/promises";
import { CarnotError, systemReason } from "../errors.ts";
import { Blake3, hexToWords, sameWords, wordsToHex } from "./blake3.ts";
import { canonicalJson } from "./canonical.ts";
import {
  CHAIN_FORMAT_V1,
  CHAIN_FORMAT_V2,
  type ChainFormat,
  type ChainKeys,
  deriveChainKeys,
  FORMAT_KEY,
  KEY_ID_KEY,
} from "./keys.ts";
import { linkKeyOf } from "./line-sink.ts";
import { type ChainLink, type ChainSeal, sealMac, sealPathOf } from "./seal.ts";

/** What `carnot verify` found. */
export interface VerifyResult {
  /** true only for an intact, complete, sealed log. */
  ok: boolean;
  /** Lines in the file (a torn last line included). */
  count: number;
  /** 1-based number of the first bad line; null when the fault is not a line's (seal, key). */
  firstBadLine: number | null;
  /** Why it failed; null when ok. */
  reason: string | null;
  /** A seal that is intact and matches the file was found. */
  sealed: boolean;
  /** The chain the log was checked as (null when the check stopped before choosing one). */
  format?: ChainFormat | null;
  /** It was checked with a key. */
  keyed?: boolean;
}

/** A file checked as part of a rotated sequence: where its seal says it stands, and where its chain ends. */
interface LinkedResult {
  result: VerifyResult;
  /** null for a single file's seal (file 1) or without a seal */
  link: ChainLink | null;
  /** the chain value of its last line (the seal's final value when ok) */
  final: string | null;
}

/** `ok: N records, chain intact, sealed` or `FAIL line 17: …` / `FAIL: …`. */
export function formatVerifyResult(r: VerifyResult): string {
  if (r.ok && r.keyed && r.format === CHAIN_FORMAT_V1)
    return `ok: ${r.count} records, chain intact, sealed (${CHAIN_FORMAT_V1}: the key protects its first link only)`;
  if (r.ok) return `ok: ${r.count} records, chain intact, sealed`;
  return r.firstBadLine === null ? `FAIL: ${r.reason}` : `FAIL line ${r.firstBadLine}: ${r.reason}`;
}

/** What `carnot verify A B C …` found for a sequence of files. */
export interface SequenceResult {
  ok: boolean;
  files: number;
  /** records in every file checked */
  records: number;
  /** the first and last file's place in the rotated sequence (1 for a single file) */
  first: number;
  last: number;
  /** the file at fault and why (null when ok) */
  badFile: string | null;
  reason: string | null;
}

/**
 * Check files of a rotated sequence, in the order given: each one whole (verifyLog), and each one's chain
 * starting from the final value of the one before, with the next place in the sequence. Names the first file
 * that is bad, missing before it, out of order, or from another sequence. The first file may start after
 * file 1 (older files deleted by --max-files); nothing shows whether files follow the last one given.
 */
export async function verifySequence(
  paths: readonly string[],
  opts: { key?: Uint8Array } = {},
): Promise<SequenceResult> {
  let records = 0;
  let prev: { path: string; sequence: number; final: string } | null = null;
  let first = 1;
  const fail = (badFile: string, reason: string): SequenceResult => ({
    ok: false,
    files: paths.length,
    records,
    first,
    last: prev?.sequence ?? first,
    badFile,
    reason,
  });
  // where each file's seal says it stands: a gap filled by a file given later is that file out of order
  const places = await Promise.all(paths.map(async (p) => placeOf(await readSeal(sealPathOf(p)))));
  for (const [i, path] of paths.entries()) {
    const { result: r, link, final } = await checkLog(path, { key: opts.key, start: prev?.final });
    // a single file (no link in its seal) stands as file 1 of a sequence of its own
    const sequence: number = link?.sequence ?? (r.ok || prev === null ? 1 : prev.sequence + 1);
    if (prev !== null) {
      if (sequence <= prev.sequence)
        return fail(
          path,
          `out of order: it is file ${sequence} of its sequence, after file ${prev.sequence} (${prev.path})`,
        );
      if (sequence > prev.sequence + 1) {
        const j = places.findIndex((n, k) => k > i && n !== null && n > prev!.sequence && n < sequence);
        if (j >= 0)
          return fail(
            paths[j]!,
            `out of order: it is file ${places[j]} of its sequence, given after ${path} (file ${sequence})`,
          );
        const gap =
          sequence === prev.sequence + 2
            ? `file ${prev.sequence + 1} is`
            : `files ${prev.sequence + 1}–${sequence - 1} are`;
        return fail(path, `${gap} missing between ${prev.path} and it`);
      }
      if (link && link.previous !== prev.final)
        return fail(
          path,
          `it does not continue ${prev.path}: its chain starts from another value than that file's final one`,
        );
    } else {
      first = sequence;
    }
    if (!r.ok) return fail(path, formatVerifyResult(r));
    records += r.count;
    prev = { path, sequence, final: final ?? "" };
  }
  return {
    ok: true,
    files: paths.length,
    records,
    first,
    last: prev?.sequence ?? first,
    badFile: null,
    reason: null,
  };
}

/** A file's place in its sequence as its seal says (1 for a single file's seal), null without a seal. */
function placeOf(seal: SealState): number | null {
  return seal.kind === "present" ? (seal.seal.sequence ?? 1) : null;
}

/** `ok: 3 files, 1200 records, files 1–3 of one sequence, …` or `FAIL PATH: why`. */
export function formatSequenceResult(r: SequenceResult): string {
  if (!r.ok) return `FAIL ${r.badFile}: ${r.reason}`;
  const before = r.first > 1 ? ` (the ${r.first - 1} before it not given)` : "";
  return `ok: ${r.files} files, ${r.records} records, files ${r.first}–${r.last} of one sequence${before}, each chain intact, sealed and linked to the one before`;
}

/** Lines after a chain break that are searched for the line that really follows its predecessor. */
const LOOKAHEAD_LINES = 4096;
const CHAIN_PREFIX = new TextEncoder().encode(',"chain":"');
/** `,"chain":"` + 64 hex + `"}`: the fixed end of every line (without its newline). */
const CHAIN_SUFFIX_LEN = CHAIN_PREFIX.length + 64 + 2;
/** The keys raw_hash does not cover (as the writer's). */
const NOT_IN_RAW_HASH: readonly string[] = ["raw_hash", "chain", FORMAT_KEY, KEY_ID_KEY];

type SealState =
  | { kind: "missing" }
  | { kind: "damaged"; why: string }
  | { kind: "present"; seal: ChainSeal };

/**
 * Check a chained log and its seal: both hashes of every line (see writer.ts for the chain),
 * then the seal's mac, count and final value. Names the first bad line and why.
 * A missing or unreadable log is a usage error (CarnotError, exit 2).
 *
 * A file of a rotated sequence starts its chain from the previous file's final value: its seal says which
 * (`previous`); without a seal, `start` (the previous file's final value, when the caller has it) stands in.
 */
export async function verifyLog(path: string, opts: { key?: Uint8Array } = {}): Promise<VerifyResult> {
  return (await checkLog(path, opts)).result;
}

/** verifyLog, with where the file stands in its sequence. */
async function checkLog(path: string, opts: { key?: Uint8Array; start?: string }): Promise<LinkedResult> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new CarnotError(`cannot verify ${path}: is a directory`, { exitCode: 2 });
  } catch (err) {
    if (err instanceof CarnotError) throw err;
    throw new CarnotError(`cannot read ${path}: ${systemReason(err)}`, { exitCode: 2 });
  }
  const sealPath = sealPathOf(path);
  const seal = await readSeal(sealPath);
  const fail = (reason: string, count = 0): LinkedResult => ({
    result: { ok: false, count, firstBadLine: null, reason, sealed: false },
    link: null,
    final: null,
  });

  const sealed = seal.kind === "present" ? seal.seal : null;
  const first = await readFirstLine(path);
  const setup = chooseKeys(sealed, first === null ? null : markerOf(first), first, opts.key);
  if (typeof setup === "string") return fail(setup);
  const keys = setup;
  const link =
    sealed?.sequence === undefined ? null : { sequence: sealed.sequence, previous: sealed.previous ?? null };
  const startHex = sealed !== null ? (link?.previous ?? null) : (opts.start ?? null);
  const start = startHex === null ? keys.genesis : hexToWords(startHex);
  if (start === null) return fail(`not a chain value to start from: ${startHex}`);

  const walk = new ChainWalk(
    keys,
    sealed?.count ?? -1,
    start,
    startHex === null ? "the genesis" : "the previous file's final value",
  );
  // the pieces of a line that spans chunks, joined once its newline arrives (a long line is not re-copied per chunk)
  let carry: Uint8Array[] = [];
  for await (const chunk of Bun.file(path).stream()) {
    let start = 0;
    if (carry.length > 0) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        carry.push(chunk);
        continue;
      }
      carry.push(chunk.subarray(0, nl));
      walk.line(Buffer.concat(carry));
      carry = [];
      start = nl + 1;
    }
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      walk.line(chunk.subarray(start, nl));
      start = nl + 1;
    }
    if (start < chunk.length) carry.push(chunk.subarray(start));
  }
  const torn = carry.length > 0;
  if (torn) walk.tornLine();

  const lineFault = walk.firstFault(sealed);
  const count = walk.lines;
  const checkedAs = { format: keys.format, keyed: keys.keyId !== null };
  const linked = (result: VerifyResult): LinkedResult => ({ result, link, final: wordsToHex(walk.last) });
  const result = (firstBadLine: number | null, reason: string): LinkedResult =>
    linked({ ok: false, count, firstBadLine, reason, sealed: false, ...checkedAs });
  if (lineFault) return result(lineFault.line, lineFault.reason);
  if (torn) return result(count, "last line is cut off (no newline at the end)");
  if (seal.kind === "missing") {
    return result(
      null,
      `no seal ${sealPath}: the log is incomplete or its seal was removed (${count} records chain intact)`,
    );
  }
  if (seal.kind === "damaged") return result(null, `seal ${sealPath} is damaged: ${seal.why}`);
  const s = seal.seal;
  if (sealMac(s, keys) !== s.mac)
    return result(null, `seal ${sealPath} was tampered with: its mac does not match its content`);
  if (s.key_id === null && s.genesis !== keys.genesisHex) {
    return result(null, `seal ${sealPath} was tampered with: genesis is not ${CHAIN_FORMAT_V1}'s`);
  }
  if (count < s.count)
    return result(count + 1, `log cut off: the seal counts ${s.count} records, the file has ${count}`);
  if (count > s.count) {
    const appended = walk.atSealCount !== null && wordsToHex(walk.atSealCount) === s.final;
    return appended
      ? result(
          s.count + 1,
          `${count - s.count} line(s) appended after the sealed end (the seal counts ${s.count})`,
        )
      : result(s.count, `chain does not reach the seal's final value at record ${s.count}`);
  }
  if (wordsToHex(walk.last) !== s.final) return result(count, "chain does not end at the seal's final value");
  if (!s.complete) {
    return result(
      null,
      `log incomplete: the writer stopped early (${s.reason ?? "no reason given"}); ${count} records chain intact`,
    );
  }
  return linked({ ok: true, count, firstBadLine: null, reason: null, sealed: true, ...checkedAs });
}

/** What a v2 log's first line says of its chain; null for a line without `chain_format` (v1) or not JSON. */
interface ChainMarker {
  format: string;
  keyId: string | null;
}

function markerOf(line: Uint8Array): ChainMarker | null {
  let rec: unknown;
  try {
    rec = JSON.parse(new TextDecoder().decode(line));
  } catch {
    return null; // the walk says what is wrong with the line
  }
  if (rec === null || typeof rec !== "object" || !Object.hasOwn(rec, FORMAT_KEY)) return null;
  const o = rec as Record<string, unknown>;
  return { format: String(o[FORMAT_KEY]), keyId: typeof o[KEY_ID_KEY] === "string" ? o[KEY_ID_KEY] : null };
}

/**
 * The keys to check the log with, or why it cannot be checked. A log is keyed when its first line names
 * carnot.chain.v2 or its seal has a key_id (v1 logs written with a key before v2): without the key there
 * is nothing to vouch with; with the wrong one, its key_id says so. An unkeyed log given a key is refused.
 */
function chooseKeys(
  seal: ChainSeal | null,
  marker: ChainMarker | null,
  first: Uint8Array | null,
  key: Uint8Array | undefined,
): ChainKeys | string {
  if (marker !== null && marker.format !== CHAIN_FORMAT_V2)
    return `line 1 names an unknown chain format: ${marker.format}`;
  if (marker !== null && seal !== null && seal.format !== CHAIN_FORMAT_V2)
    return `line 1 names ${CHAIN_FORMAT_V2}, its seal ${seal.format}: one of them was replaced`;
  const format: ChainFormat = marker !== null ? CHAIN_FORMAT_V2 : (seal?.format ?? CHAIN_FORMAT_V1);
  const keyId = marker?.keyId ?? seal?.key_id ?? null;
  const keyed = format === CHAIN_FORMAT_V2 || keyId !== null;
  if (keyed && !key) {
    return `cannot vouch for this log without its key: it is keyed (${format}${keyId ? `, key_id ${keyId}` : ""}); pass its --key-file`;
  }
  if (!keyed && key) {
    // a sealed log says it is unkeyed; an unsealed one may be a v1 log written with a key, cut short
    const unkeyed = deriveChainKeys();
    if (seal !== null || (first !== null && chainsFrom(first, unkeyed)))
      return "the log is not keyed (written without a key), so --key-file cannot vouch for it";
  }
  const keys = deriveChainKeys(key, key ? format : CHAIN_FORMAT_V1);
  for (const [where, id] of [
    ["line 1", marker?.keyId],
    ["the seal", seal?.key_id],
  ] as const) {
    if (keyed && id && id !== keys.keyId)
      return `wrong key: its key_id is ${keys.keyId}, ${where} names ${id}`;
  }
  return keys;
}

/** True when `line`'s stored chain value is its first link under `keys`. */
function chainsFrom(line: Uint8Array, keys: ChainKeys): boolean {
  const walk = new ChainWalk(keys, -1);
  walk.line(line);
  return walk.firstFault(null) === null;
}

/** The file's first line (without its newline; all of it when it has none), or null for an empty file. */
async function readFirstLine(path: string): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = [];
  for await (const chunk of Bun.file(path).stream()) {
    const nl = chunk.indexOf(10);
    if (nl >= 0) {
      parts.push(chunk.subarray(0, nl));
      break;
    }
    parts.push(chunk);
  }
  const line = Buffer.concat(parts);
  return line.length === 0 && parts.length === 0 ? null : line;
}

async function readSeal(path: string): Promise<SealState> {
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    return { kind: "damaged", why: String((err as Error).message ?? err) };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: "damaged", why: "not valid JSON" };
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    return { kind: "damaged", why: "not a JSON object" };
  const o = v as Record<string, unknown>;
  const hex64 = (x: unknown) => typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
  const checks: [string, boolean][] = [
    ["format", o.format === CHAIN_FORMAT_V1 || o.format === CHAIN_FORMAT_V2],
    ["tool", typeof o.tool === "string"],
    ["count", Number.isSafeInteger(o.count) && (o.count as number) >= 0],
    ["genesis", o.genesis === null || hex64(o.genesis)],
    ["key_id", o.key_id === null || (typeof o.key_id === "string" && /^[0-9a-f]{16}$/.test(o.key_id))],
    ["final", hex64(o.final)],
    ["complete", typeof o.complete === "boolean"],
    ["reason", o.reason === null || typeof o.reason === "string"],
    ["created", typeof o.created === "string"],
    ["mac", hex64(o.mac)],
  ];
  // file 2, 3, … of a rotated sequence (file 1 has a single file's seal): both
  if (o.sequence !== undefined || o.previous !== undefined) {
    checks.push(
      ["sequence", Number.isSafeInteger(o.sequence) && (o.sequence as number) >= 2],
      ["previous", hex64(o.previous)],
    );
  }
  const bad = checks.find(([, good]) => !good);
  if (bad) return { kind: "damaged", why: `field ${bad[0]} is missing or invalid` };
  if ((o.genesis === null) === (o.key_id === null)) {
    return { kind: "damaged", why: "exactly one of genesis and key_id must be set" };
  }
  if (o.format === CHAIN_FORMAT_V2 && o.key_id === null)
    return { kind: "damaged", why: `a ${CHAIN_FORMAT_V2} seal without a key_id` };
  return { kind: "present", seal: o as unknown as ChainSeal };
}

/** Parse 64 lowercase hex ASCII bytes at bytes[off..] into 8 words; false if they are not that. */
function hexBytesToWords(bytes: Uint8Array, off: number, out: Uint32Array): boolean {
  for (let i = 0; i < 8; i++) {
    let w = 0;
    for (let j = 0; j < 4; j++) {
      const hi = nibble(bytes[off + 8 * i + 2 * j]!);
      const lo = nibble(bytes[off + 8 * i + 2 * j + 1]!);
      if ((hi | lo) < 0) return false;
      w |= ((hi << 4) | lo) << (8 * j);
    }
    out[i] = w;
  }
  return true;
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

interface ChainBreak {
  line: number;
  /** Stored chain of the line before (or the genesis). */
  before: Uint32Array;
  stored: Uint32Array;
  computed: Uint32Array;
  nextFromStored: boolean;
  nextFromComputed: boolean;
  /** First later line that chains from `before`: the line that really comes next. */
  resumesAt: number | null;
}

/** Line-by-line state of a verification; stops hashing at the first fault, but keeps counting lines. */
class ChainWalk {
  lines = 0;
  /** Stored chain value of the last line read (genesis before the first). */
  readonly last: Uint32Array;
  /** Stored chain value of line `sealCount` (null until reached). */
  atSealCount: Uint32Array | null = null;
  private fault: { line: number; reason: string } | null = null;
  private chainBreak: ChainBreak | null = null;
  private readonly hasher = new Blake3(8192);
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private readonly stored = new Uint32Array(8);
  /** v2: the link key, and the key of the link being checked */
  private readonly linkKey: Uint32Array | null;
  private readonly linkKeyNow = new Uint32Array(8);
  private readonly format: ChainFormat;

  constructor(
    keys: ChainKeys,
    private readonly sealCount: number,
    /** chain_0: the format's genesis, or the previous file's final value in a rotated sequence */
    start: Uint32Array = keys.genesis,
    /** what chain_0 is, in messages */
    private readonly startName = "the genesis",
  ) {
    this.last = new Uint32Array(start);
    this.linkKey = keys.linkKey;
    this.format = keys.format;
    if (sealCount === 0) this.atSealCount = new Uint32Array(start);
  }

  /** The key the line after `previous` is chained under (see LineSink). */
  private keyAfter(previous: Uint32Array): Uint32Array {
    return linkKeyOf(this.hasher, this.linkKey, previous, this.linkKeyNow);
  }

  line(bytes: Uint8Array): void {
    const n = ++this.lines;
    if (this.fault) return;
    if (this.chainBreak) {
      this.lookahead(bytes, n, this.chainBreak);
      return;
    }
    const why = this.checkLine(bytes);
    if (why !== null) {
      this.fault = { line: n, reason: why };
      return;
    }
    // checkLine left the computed chain in hasher.out and the stored one in this.stored
    const computed = this.hasher.out;
    if (!sameWords(computed, 0, this.stored, 0)) {
      this.chainBreak = {
        line: n,
        before: new Uint32Array(this.last),
        stored: new Uint32Array(this.stored),
        computed: new Uint32Array(computed),
        nextFromStored: false,
        nextFromComputed: false,
        resumesAt: null,
      };
      return;
    }
    this.last.set(this.stored);
    if (n === this.sealCount) this.atSealCount = new Uint32Array(this.stored);
  }

  tornLine(): void {
    this.lines++;
  }

  /** The first bad line and why, once every line has been read. */
  firstFault(seal: ChainSeal | null): { line: number; reason: string } | null {
    if (this.fault) return this.fault;
    const b = this.chainBreak;
    if (!b) return null;
    if (b.line === this.lines && seal) {
      // the last line: the seal's final value plays the part of the next line
      b.nextFromStored = wordsToHex(b.stored) === seal.final;
      b.nextFromComputed = wordsToHex(b.computed) === seal.final;
    }
    const delta = seal ? this.lines - seal.count : null;
    const prev = b.line === 1 ? this.startName : `line ${b.line - 1}`;
    let reason: string;
    if (b.nextFromComputed) {
      reason = "chain value edited: the record is intact but its chain key was changed";
    } else if (b.resumesAt !== null && b.resumesAt === b.line + 1 && (delta === null || delta > 0)) {
      reason = `line inserted: ${prev} and line ${b.line + 1} chain to each other`;
    } else if (b.resumesAt !== null) {
      reason = `lines reordered: line ${b.resumesAt} is the one that follows ${prev}`;
    } else if (b.nextFromStored && delta !== null && delta < 0) {
      reason = `line(s) deleted before this line: it does not follow ${prev} (the seal counts ${-delta} more records)`;
    } else if (b.nextFromStored && delta !== null) {
      reason = "record edited: its content is not what was chained";
    } else if (b.nextFromStored) {
      reason = `record edited, or line(s) before it deleted: it does not follow ${prev}`;
    } else {
      reason = `chain broken: a line was edited, inserted, deleted or reordered (does not follow ${prev})`;
    }
    if (b.line === 1 && !seal && this.format === CHAIN_FORMAT_V1)
      reason += "; or the key is wrong or missing";
    return { line: b.line, reason };
  }

  /**
   * Validate one line's form and raw_hash, and compute its chain value from `last`
   * (left in hasher.out; the stored value in this.stored). Returns why the line is bad, or null.
   */
  private checkLine(bytes: Uint8Array): string | null {
    const bodyLen = this.chainedBody(bytes);
    if (bodyLen < 0) return 'not a chained record: the line does not end with its "chain" value';
    let text: string;
    try {
      text = this.decoder.decode(bytes.subarray(0, bytes.length - CHAIN_SUFFIX_LEN));
    } catch {
      return "not valid UTF-8";
    }
    let rec: unknown;
    try {
      rec = JSON.parse(`${text}}`);
    } catch {
      return "not valid JSON";
    }
    if (rec === null || typeof rec !== "object" || Array.isArray(rec)) return "not a JSON object";
    const o = rec as Record<string, unknown>;
    if (Object.hasOwn(o, "chain")) return 'more than one "chain" key';
    if (typeof o.raw_hash !== "string") return "raw_hash is missing";
    if (this.lines === 1 && this.format === CHAIN_FORMAT_V2 && o[FORMAT_KEY] !== CHAIN_FORMAT_V2)
      return `the first line does not name its chain (${FORMAT_KEY}: ${CHAIN_FORMAT_V2}) as its seal does`;
    const h = this.hasher;
    // hash the body first: raw_hash below reuses the scratch buffer
    h.load(bytes.subarray(0, bodyLen));
    h.scratch[bodyLen - 1] = 125; // the body's closing "}"
    const chain = new Uint32Array(h.digest(bodyLen, this.keyAfter(this.last)));
    const raw = o.raw_line;
    const rawText = typeof raw === "string" ? raw : canonicalJson(o, NOT_IN_RAW_HASH);
    if (h.hexOfString(rawText) !== o.raw_hash) {
      return typeof raw === "string"
        ? "raw_hash does not match raw_line"
        : "raw_hash does not match the record";
    }
    h.out.set(chain);
    return null;
  }

  /** Length of the line's body (record JSON without its chain key, `}` included), or -1; fills this.stored. */
  private chainedBody(bytes: Uint8Array): number {
    const len = bytes.length;
    const at = len - CHAIN_SUFFIX_LEN;
    if (at < 1 || bytes[len - 1] !== 125 || bytes[len - 2] !== 34) return -1;
    for (let i = 0; i < CHAIN_PREFIX.length; i++) if (bytes[at + i] !== CHAIN_PREFIX[i]) return -1;
    if (!hexBytesToWords(bytes, at + CHAIN_PREFIX.length, this.stored)) return -1;
    return at + 1;
  }

  /** After a chain break: which earlier value do the following lines chain from? */
  private lookahead(bytes: Uint8Array, n: number, b: ChainBreak): void {
    if (n > b.line + LOOKAHEAD_LINES || b.resumesAt !== null) return;
    const bodyLen = this.chainedBody(bytes);
    if (bodyLen < 0) return;
    const h = this.hasher;
    const follows = (key: Uint32Array): boolean => {
      h.load(bytes.subarray(0, bodyLen));
      h.scratch[bodyLen - 1] = 125;
      return sameWords(h.digest(bodyLen, this.keyAfter(key)), 0, this.stored, 0);
    };
    if (n === b.line + 1) {
      b.nextFromStored = follows(b.stored);
      b.nextFromComputed = follows(b.computed);
    }
    if (follows(b.before)) b.resumesAt = n;
  }
}
