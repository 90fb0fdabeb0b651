import { formatSeconds, plural } from "../actions/describe.ts";
import { lineRange } from "../actions/render.ts";
import { actionsInTimeOrder, type Timeline, type TimelineProcess } from "./build.ts";
import { isShown } from "./text.ts";

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Inline style only: the page must render offline, with no request to anywhere. */
const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fff}
h1{font-size:1.3rem;margin:0 0 .3rem}
.meta{color:#555;margin:0 0 1rem}
.tree{list-style:none;margin:0;padding-left:1.4rem;border-left:1px dashed #bbb}
body>.tree{padding-left:0;border-left:none}
.process{margin:.4rem 0}
summary{cursor:pointer}
.pid{font-weight:600}
.exe{font-family:ui-monospace,monospace;font-weight:600}
.span,.records,.lines,time{color:#666;font-size:.9em}
.exit{color:#444}
.actions{list-style:none;margin:.2rem 0 .4rem;padding-left:1.2rem}
.actions li{font-family:ui-monospace,monospace;font-size:.88em;white-space:pre-wrap}
.actions li.risky{background:#fff1f0}
mark.risk{background:#c62828;color:#fff;border-radius:3px;padding:0 .3em;font:600 .8em system-ui,sans-serif}
.note{color:#777;font-style:italic}
`;

function riskMarks(tags: string[]): string {
  return tags.map((t) => ` <mark class="risk">${escapeHtml(t)}</mark>`).join("");
}

function renderProcess(node: TimelineProcess, all: boolean, out: string[]): void {
  const exe = node.executables.length > 0 ? node.executables.join(" → ") : "(executable unknown)";
  const exit = node.exit_status === null ? "" : ` <span class="exit">exit ${node.exit_status}</span>`;
  const threads = node.threads > 0 ? ` <span class="records">${plural(node.threads, "thread")}</span>` : "";
  out.push(
    `<li class="process" id="pid-${node.pid}" data-pid="${node.pid}"><details open><summary>` +
      `<span class="pid">pid ${node.pid}</span> <span class="exe">${escapeHtml(exe)}</span> ` +
      `<span class="span">${formatSeconds(node.start_ts)} → ${formatSeconds(node.end_ts)} s</span>${exit}${threads} ` +
      `<span class="records">${plural(node.records, "record")}</span>${riskMarks(Object.keys(node.risk))}</summary>`,
  );
  out.push('<ol class="actions">');
  let hidden = 0;
  for (const action of actionsInTimeOrder(node)) {
    if (!isShown(action, all)) {
      hidden++;
      continue;
    }
    const risky = action.risk_tags.length > 0 ? ' class="risky"' : "";
    out.push(
      `<li${risky} data-kind="${action.kind}"><time>${formatSeconds(action.start_ts)}</time> ` +
        `${escapeHtml(action.summary)}${riskMarks(action.risk_tags)} <span class="lines">${lineRange(action)}</span></li>`,
    );
  }
  if (hidden > 0) out.push(`<li class="note">${plural(hidden, "lookup/runtime action")} hidden</li>`);
  if (node.actions_omitted > 0)
    out.push(`<li class="note">${node.actions_omitted} more actions not kept</li>`);
  out.push("</ol>");
  if (node.children.length > 0) {
    out.push('<ul class="tree">');
    for (const child of node.children) renderProcess(child, all, out);
    out.push("</ul>");
  }
  out.push("</details></li>");
}

/** A self-contained page (inline CSS, no script, no external resource) for sharing a timeline. */
export function renderTimelineHtml(timeline: Timeline, options: { source: string; all: boolean }): string {
  const title = `carnot timeline — ${options.source}`;
  const riskNames = Object.keys(timeline.risk);
  const risk =
    riskNames.length > 0
      ? `<p class="meta">risk: ${riskNames.map((t) => `<mark class="risk">${escapeHtml(t)}</mark> ×${timeline.risk[t]}`).join(", ")}</p>`
      : "";
  const out = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="meta">${plural(timeline.processes, "process", "processes")}, ${plural(timeline.records, "record")}, ` +
      `${formatSeconds(timeline.end_ts - timeline.start_ts)} s</p>`,
    risk,
    '<ul class="tree">',
  ];
  for (const root of timeline.roots) renderProcess(root, options.all, out);
  out.push("</ul></body></html>");
  return `${out.filter((l) => l !== "").join("\n")}\n`;
}
