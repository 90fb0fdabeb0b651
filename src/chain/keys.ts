import { readFile } from "node:fs/promises";
import { CarnotError } from "../errors.ts";
import { Blake3, wordsToHex } from "./blake3.ts";

/** Chain format identifier, also the domain separator of every derived value. */
export const CHAIN_FORMAT = "carnot.chain.v1";
/** A key file must hold at least this many bytes (its bytes are hashed, so longer files are fine). */
export const MIN_KEY_BYTES = 32;

/** Everything derived from the (optional) secret that the writer and the verifier need. */
export interface ChainKeys {
  /** chain_0, 8 little-endian words. */
  genesis: Uint32Array;
  /** chain_0 as hex — published in the seal only when there is no secret. */
  genesisHex: string;
  /** Fingerprint of the secret (16 hex), null without one: lets verify say "wrong key". */
  keyId: string | null;
  /** Key of the seal's mac. */
  sealKey: Uint32Array;
}

/**
 * Derive the chain's genesis, key id and seal key. Without a secret they are public constants
 * (blake3 of domain-separated labels); with one, keyed hashes under blake3(secret), so nobody
 * without the key file can recompute a chain or a seal.
 */
export function deriveChainKeys(secret?: Uint8Array): ChainKeys {
  const h = new Blake3(256);
  const label = (name: string, key?: Uint32Array): Uint32Array =>
    new Uint32Array(h.digest(h.encode(`${CHAIN_FORMAT} ${name}`), key));
  if (!secret) {
    const genesis = label("genesis");
    return { genesis, genesisHex: wordsToHex(genesis), keyId: null, sealKey: label("seal") };
  }
  const master = new Uint32Array(h.digest(h.load(secret)));
  const genesis = label("genesis", master);
  return {
    genesis,
    genesisHex: wordsToHex(genesis),
    keyId: wordsToHex(label("key-id", master)).slice(0, 16),
    sealKey: label("seal", master),
  };
}

/** Read a `--key-file`: its bytes, exactly. Missing, unreadable or too short is a usage error (exit 2). */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (code ?? String(err));
    throw new CarnotError(`cannot read key file ${path}: ${why}`, { exitCode: 2 });
  }
  if (bytes.length < MIN_KEY_BYTES) {
    throw new CarnotError(
      `key file ${path} is too short: ${bytes.length} bytes, need at least ${MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom > ${path})`,
      { exitCode: 2 },
    );
  }
  return bytes;
}
