/** Headless Chromium (Debian's `chromium`) to load a page the way a reader's browser does. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = Bun.which("chromium") ?? Bun.which("chromium-browser");

/** Run Chromium headless on one page (a URL) with a throwaway profile; no network, no background requests. */
function runChromium(url: string, extra: string[]): { stdout: string } {
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
        ...extra,
        url,
      ],
      { stdout: "pipe", stderr: "pipe", timeout: 60_000 },
    );
    if (proc.exitCode !== 0) throw new Error(`chromium failed: ${proc.stderr.toString().slice(-500)}`);
    return { stdout: proc.stdout.toString() };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The DOM after load (scripts run), or throws with Chromium's stderr. */
export function dumpDom(htmlPath: string): string {
  const dom = runChromium(`file://${htmlPath}`, ["--virtual-time-budget=2000", "--dump-dom"]).stdout;
  if (dom.length === 0) throw new Error("chromium printed no DOM");
  return dom;
}

/** A PNG screenshot of the page at the given window size. */
export function screenshot(htmlPath: string, pngPath: string, size = "1200,900"): void {
  runChromium(`file://${htmlPath}`, [`--window-size=${size}`, `--screenshot=${pngPath}`]);
}

/**
 * The DOM of `https://HOST:PORT/` served on 127.0.0.1 (`HOST` resolved there, so it is the SNI), the test's
 * throwaway certificate not checked.
 */
export function dumpHttpsDom(host: string, port: number): string {
  return runChromium(`https://${host}:${port}/`, [
    `--host-resolver-rules=MAP ${host} 127.0.0.1`,
    "--ignore-certificate-errors",
    "--dump-dom",
  ]).stdout;
}
