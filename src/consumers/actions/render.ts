import { formatSeconds } from "./describe.ts";
import type { Action } from "./collapse.ts";

/** One JSON line per action; keys in the order of the Action interface. */
export function actionToJsonLine(action: Action): string {
  return `${JSON.stringify(action)}\n`;
}

/** The input lines an action came from: "line 7" or "lines 7–19". */
export function lineRange(action: Action): string {
  return action.first_line === action.last_line
    ? `line ${action.first_line}`
    : `lines ${action.first_line}–${action.last_line}`;
}

/** One text line per action: start time (s), pid, what happened, risk tags, where it came from. */
export function actionToTextLine(action: Action): string {
  const risk = action.risk_tags.length > 0 ? `  [risk: ${action.risk_tags.join(", ")}]` : "";
  return `${formatSeconds(action.start_ts)}  pid ${action.pid}  ${action.summary}${risk}  (${lineRange(action)})\n`;
}
