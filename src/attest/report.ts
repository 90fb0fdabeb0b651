/**
 * The three reports of one attestation — JSON, Markdown, HTML — built, checked against the schema and,
 * with a key, signed together. Shared by `carnot attest` (files) and `carnot serve` (responses). Pure.
 */
import type { KeyObject } from "node:crypto";
import * as v from "valibot";
import type { CryptoBom } from "../bom/cryptobom.ts";
import { describeIssues } from "../bom/observation.ts";
import { formatJson } from "../bom/read.ts";
import type { PolicyResult } from "../policy/rules.ts";
import { type Attestation, AttestationSchema, buildAttestation } from "./attestation.ts";
import type { HndlParameters } from "./hndl.ts";
import { renderHtml, renderMarkdown } from "./render.ts";
import { sha256Hex, signAttestation } from "./sign.ts";

export interface ReportInput {
  bom: CryptoBom;
  /** what the BOM is called in the attestation's subject (a path, or the request) */
  file: string;
  /** the BOM's bytes as received, for the subject's digest */
  bomText: string;
  /** several BOMs merged: each file and its digest (then `bomText` is their sha256sum listing) */
  inputs?: { file: string; sha256: string }[];
  policy: PolicyResult;
  policySource: string;
  parameters: HndlParameters;
  /** names the signed files: NAME.md and NAME.html */
  name: string;
  key?: KeyObject;
}

export interface AttestationReports {
  attestation: Attestation;
  json: string;
  md: string;
  html: string;
}

export function attestationReports(input: ReportInput): AttestationReports {
  const body = buildAttestation({
    bom: input.bom,
    file: input.file,
    sha256: sha256Hex(input.bomText),
    inputs: input.inputs,
    policy: input.policy,
    policySource: input.policySource,
    parameters: input.parameters,
  });
  const check = v.safeParse(AttestationSchema, body);
  if (!check.success)
    throw new Error(`internal: attestation does not match its schema: ${describeIssues(check.issues)}`);
  const md = renderMarkdown(body);
  const html = renderHtml(body);
  const files = { [`${input.name}.md`]: sha256Hex(md), [`${input.name}.html`]: sha256Hex(html) };
  const attestation = input.key ? signAttestation(body, files, input.key) : body;
  return { attestation, json: formatJson(attestation), md, html };
}
