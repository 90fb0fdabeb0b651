/**
 * attestation.md and a self-contained attestation.html (inline CSS and SVG, no network) from the
 * attestation data. Every figure on the page carries a `data-metric` attribute naming its JSON path,
 * so a test can compare the rendered page with attestation.json.
 */
import { createHash } from "node:crypto";
import type { Attestation } from "./attestation.ts";
import type { Sankey } from "./hndl.ts";

const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const fmt = (n: number): string => String(n);

/** SVG Sankey: three columns, band widths proportional to the counts. */
export function sankeySvg(sankey: Sankey, width = 860, height = 320): string {
  const pad = 12;
  const nodeWidth = 14;
  const columns = [0, 1, 2].map((c) => sankey.nodes.filter((n) => n.column === c));
  const maxTotal = Math.max(1, ...columns.map((col) => col.reduce((s, n) => s + n.value, 0)));
  const maxGaps = Math.max(0, ...columns.map((col) => col.length - 1));
  const scale = (height - 2 * pad - maxGaps * pad) / maxTotal;
  const x = (c: number): number => 10 + c * ((width - 260 - nodeWidth) / 2);
  const pos = new Map<string, { x: number; y: number; h: number; out: number; in: number }>();
  for (const col of columns) {
    let y = pad;
    for (const n of col) {
      const h = Math.max(1, n.value * scale);
      pos.set(n.id, { x: x(n.column), y, h, out: 0, in: 0 });
      y += h + pad;
    }
  }
  const colours: Record<string, string> = {
    handshakes: "#4a6fa5",
    long_secrecy: "#b5651d",
    other_secrecy: "#7a8b99",
    hndl_exposed: "#c0392b",
    protected: "#27ae60",
    classical_short: "#95a5a6",
    unknown_kex: "#8e44ad",
  };
  const parts: string[] = [];
  for (const l of sankey.links) {
    const s = pos.get(l.source);
    const t = pos.get(l.target);
    if (!s || !t) continue;
    const w = Math.max(1, l.value * scale);
    const y0 = s.y + s.out + w / 2;
    const y1 = t.y + t.in + w / 2;
    s.out += w;
    t.in += w;
    const x0 = s.x + nodeWidth;
    const x1 = t.x;
    const xm = (x0 + x1) / 2;
    parts.push(
      `<path class="link" data-link="${l.source}>${l.target}" data-value="${l.value}" d="M${x0.toFixed(1)},${y0.toFixed(1)} ` +
        `C${xm.toFixed(1)},${y0.toFixed(1)} ${xm.toFixed(1)},${y1.toFixed(1)} ${x1.toFixed(1)},${y1.toFixed(1)}" ` +
        `stroke="${colours[l.target] ?? "#888"}" stroke-opacity="0.45" stroke-width="${w.toFixed(1)}" fill="none">` +
        `<title>${escapeHtml(`${l.source} → ${l.target}: ${l.value}`)}</title></path>`,
    );
  }
  for (const n of sankey.nodes) {
    const p = pos.get(n.id)!;
    parts.push(
      `<rect class="node" data-node="${n.id}" x="${p.x.toFixed(1)}" y="${p.y.toFixed(1)}" width="${nodeWidth}" ` +
        `height="${p.h.toFixed(1)}" fill="${colours[n.id] ?? "#888"}"/>` +
        `<text x="${(p.x + nodeWidth + 6).toFixed(1)}" y="${(p.y + p.h / 2 + 4).toFixed(1)}">${escapeHtml(n.label)}: ` +
        `<tspan data-metric="sankey.${n.id}">${fmt(n.value)}</tspan></text>`,
    );
  }
  if (sankey.nodes.length === 0) parts.push(`<text x="10" y="30">No successful handshakes to draw.</text>`);
  return (
    `<svg id="sankey" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" ` +
    `height="${height}" role="img" aria-label="HNDL exposure Sankey diagram">${parts.join("")}</svg>`
  );
}

const METRIC_LABELS: [keyof Attestation["metrics"], string][] = [
  ["observations", "Observations"],
  ["handshakes_successful", "Successful handshakes"],
  ["handshakes_failed", "Failed handshakes"],
  ["classical", "Classical key exchange"],
  ["hybrid_pq", "Hybrid post-quantum key exchange"],
  ["pq", "Pure post-quantum key exchange"],
  ["unknown_kex", "Unknown key exchange"],
  ["unique_snis", "Distinct server names"],
  ["processes", "Processes"],
  ["assets", "Inventoried assets"],
  ["long_secrecy", "Long-secrecy handshakes"],
  ["hndl_exposed", "HNDL-exposed handshakes"],
  ["hndl_exposed_percent", "HNDL-exposed (% of successful)"],
];

export function renderMarkdown(a: Attestation): string {
  const lines: string[] = [];
  lines.push("# carnot post-quantum attestation", "");
  lines.push(
    `Subject: \`${a.subject.file}\` (run \`${a.subject.run_id}\`, sha256 \`${a.subject.sha256}\`)`,
    "",
  );
  lines.push(
    `Policy status: **${a.policy.status.toUpperCase()}** (${a.policy.findings} finding(s), from ${a.policy.source})`,
    "",
  );
  lines.push("## Metrics", "", "| metric | value |", "|---|---:|");
  for (const [k, label] of METRIC_LABELS) lines.push(`| ${label} | ${fmt(a.metrics[k])} |`);
  lines.push("", "## Harvest now, decrypt later", "");
  lines.push(`Definition: ${a.parameters.hndl_definition}.`, "");
  lines.push(
    `CRQC year ${a.parameters.crqc_year} (${a.parameters.crqc_year_source}); migration ${a.parameters.migration_years} years; ` +
      `records without a time are taken as of ${a.parameters.as_of_year}.`,
    "",
  );
  lines.push("Flows (successful handshakes):", "");
  const label = new Map(a.sankey.nodes.map((n) => [n.id, n.label]));
  for (const l of a.sankey.links) lines.push(`- ${label.get(l.source)} → ${label.get(l.target)}: ${l.value}`);
  if (a.sankey.links.length === 0) lines.push("- (no successful handshakes)");
  lines.push("", "## Policy violations by severity", "", "| severity | findings |", "|---|---:|");
  for (const [sev, n] of Object.entries(a.policy.by_severity)) lines.push(`| ${sev} | ${n} |`);
  lines.push("", "| rule | severity | findings |", "|---|---|---:|");
  for (const r of a.policy.rules) lines.push(`| ${r.id} | ${r.severity} | ${r.findings} |`);
  if (a.policy.top_findings.length) {
    lines.push("", "Most severe findings:", "");
    for (const f of a.policy.top_findings) lines.push(`- **${f.severity}** \`${f.rule_id}\`: ${f.message}`);
  }
  lines.push(
    "",
    "## Risk by asset",
    "",
    "Score = (algorithm_risk + standards_gap) × exposure_weight × lifetime_weight.",
    "",
  );
  lines.push(
    "| asset | algorithm | standards | exposure | secrecy (y) | score | severity |",
    "|---|---|---|---|---:|---:|---|",
  );
  for (const r of a.risk.assets) {
    lines.push(
      `| ${r.asset} | ${r.algorithm_class} | ${r.standards_status} | ${r.exposure} | ${r.secrecy_lifetime_years} | ${r.score} | ${r.severity} |`,
    );
  }
  lines.push("");
  return `${lines.join("\n")}\n`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:980px;color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border-bottom:1px solid #e6ebf0;padding:.3rem .5rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.status{display:inline-block;padding:.2rem .6rem;border-radius:4px;font-weight:600}
.pass{background:#d5f5e3;color:#145a32}.violations{background:#fadbd8;color:#78281f}.muted{color:#5d6d7e;font-size:.9em}
svg text{font-size:12px;fill:#1d2733}.sev-CRITICAL,.sev-critical{color:#922b21;font-weight:600}.sev-HIGH,.sev-high{color:#c0392b}
`;

/** Runs in the browser only to prove layout happened: the Sankey's drawn size goes into data attributes. */
const RENDER_CHECK = `
addEventListener("load",function(){var s=document.getElementById("sankey");var b=s.getBBox();
document.body.setAttribute("data-rendered",b.width>0&&b.height>0?"ok":"empty");
document.body.setAttribute("data-sankey-paths",String(s.querySelectorAll("path.link").length));});
`;

/** The page's one script, by its digest: a server can allow it and nothing else (Content-Security-Policy). */
export const RENDER_CHECK_SOURCE = `'sha256-${createHash("sha256").update(RENDER_CHECK).digest("base64")}'`;

export function renderHtml(a: Attestation): string {
  const m = a.metrics;
  const metricRows = METRIC_LABELS.map(
    ([k, label]) =>
      `<tr><td>${escapeHtml(label)}</td><td class="n" data-metric="metrics.${k}">${fmt(m[k])}</td></tr>`,
  ).join("");
  const sevRows = Object.entries(a.policy.by_severity)
    .map(
      ([s, n]) =>
        `<tr><td class="sev-${s}">${s}</td><td class="n" data-metric="policy.by_severity.${s}">${n}</td></tr>`,
    )
    .join("");
  const ruleRows = a.policy.rules
    .map(
      (r) =>
        `<tr><td><code>${escapeHtml(r.id)}</code></td><td class="sev-${r.severity}">${r.severity}</td>` +
        `<td>${escapeHtml(r.title)}</td><td class="n" data-metric="policy.rules.${r.id}">${r.findings}</td></tr>`,
    )
    .join("");
  const findingRows = a.policy.top_findings
    .map(
      (f) =>
        `<tr><td class="sev-${f.severity}">${f.severity}</td><td><code>${escapeHtml(f.rule_id)}</code></td><td>${escapeHtml(f.message)}</td></tr>`,
    )
    .join("");
  const riskRows = a.risk.assets
    .map(
      (r) =>
        `<tr><td>${escapeHtml(String(r.asset))}</td><td>${r.algorithm_class}</td><td>${r.standards_status}</td>` +
        `<td>${r.exposure}</td><td class="n">${r.secrecy_lifetime_years}</td>` +
        `<td class="n" data-metric="risk.score.${escapeHtml(String(r.asset))}">${r.score}</td>` +
        `<td class="sev-${r.severity}">${r.severity}</td></tr>`,
    )
    .join("");
  const riskSev = Object.entries(a.risk.by_severity)
    .map(
      ([s, n]) => `<span class="sev-${s}">${s}</span> <span data-metric="risk.by_severity.${s}">${n}</span>`,
    )
    .join(" · ");
  const p = a.parameters;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>carnot post-quantum attestation — ${escapeHtml(a.subject.run_id)}</title><style>${CSS}</style></head>
<body>
<h1>Post-quantum attestation</h1>
<p class="muted">Subject <code>${escapeHtml(a.subject.file)}</code> · run <code data-field="run_id">${escapeHtml(a.subject.run_id)}</code> · sha256 <code>${a.subject.sha256}</code></p>
<p>Policy status: <span class="status ${a.policy.status}" data-metric="policy.status">${a.policy.status}</span>
 with <span data-metric="policy.findings">${a.policy.findings}</span> finding(s) <span class="muted">(${escapeHtml(a.policy.source)})</span></p>
<h2>Metrics</h2><table><tbody>${metricRows}</tbody></table>
<h2>Harvest now, decrypt later</h2>
<p>${escapeHtml(p.hndl_definition)}.</p>
<p class="muted">CRQC year <span data-metric="parameters.crqc_year">${p.crqc_year}</span> — ${escapeHtml(p.crqc_year_source)}.
 Migration time <span data-metric="parameters.migration_years">${p.migration_years}</span> years; records without a time are taken as of ${p.as_of_year}.</p>
${sankeySvg(a.sankey)}
<h2>Policy violations by severity</h2><table><tbody>${sevRows}</tbody></table>
<table><thead><tr><th>rule</th><th>severity</th><th>what</th><th>findings</th></tr></thead><tbody>${ruleRows}</tbody></table>
${findingRows ? `<table><thead><tr><th>severity</th><th>rule</th><th>finding</th></tr></thead><tbody>${findingRows}</tbody></table>` : ""}
<h2>Risk by asset</h2>
<p class="muted">Score = (algorithm_risk + standards_gap) × exposure_weight × lifetime_weight. ${riskSev}</p>
<table><thead><tr><th>asset</th><th>algorithm</th><th>standards</th><th>exposure</th><th>secrecy (y)</th><th>score</th><th>severity</th></tr></thead><tbody>${riskRows}</tbody></table>
<script>${RENDER_CHECK}</script>
</body></html>
`;
}
