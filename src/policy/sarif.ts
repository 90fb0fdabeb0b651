/** A policy result as SARIF 2.1.0, for code-scanning dashboards; locations point into the BOM file. */
import type { Log, ReportingDescriptor, Result } from "sarif";
import { VERSION } from "../version.ts";
import { type Finding, type PolicyResult, RULES, type Severity } from "./rules.ts";

const LEVEL: Record<Severity, Result.level> = {
  critical: "error",
  high: "error",
  medium: "warning",
  low: "note",
};
// GitHub code scanning reads `security-severity` (0–10) to rank alerts.
const SECURITY_SEVERITY: Record<Severity, string> = {
  critical: "9.5",
  high: "8.0",
  medium: "5.5",
  low: "3.0",
};

const pascal = (id: string): string => id.replace(/(^|_)([a-z])/g, (_m, _s, c: string) => c.toUpperCase());

/** 1-based line of the record in the pretty-printed BOM, so a dashboard can open it; 1 when not found. */
export function lineOf(bomText: string, finding: Finding): number {
  let at = -1;
  if (finding.subject.kind === "asset") {
    const assetsAt = bomText.indexOf('"assets": [');
    if (assetsAt >= 0) at = bomText.indexOf(`"asset_id": ${JSON.stringify(finding.subject.ref)}`, assetsAt);
  } else if (finding.records[0]) {
    at = bomText.indexOf(`"bom_ref": ${JSON.stringify(finding.records[0])}`);
  }
  if (at < 0) return 1;
  let line = 1;
  for (let i = 0; i < at; i++) if (bomText.charCodeAt(i) === 10) line++;
  return line;
}

export function toSarif(result: PolicyResult, bomText: string, artifactUri: string): Log {
  const rules: ReportingDescriptor[] = RULES.map((r) => ({
    id: r.id,
    name: pascal(r.id),
    shortDescription: { text: r.title },
    fullDescription: { text: r.description },
    help: { text: r.remediation },
    defaultConfiguration: { level: LEVEL[r.severity] },
    properties: {
      "security-severity": SECURITY_SEVERITY[r.severity],
      tags: ["security", "cryptography", "post-quantum"],
    },
  }));
  const results: Result[] = result.findings.map((f) => ({
    ruleId: f.rule_id,
    ruleIndex: RULES.findIndex((r) => r.id === f.rule_id),
    level: LEVEL[f.severity],
    message: { text: `${f.message}. ${RULES.find((r) => r.id === f.rule_id)?.remediation ?? ""}`.trim() },
    locations: [
      {
        physicalLocation: {
          artifactLocation: { uri: artifactUri },
          region: { startLine: lineOf(bomText, f) },
        },
        logicalLocations: [{ name: f.subject.ref, kind: f.subject.kind === "asset" ? "asset" : "endpoint" }],
      },
    ],
    partialFingerprints: { "carnotFinding/v1": f.id },
    properties: { severity: f.severity, count: f.count, records: f.records },
  }));
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: { driver: { name: "carnot", version: VERSION, semanticVersion: VERSION, rules } },
        artifacts: [{ location: { uri: artifactUri } }],
        results,
        properties: { run_id: result.run_id, status: result.status },
      },
    ],
  };
}

/** One line per finding, most severe first, then the verdict. */
export function formatPolicyText(result: PolicyResult): string {
  const lines = result.findings.map(
    (f) => `${f.severity.toUpperCase().padEnd(8)} ${f.rule_id.padEnd(22)} ${f.message}`,
  );
  const s = result.summary.by_severity;
  lines.push(
    `${result.status === "pass" ? "PASS" : "VIOLATIONS"}: ${result.summary.findings} finding(s) over ${result.summary.records} record(s) ` +
      `(critical ${s.critical}, high ${s.high}, medium ${s.medium}, low ${s.low}); ` +
      `${result.summary.observations_checked} observation(s), ${result.summary.assets_checked} asset(s) checked`,
  );
  if (result.findings.length) {
    lines.push("", "Remediation:");
    for (const r of result.rules) if (r.findings) lines.push(`  ${r.id}: ${r.remediation}`);
  }
  return `${lines.join("\n")}\n`;
}
