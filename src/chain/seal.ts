import { Blake3, wordsToHex } from "./blake3.ts";
import { canonicalJson } from "./canonical.ts";
import type { ChainFormat, ChainKeys } from "./keys.ts";

/** FILE.seal.json: written (atomically) only when the writer closes or aborts. */
export interface ChainSeal {
  /** carnot.chain.v1 (unkeyed) or carnot.chain.v2 (keyed) */
  format: ChainFormat;
  /** Program and version that wrote the log. */
  tool: string;
  /** Number of records (lines) in the log. */
  count: number;
  /** chain_0 as hex; null when it is secret (written with --key-file). */
  genesis: string | null;
  /** Fingerprint of the secret key, null without one. */
  key_id: string | null;
  /**
   * Only in a file of a rotated sequence (`carnot trace --rotate-*`): its place in the sequence, from 1. A
   * single file has neither this nor `previous`, so its seal is what it always was.
   */
  sequence?: number;
  /** The previous file's final chain value, which this file's chain starts from; null in file 1. */
  previous?: string | null;
  /** Chain value of the last record (the genesis when the log is empty). */
  final: string;
  /** false when the writer stopped on an error: the log holds whole lines but not all of them. */
  complete: boolean;
  /** Why the log is incomplete; null when complete. */
  reason: string | null;
  /** RFC 3339 UTC time the seal was written (SOURCE_DATE_EPOCH when set, for reproducible output). */
  created: string;
  /** blake3_keyed(seal key, canonical JSON of the other fields): catches an edited seal. */
  mac: string;
}

/** The seal's path for a log. */
export function sealPathOf(logPath: string): string {
  return `${logPath}.seal.json`;
}

/** The mac over every field but `mac`, in canonical key order. */
export function sealMac(seal: Omit<ChainSeal, "mac"> | Record<string, unknown>, keys: ChainKeys): string {
  const h = new Blake3(512);
  return wordsToHex(h.digest(h.encode(canonicalJson(seal, ["mac"])), keys.sealKey));
}

/** Where a file of a rotated sequence stands in it (see ChainSeal). */
export interface ChainLink {
  sequence: number;
  previous: string | null;
}

/** Build a seal with its mac. */
export function buildSeal(
  fields: {
    tool: string;
    count: number;
    final: string;
    complete: boolean;
    reason: string | null;
    created: string;
    link?: ChainLink | null;
  },
  keys: ChainKeys,
): ChainSeal {
  const link = fields.link ? { sequence: fields.link.sequence, previous: fields.link.previous } : {};
  const body = {
    format: keys.format,
    tool: fields.tool,
    count: fields.count,
    genesis: keys.keyId === null ? keys.genesisHex : null,
    key_id: keys.keyId,
    ...link,
    final: fields.final,
    complete: fields.complete,
    reason: fields.reason,
    created: fields.created,
  } as const;
  return { ...body, mac: sealMac(body, keys) };
}

/** Creation time: SOURCE_DATE_EPOCH (seconds) when set, else now. */
export function sealTime(env: Record<string, string | undefined> = process.env): string {
  const epoch = env.SOURCE_DATE_EPOCH;
  const ms = epoch && /^\d+$/.test(epoch) ? Number(epoch) * 1000 : Date.now();
  return new Date(ms).toISOString();
}
