/** Headless Chromium (Debian's `chromium`) to load a report the way a reader's browser does. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = Bun.which("chromium") ?? Bun.which("chromium-browser");

/** The DOM after load (scripts run), or throws with Chromium's stderr. */
export function dumpDom(htmlPath: string): string {
  if (!CHROMIUM) throw new Error("chromium not installed");
  const profile = mkdtempSync(join(tmpdir(), "carnot-chromium-"));
  try {
    const proc = Bun.spawnSync(
      [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=2000",
        "--dump-dom",
        `file://${htmlPath}`,
      ],
      { stdout: "pipe", stderr: "pipe", timeout: 60_000 },
    );
    const dom = proc.stdout.toString();
    if (proc.exitCode !== 0 || dom.length === 0)
      throw new Error(`chromium failed: ${proc.stderr.toString().slice(-500)}`);
    return dom;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
