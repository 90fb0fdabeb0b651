/**
 * Actions and timeline on a real trace: a shell script that reads /etc/passwd through wc,
 * writes a file, and fetches a page from a loopback HTTP server with curl — recorded by
 * strace, enriched by `carnot replay`. The timeline's HTML page is opened in headless Chromium.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Action } from "../../src/consumers/actions/collapse.ts";
import { formatBytes } from "../../src/consumers/actions/describe.ts";
import { CHROMIUM, dumpDom, screenshot } from "../support/chromium.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: Record<string, string | undefined> = process.env): Promise<Run> {
  const child = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

const carnot = (args: string[]) => run([process.execPath, CLI, ...args]);

const missing = ["strace", "curl", "wc"].filter((tool) => !Bun.which(tool));
if (missing.length > 0)
  console.warn(`skip actions/timeline on real traces: ${missing.join(", ")} not installed`);

let dir = "";
let enriched = "";
let records: Array<{ pid: number; call: string; risk_tags: string[] }> = [];
let server: ReturnType<typeof Bun.serve> | null = null;
const body = "timeline says hello\n".repeat(300);

beforeAll(async () => {
  if (missing.length > 0) return;
  dir = await mkdtemp(join(tmpdir(), "carnot-timeline-"));
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(body) });
  const script = [
    "wc -l /etc/passwd",
    `printf secret > ${dir}/note.txt`,
    `curl -sS --max-time 10 -o ${dir}/page.txt http://127.0.0.1:${server.port}/page`,
  ].join("; ");
  const trace = join(dir, "work.strace");
  const recorded = await run([
    "strace",
    "-f",
    "-qq",
    "-ttt",
    "-T",
    "-yy",
    "-o",
    trace,
    "--",
    "/bin/sh",
    "-c",
    script,
  ]);
  if (recorded.exitCode !== 0) throw new Error(`workload failed: ${recorded.stderr}`);
  enriched = join(dir, "work.jsonl");
  const replayed = await carnot(["replay", trace, "-o", enriched]);
  if (replayed.exitCode !== 0) throw new Error(`replay failed: ${replayed.stderr}`);
  records = (await Bun.file(enriched).text())
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
});

afterAll(async () => {
  server?.stop(true);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(missing.length > 0)("actions on a real trace", () => {
  let actions: Action[] = [];

  test("JSON lines: one action per line, each with a valid record range of its own process", async () => {
    const result = await carnot(["actions", enriched, "--format", "json"]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    actions = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(actions.length).toBeGreaterThan(5);
    expect(actions.length).toBeLessThan(records.length);
    for (const action of actions) {
      expect(action.first_line).toBeGreaterThanOrEqual(1);
      expect(action.last_line).toBeLessThanOrEqual(records.length);
      expect(action.first_line).toBeLessThanOrEqual(action.last_line);
      expect(action.start_ts).toBeLessThanOrEqual(action.end_ts);
      // a spawn's range ends at the child's execve; every other action starts on a record of its process
      expect(records[action.first_line - 1]!.pid).toBe(action.pid);
    }
    const covered = actions.reduce((n, a) => n + a.records, 0);
    expect(covered).toBeLessThanOrEqual(records.length);
  });

  test("names what a person would: spawned commands, the file read with its size, the file written, the connection", async () => {
    const shell = actions.find((a) => a.kind === "exec" && /^executed (\/usr)?\/bin\/sh /.test(a.summary))!;
    expect(shell).toBeDefined();
    expect(
      actions.find(
        (a) => a.pid === shell.pid && a.summary.startsWith("spawned /usr/bin/wc -l /etc/passwd (pid "),
      ),
    ).toBeDefined();
    expect(
      actions.find((a) => a.pid === shell.pid && a.summary.startsWith("spawned /usr/bin/curl -sS")),
    ).toBeDefined();

    const size = (await stat("/etc/passwd")).size;
    const read = actions.find((a) => a.kind === "file-read" && a.target === "/etc/passwd")!;
    expect(read.summary).toMatch(
      new RegExp(`^read /etc/passwd \\(\\d+ reads?, ${formatBytes(size).replace(".", "\\.")}\\)$`),
    );

    const note = actions.find((a) => a.target === `${dir}/note.txt`)!;
    expect(note.summary).toBe(`wrote ${dir}/note.txt (created, mode 0666, 1 write, 6 B)`);

    const connection = actions.find((a) => a.kind === "net-connect" && a.target?.startsWith("127.0.0.1:"))!;
    expect(connection.summary).toMatch(
      new RegExp(
        `^connected to 127\\.0\\.0\\.1:${server!.port} over TCP, sent \\d+ B, received [\\d.]+ KiB$`,
      ),
    );
    const page = actions.find((a) => a.target === `${dir}/page.txt`)!;
    expect(page.summary).toContain(formatBytes(body.length));
  });

  test("text: one line per action with time, pid and line range", async () => {
    const result = await carnot(["actions", enriched]);
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(actions.length);
    expect(lines.every((l) => /^\d+\.\d{6} {2}pid \d+ {2}.+ {2}\(lines? \d+(–\d+)?\)$/.test(l))).toBe(true);
  });
});

describe.skipIf(missing.length > 0)("timeline on a real trace", () => {
  test("text: the process tree with exec chains, plain when not a terminal", async () => {
    const result = await carnot(["timeline", enriched]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).not.toContain("\x1b[");
    const pids = [...new Set(records.map((r) => r.pid))];
    for (const pid of pids) expect(result.stdout).toContain(`pid ${pid} `);
    expect(result.stdout).toMatch(/^pid \d+ (\/usr)?\/bin\/sh /m);
    expect(result.stdout).toMatch(/^[├└]─ pid \d+ (\/usr)?\/bin\/sh → \/usr\/bin\/wc /m);
    expect(result.stdout).toMatch(/^[├└]─ pid \d+ (\/usr)?\/bin\/sh → \/usr\/bin\/curl /m);
    const tagged = [...new Set(records.flatMap((r) => r.risk_tags))];
    for (const tag of tagged) expect(result.stdout).toContain(`⚠ ${tag}`);
  });

  test("colour on a terminal, none with NO_COLOR", async () => {
    if (!Bun.which("script")) {
      console.warn("skip: `script` (util-linux) not installed to give the command a terminal");
      return;
    }
    const command = `${process.execPath} ${CLI} timeline ${enriched}`;
    const tty = await run(["script", "-qec", command, "/dev/null"], { ...process.env, NO_COLOR: undefined });
    expect(tty.stdout).toContain("\x1b[1m");
    const plain = await run(["script", "-qec", command, "/dev/null"], { ...process.env, NO_COLOR: "1" });
    expect(plain.stdout).toContain("pid ");
    expect(plain.stdout).not.toContain("\x1b[1m");
  });

  test("HTML: self-contained, renders in headless Chromium and shows every process", async () => {
    const page = join(dir, "timeline.html");
    const result = await carnot(["timeline", enriched, "-o", page]);
    expect(result.exitCode).toBe(0);
    const html = await Bun.file(page).text();
    expect(html).toStartWith("<!doctype html>");
    expect(html).not.toMatch(/\b(src|href)=|@import|url\(/);
    if (!CHROMIUM) {
      console.warn("skip Chromium check: chromium not installed (Debian package chromium)");
      return;
    }
    const dom = dumpDom(page);
    for (const pid of new Set(records.map((r) => r.pid))) expect(dom).toContain(`id="pid-${pid}"`);
    expect(dom).toContain("/usr/bin/curl");
    expect(dom).toMatch(/connected to 127\.0\.0\.1:\d+ over TCP/);
    const tagged = [...new Set(records.flatMap((r) => r.risk_tags))];
    if (tagged.length > 0) expect(dom).toContain('<mark class="risk">');

    const shot = join(dir, "timeline.png");
    screenshot(page, shot);
    const png = new Uint8Array(await Bun.file(shot).arrayBuffer());
    expect([...png.slice(1, 4)].map((c) => String.fromCharCode(c)).join("")).toBe("PNG");
    // a page with text on it compresses far worse than a blank one (≈ 5 KB at this size)
    expect(png.length).toBeGreaterThan(20_000);
  });
});
