import { readFile } from "node:fs/promises";
import { CarnotError, systemReason } from "../errors.ts";
import { Blake3, wordsToHex } from "./blake3.ts";

/** The chain of an unkeyed log (and of keyed logs before v2): chain_i = blake3_keyed(chain_{i-1}, line). */
export const CHAIN_FORMAT_V1 = "carnot.chain.v1";
/** The chain of a keyed log: every link is a MAC under a key derived from the secret and the previous link. */
export const CHAIN_FORMAT_V2 = "carnot.chain.v2";
export type ChainFormat = typeof CHAIN_FORMAT_V1 | typeof CHAIN_FORMAT_V2;
/** Record keys that name the format and the key on a v2 log's first line (covered by its chain, not by raw_hash). */
export const FORMAT_KEY = "chain_format";
export const KEY_ID_KEY = "chain_key_id";
/** A key file must hold at least this many bytes (its bytes are hashed, so longer files are fine). */
export const MIN_KEY_BYTES = 32;

/** Everything derived from the (optional) secret that the writer and the verifier need. */
export interface ChainKeys {
  format: ChainFormat;
  /** chain_0, 8 little-endian words. */
  genesis: Uint32Array;
  /** chain_0 as hex — published in the seal only when there is no secret. */
  genesisHex: string;
  /** Fingerprint of the secret (16 hex), null without one: lets verify say "wrong key". */
  keyId: string | null;
  /** Key of the seal's mac. */
  sealKey: Uint32Array;
  /** v2: the key of every link's key, k_i = blake3_keyed(linkKey, chain_{i-1}); null in v1. */
  linkKey: Uint32Array | null;
}

/**
 * Derive the chain's genesis, key id, seal key and (v2) link key, every one domain-separated by the format's
 * name. Without a secret they are public constants (v1); with one, keyed hashes under blake3(secret), so nobody
 * without the key file can recompute a link or a seal. A keyed log is written in v2; `format` v1 with a
 * secret only reads logs written before it.
 */
export function deriveChainKeys(secret?: Uint8Array, format?: ChainFormat): ChainKeys {
  const fmt = format ?? (secret ? CHAIN_FORMAT_V2 : CHAIN_FORMAT_V1);
  const h = new Blake3(256);
  const label = (name: string, key?: Uint32Array): Uint32Array =>
    new Uint32Array(h.digest(h.encode(`${fmt} ${name}`), key));
  if (!secret) {
    if (fmt !== CHAIN_FORMAT_V1) throw new Error(`${fmt} needs a key`);
    const genesis = label("genesis");
    return {
      format: fmt,
      genesis,
      genesisHex: wordsToHex(genesis),
      keyId: null,
      sealKey: label("seal"),
      linkKey: null,
    };
  }
  const master = new Uint32Array(h.digest(h.load(secret)));
  const genesis = label("genesis", master);
  return {
    format: fmt,
    genesis,
    genesisHex: wordsToHex(genesis),
    keyId: wordsToHex(label("key-id", master)).slice(0, 16),
    sealKey: label("seal", master),
    linkKey: fmt === CHAIN_FORMAT_V2 ? label("link", master) : null,
  };
}

/** Read a `--key-file`: its bytes, exactly. Missing, unreadable or too short is a usage error (exit 2). */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    throw new CarnotError(`cannot read key file ${path}: ${systemReason(err)}`, { exitCode: 2 });
  }
  if (bytes.length < MIN_KEY_BYTES) {
    throw new CarnotError(
      `key file ${path} is too short: ${bytes.length} bytes, need at least ${MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom > ${path})`,
      { exitCode: 2 },
    );
  }
  return bytes;
}
