import type { Action } from "../actions/collapse.ts";
import { formatSeconds, plural } from "../actions/describe.ts";
import { lineRange } from "../actions/render.ts";
import { actionsInTimeOrder, type Timeline, type TimelineProcess } from "./build.ts";

/** ANSI styles, or none: colour only for a terminal without NO_COLOR. */
export interface TextStyle {
  bold(text: string): string;
  dim(text: string): string;
  risk(text: string): string;
}

const ansi = (open: string, close: string) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
export const COLOUR_STYLE: TextStyle = {
  bold: ansi("1", "22"),
  dim: ansi("2", "22"),
  risk: ansi("1;31", "39;22"),
};
export const PLAIN_STYLE: TextStyle = { bold: (t) => t, dim: (t) => t, risk: (t) => t };

/** Whether to colour: a TTY, and NO_COLOR unset or empty (https://no-color.org). */
export function wantsColour(isTty: boolean, env: Record<string, string | undefined>): boolean {
  return isTty && !env.NO_COLOR;
}

export interface TimelineTextOptions {
  style: TextStyle;
  /** show the plumbing ("runtime calls: …") and lookups too */
  all: boolean;
  source: string;
}

/** Whether an action is worth a line in a readable timeline. */
export function isShown(action: Action, all: boolean): boolean {
  if (all || action.risk_tags.length > 0) return true;
  return action.kind !== "runtime" && action.kind !== "lookup";
}

function riskTags(tags: Record<string, number> | string[], style: TextStyle): string {
  const names = Array.isArray(tags) ? tags : Object.keys(tags);
  return names.length === 0 ? "" : ` ${names.map((t) => style.risk(`⚠ ${t}`)).join(" ")}`;
}

function processHeader(node: TimelineProcess, style: TextStyle): string {
  const exe = node.executables.length > 0 ? node.executables.join(" → ") : "(executable unknown)";
  const span = `${formatSeconds(node.start_ts)} → ${formatSeconds(node.end_ts)} s`;
  const exit = node.exit_status === null ? "" : `  exit ${node.exit_status}`;
  const threads = node.threads > 0 ? `  ${plural(node.threads, "thread")}` : "";
  return `${style.bold(`pid ${node.pid}`)} ${style.bold(exe)}  ${style.dim(span)}${exit}${threads}  ${style.dim(
    `(${plural(node.records, "record")})`,
  )}${riskTags(node.risk, style)}`;
}

/**
 * The tree as text: each process with its actions in time order, children below with
 * box-drawing branches; deterministic for a given input.
 */
export function renderTimelineText(timeline: Timeline, options: TimelineTextOptions): string {
  const { style } = options;
  const out: string[] = [];
  const duration = formatSeconds(timeline.end_ts - timeline.start_ts);
  out.push(
    `${style.bold("carnot timeline")}  ${options.source}: ${plural(timeline.processes, "process", "processes")}, ` +
      `${plural(timeline.records, "record")}, ${duration} s`,
  );
  const riskNames = Object.keys(timeline.risk);
  if (riskNames.length > 0)
    out.push(`risk: ${riskNames.map((t) => `${style.risk(t)} ×${timeline.risk[t]}`).join(", ")}`);
  out.push("");

  const render = (node: TimelineProcess, prefix: string, branch: string, childPrefix: string) => {
    out.push(`${prefix}${branch}${processHeader(node, style)}`);
    const body = `${prefix}${childPrefix}${node.children.length > 0 ? "│ " : "  "}`;
    let hidden = 0;
    for (const action of actionsInTimeOrder(node)) {
      if (!isShown(action, options.all)) {
        hidden++;
        continue;
      }
      const time = style.dim(formatSeconds(action.start_ts));
      const where = style.dim(`(${lineRange(action)})`);
      out.push(`${body}  ${time}  ${action.summary}${riskTags(action.risk_tags, style)}  ${where}`);
    }
    const notes: string[] = [];
    if (hidden > 0) notes.push(`${plural(hidden, "lookup/runtime action")} hidden (--all shows them)`);
    if (node.actions_omitted > 0) notes.push(`${node.actions_omitted} more actions not kept`);
    if (notes.length > 0) out.push(`${body}  ${style.dim(`… ${notes.join("; ")}`)}`);
    node.children.forEach((child, i) => {
      const last = i === node.children.length - 1;
      render(child, `${prefix}${childPrefix}`, last ? "└─ " : "├─ ", last ? "   " : "│  ");
    });
  };
  for (const root of timeline.roots) {
    render(root, "", "", "");
    out.push("");
  }
  return `${out.join("\n")}`;
}
