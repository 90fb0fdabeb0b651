import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { defineCommand } from "citty";
import { type Attestation, AttestationSchema } from "../attest/attestation.ts";
import { DEFAULT_CRQC_YEAR, DEFAULT_MIGRATION_YEARS } from "../attest/hndl.ts";
import { hndlParameters } from "../attest/parameters.ts";
import { attestationReports } from "../attest/report.ts";
import { loadEd25519PrivateKey, sha256Hex, verifyAttestation } from "../attest/sign.ts";
import { readJsonDocument } from "../bom/read.ts";
import { CarnotError, systemReason } from "../errors.ts";
import { writeStdout, writeTextOutput } from "../io/output.ts";
import { expandInputs } from "../io/input-files.ts";
import { log } from "../log.ts";
import { readBomInputs, sha256sumListing } from "../merge/inputs.ts";
import { evaluatePolicy, PolicyResultSchema } from "../policy/rules.ts";
import {
  commonArgs,
  maxObservationsArgs,
  maxObservationsOf,
  positionalWords,
  symlinkArgs,
} from "./shared.ts";

/** `-o reports/attestation` → reports/attestation.{json,md,html}; a directory gets attestation.* inside. */
function outputPrefix(output: string): string {
  const isDir = output.endsWith("/") || (existsSync(output) && statSync(output).isDirectory());
  const prefix = isDir ? join(output, "attestation") : output.replace(/\.json$/, "");
  if (!existsSync(dirname(prefix)))
    throw new CarnotError(`${dirname(prefix)}: output directory does not exist`);
  return prefix;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Bun.file(path).text();
  } catch (err) {
    throw new CarnotError(`${path}: cannot read ${what}: ${systemReason(err)}`);
  }
}

/** `carnot attest verify FILE`: the signature, and the files it covers as they are now. */
const verifyCommand = defineCommand({
  meta: {
    name: "verify",
    description: "Check an attestation's Ed25519 signature and the Markdown and HTML files it covers",
  },
  args: {
    ...commonArgs,
    file: { type: "positional", required: true, description: "attestation.json to check", valueHint: "FILE" },
    "public-key": {
      type: "string",
      description: "The Ed25519 public key (PEM) expected (default: the key embedded in the file)",
      valueHint: "FILE",
    },
  },
  async run({ args }) {
    const file = args.file;
    const attestation: Attestation = await readJsonDocument(file, AttestationSchema, "attestation");
    const dir = dirname(file);
    const current: Record<string, string | null> = {};
    for (const name of Object.keys(attestation.signature?.signed_files ?? {})) {
      const path = join(dir, name);
      current[name] = existsSync(path) ? sha256Hex(new Uint8Array(await Bun.file(path).arrayBuffer())) : null;
    }
    const publicKeyPath = args["public-key"];
    const pinned = publicKeyPath ? await readText(publicKeyPath, "public key") : undefined;
    const outcome = verifyAttestation(attestation, current, pinned);
    if (!outcome.ok) throw new CarnotError(`${file}: verification failed: ${outcome.reason}`);
    const files = Object.keys(attestation.signature?.signed_files ?? {}).join(", ");
    writeStdout(
      `${file}: signature valid (Ed25519, key ${outcome.keyId}; covers ${basename(file)}, ${files})\n`,
    );
    if (!pinned)
      log.warn("no --public-key given: the signature is checked against the key embedded in the file");
  },
});

export default defineCommand({
  meta: {
    name: "attest",
    description:
      "CryptoBOM → signed post-quantum attestation (JSON, Markdown, HTML); `attest verify FILE` checks one",
  },
  args: {
    ...commonArgs,
    input: {
      type: "positional",
      required: true,
      description:
        "merged CryptoBOM (from `carnot merge`); several files or quoted patterns are merged first",
      valueHint: "FILE…",
    },
    output: {
      type: "string",
      alias: ["o"],
      description: "Output path prefix: writes PREFIX.json, .md, .html",
      default: "attestation",
      valueHint: "PREFIX",
    },
    ...symlinkArgs,
    policy: {
      type: "string",
      description: "policy result (JSON) to include instead of evaluating",
      valueHint: "FILE",
    },
    key: { type: "string", description: "Ed25519 private key (PEM) to sign with", valueHint: "FILE" },
    "crqc-year": {
      type: "string",
      description: `Year a CRQC is assumed (default ${DEFAULT_CRQC_YEAR})`,
      valueHint: "YEAR",
    },
    "crqc-source": { type: "string", description: "Where the CRQC year comes from (shown in the report)" },
    "migration-years": {
      type: "string",
      description: `Years the migration takes (default ${DEFAULT_MIGRATION_YEARS})`,
      valueHint: "N",
    },
    "as-of": {
      type: "string",
      description: "Year for records without a time (default: newest record's)",
      valueHint: "YEAR",
    },
    ...maxObservationsArgs,
  },
  subCommands: { verify: verifyCommand },
  async run({ args }) {
    const prefix = outputPrefix(args.output);
    let key: ReturnType<typeof loadEd25519PrivateKey> | undefined;
    if (args.key) {
      const pem = await readText(args.key, "signing key");
      try {
        key = loadEd25519PrivateKey(pem);
      } catch (err) {
        throw new CarnotError(`${args.key}: ${(err as Error).message}`, { exitCode: 2 });
      }
    }

    const words = positionalWords(args, args.input);
    const inputs = readBomInputs(expandInputs(words), words, maxObservationsOf(args["max-observations"]));
    const { bom, label } = inputs;
    let policy = evaluatePolicy(bom, { input: label, enforce: false });
    let policySource = "evaluated by attest";
    if (args.policy) {
      policy = await readJsonDocument(args.policy, PolicyResultSchema, "policy result");
      if (policy.run_id !== bom.run_id) {
        throw new CarnotError(
          `${args.policy}: policy result is for run ${policy.run_id}, the BOM is run ${bom.run_id}`,
        );
      }
      policySource = args.policy;
    }
    const parameters = hndlParameters(
      {
        crqcYear: args["crqc-year"],
        crqcSource: args["crqc-source"],
        migrationYears: args["migration-years"],
        asOf: args["as-of"],
      },
      {
        crqcYear: "--crqc-year",
        crqcSource: "--crqc-source",
        migrationYears: "--migration-years",
        asOf: "--as-of",
      },
      bom,
      new Date().getUTCFullYear(),
    );
    const { attestation, json, md, html } = attestationReports({
      bom,
      file: label,
      // several inputs: their sha256sum listing, whose digest `sha256sum FILE… | sha256sum` gives again
      bomText: inputs.text ?? sha256sumListing(inputs.files),
      inputs: inputs.text === null ? inputs.files : undefined,
      policy,
      policySource,
      parameters,
      name: basename(prefix),
      key,
    });
    const write = { followSymlinks: args["follow-symlinks"] };
    writeTextOutput(`${prefix}.md`, md, write);
    writeTextOutput(`${prefix}.html`, html, write);
    // The JSON (with the signature over the other two) is written last: present means complete.
    writeTextOutput(`${prefix}.json`, json, write);
    writeStdout(`${prefix}.json\n${prefix}.md\n${prefix}.html\n`);
    const m = attestation.metrics;
    log.info(
      `attest: ${m.handshakes_successful} successful handshake(s), ${m.hndl_exposed} HNDL-exposed, policy ${attestation.policy.status}` +
        `${key ? `, signed by ${attestation.signature?.key_id}` : ""}`,
    );
  },
});
