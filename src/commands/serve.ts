import { createPublicKey } from "node:crypto";
import { defineCommand } from "citty";
import { loadEd25519PrivateKey } from "../attest/sign.ts";
import { CarnotError, systemReason } from "../errors.ts";
import { writeStderr } from "../io/output.ts";
import { log } from "../log.ts";
import { createAnswerer } from "../serve/offload.ts";
import { parseAddress, startServer } from "../serve/server.ts";
import { commonArgs } from "./shared.ts";

const DEFAULT_MAX_BODY = "16MiB";

/** `16MiB`, `512KiB`, `1000000` → bytes. */
function parseSize(raw: string): number | null {
  const m = /^(\d+)\s*(B|KiB|MiB)?$/i.exec(raw.trim());
  if (!m) return null;
  const unit = { b: 1, kib: 1024, mib: 1024 * 1024 }[(m[2] ?? "b").toLowerCase()] ?? 1;
  const n = Number(m[1]) * unit;
  return n >= 1024 && n <= 1024 * 1024 * 1024 ? n : null;
}

async function loadKey(path: string): Promise<{ keyPem: string; publicKeyPem: string }> {
  let pem: string;
  try {
    pem = await Bun.file(path).text();
  } catch (err) {
    throw new CarnotError(`${path}: cannot read signing key: ${systemReason(err)}`, { exitCode: 2 });
  }
  try {
    const key = loadEd25519PrivateKey(pem);
    return {
      keyPem: pem,
      publicKeyPem: createPublicKey(key).export({ type: "spki", format: "pem" }).toString(),
    };
  } catch (err) {
    throw new CarnotError(`${path}: ${(err as Error).message}`, { exitCode: 2 });
  }
}

export default defineCommand({
  meta: {
    name: "serve",
    description: "HTTP API: POST /attest (signed attestation), POST /policy (JSON or SARIF), GET /healthz",
  },
  args: {
    ...commonArgs,
    addr: {
      type: "string",
      description: "Address to listen on",
      default: "127.0.0.1:8080",
      valueHint: "HOST:PORT",
    },
    key: {
      type: "string",
      description: "Ed25519 private key (PEM): every attestation is signed",
      valueHint: "FILE",
    },
    "max-body": {
      type: "string",
      description: `Largest request body accepted, e.g. 512KiB (default ${DEFAULT_MAX_BODY})`,
      default: DEFAULT_MAX_BODY,
      valueHint: "SIZE",
    },
  },
  async run({ args }) {
    const address = parseAddress(args.addr);
    if (!address)
      throw new CarnotError(`--addr must be HOST:PORT, [IPv6]:PORT or :PORT, not '${args.addr}'`, {
        exitCode: 2,
      });
    const maxBodyBytes = parseSize(args["max-body"]);
    if (maxBodyBytes === null)
      throw new CarnotError(
        `--max-body must be a size from 1KiB to 1024MiB (B, KiB, MiB), not '${args["max-body"]}'`,
        {
          exitCode: 2,
        },
      );
    const signing = args.key ? await loadKey(args.key) : undefined;
    // taken before the address is announced: a signal right after it stops the server cleanly
    const stopped = Promise.withResolvers<void>();
    const stop = () => stopped.resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    let server: ReturnType<typeof startServer>;
    try {
      server = startServer(address, {
        maxBodyBytes,
        keyPem: signing?.keyPem,
        publicKeyPem: signing?.publicKeyPem,
        answer: createAnswerer(),
      });
    } catch (err) {
      throw new CarnotError(`cannot listen on ${args.addr}: ${systemReason(err)}`);
    }
    // the address goes out as one plain line, so a script can read the port it got for :0
    writeStderr(`carnot serve: listening on ${server.url}\n`);
    if (!signing) log.warn("no --key: attestations are not signed");
    await stopped.promise;
    await server.stop();
    writeStderr("carnot serve: stopped\n");
  },
});
