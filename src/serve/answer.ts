/**
 * What the API answers for one document: the attestation or the policy result in the media type asked for.
 * Pure and self-contained (text and settings in, an answer out), so it runs the same on the server's thread
 * and in a worker thread (src/serve/worker.ts).
 */
import { hndlParameters } from "../attest/parameters.ts";
import { RENDER_CHECK_SOURCE } from "../attest/render.ts";
import { attestationReports } from "../attest/report.ts";
import { loadEd25519PrivateKey } from "../attest/sign.ts";
import { formatJson, parseAnyBom } from "../bom/read.ts";
import { describeError } from "../errors.ts";
import { evaluatePolicy } from "../policy/rules.ts";
import { formatPolicyText, toSarif } from "../policy/sarif.ts";

/** What the request body is called in messages and in the attestation's subject. */
export const BODY = "request body";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface Answer {
  status: number;
  type: string;
  body: string;
  headers: Record<string, string>;
}

export type Job =
  | {
      endpoint: "attest";
      text: string;
      type: string;
      /** crqc_year, crqc_source, migration_years, as_of as given in the query */
      query: Record<string, string | undefined>;
      /** the signing key (PEM): a KeyObject does not cross to a worker */
      keyPem?: string;
    }
  | { endpoint: "policy"; text: string; type: string; enforce: boolean };

export const QUERY_NAMES = {
  crqcYear: "crqc_year",
  crqcSource: "crqc_source",
  migrationYears: "migration_years",
  asOf: "as_of",
} as const;

export const errorAnswer = (e: HttpError): Answer => ({
  status: e.status,
  type: "application/json",
  body: `${JSON.stringify({ error: e.message })}\n`,
  headers: e.headers,
});

/** Runs anything as a 400 when it fails on the client's input (the library's one-line errors). */
function clientInput<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw new HttpError(400, describeError(err));
  }
}

function attest(job: Extract<Job, { endpoint: "attest" }>): Answer {
  const bom = clientInput(() => parseAnyBom(BODY, job.text));
  const q = job.query;
  const parameters = clientInput(() =>
    hndlParameters(
      {
        crqcYear: q[QUERY_NAMES.crqcYear],
        crqcSource: q[QUERY_NAMES.crqcSource],
        migrationYears: q[QUERY_NAMES.migrationYears],
        asOf: q[QUERY_NAMES.asOf],
      },
      QUERY_NAMES,
      bom,
      new Date().getUTCFullYear(),
    ),
  );
  const reports = attestationReports({
    bom,
    file: BODY,
    bomText: job.text,
    policy: evaluatePolicy(bom, { input: BODY, enforce: false }),
    policySource: "evaluated by carnot serve",
    parameters,
    name: "attestation",
    key: job.keyPem ? loadEd25519PrivateKey(job.keyPem) : undefined,
  });
  const sig = reports.attestation.signature;
  const headers: Record<string, string> = sig ? { "carnot-signed-by": sig.key_id } : {};
  if (job.type === "text/html") {
    // the page is self-contained: its styles and its one script, nothing from anywhere else
    headers["content-security-policy"] =
      `default-src 'none'; style-src 'unsafe-inline'; script-src ${RENDER_CHECK_SOURCE}`;
    return { status: 200, type: "text/html; charset=utf-8", body: reports.html, headers };
  }
  if (job.type === "text/markdown")
    return { status: 200, type: "text/markdown; charset=utf-8", body: reports.md, headers };
  return { status: 200, type: "application/json", body: reports.json, headers };
}

function policy(job: Extract<Job, { endpoint: "policy" }>): Answer {
  const bom = clientInput(() => parseAnyBom(BODY, job.text));
  const result = evaluatePolicy(bom, { input: BODY, enforce: job.enforce });
  if (job.type === "application/sarif+json")
    return {
      status: 200,
      type: "application/sarif+json",
      body: formatJson(toSarif(result, job.text, "request.json")),
      headers: {},
    };
  if (job.type === "text/plain")
    return { status: 200, type: "text/plain; charset=utf-8", body: formatPolicyText(result), headers: {} };
  return { status: 200, type: "application/json", body: formatJson(result), headers: {} };
}

/** One job's answer; never throws (an unexpected failure is a 500 with one line). */
export function answer(job: Job): Answer {
  try {
    return job.endpoint === "attest" ? attest(job) : policy(job);
  } catch (err) {
    if (err instanceof HttpError) return errorAnswer(err);
    return errorAnswer(new HttpError(500, `internal error: ${describeError(err)}`));
  }
}
