/**
 * Symlinks planted by another user where carnot (root) writes: at the temporary names older versions used
 * (`OUT.tmp-PID`, `.OUT.PID.partial`, `SEAL.tmp-PID`: the PID is known to a local user) and at the output
 * name itself. With `fs.protected_symlinks=0` (set here, restored after) the kernel follows such a link for
 * root, so only carnot's own care keeps the file it points at intact.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { traceSkipReason } from "../support/tracer.ts";

const REPO = join(import.meta.dir, "../..");
const CLI = join(REPO, "src/cli.ts");
const SYSCTL = "/proc/sys/fs/protected_symlinks";
/** The planted links belong to this user (nobody), as a local attacker's would. */
const ATTACKER = 65534;
const PRECIOUS = "precious: root's file, not carnot's to write\n";

const skip =
  process.getuid?.() !== 0 ? "needs root (sets fs.protected_symlinks, plants links as another user)" : null;
if (skip) console.warn(`skipping the planted-symlink tests: ${skip}`);

let root = "";
/** world-writable and sticky, like /tmp: where the other user plants links */
let shared = "";
let victim = "";
let savedSysctl = "";
let enriched = "";
let bomFile = "";
let straceFile = "";

/**
 * Runs carnot in `shared` through bash, which first plants `links` (names; `$$` is the PID carnot will have,
 * as `exec` keeps it) pointing at the victim and owned by the attacker.
 */
function carnotAfterPlanting(links: string[], args: string[]): { code: number; stderr: string } {
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const plant = links
    .map((name) => `ln -s ${q(victim)} "${name}" && chown -h ${ATTACKER}:${ATTACKER} "${name}"`)
    .join(" && ");
  const script = `${plant || "true"} && exec ${q(process.execPath)} ${q(CLI)} ${args.map(q).join(" ")}`;
  const r = Bun.spawnSync(["bash", "-c", script], {
    cwd: shared,
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "ignore",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, stderr: r.stderr.toString() };
}

beforeAll(() => {
  if (skip) return;
  savedSysctl = readFileSync(SYSCTL, "utf8").trim();
  writeFileSync(SYSCTL, "0\n");
  root = mkdtempSync(join(tmpdir(), "carnot-planted-"));
  const own = join(root, "root-only");
  mkdirSync(own, { mode: 0o700 });
  victim = join(own, "victim");
  shared = join(root, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  // inputs, written by root where no one else can write
  straceFile = join(REPO, "test/fixtures/strace/fd-lifecycle.strace");
  enriched = join(own, "enriched.jsonl");
  bomFile = join(own, "runtime.bom.json");
  const run = (args: string[]) => {
    const r = Bun.spawnSync([process.execPath, CLI, ...args], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`carnot ${args.join(" ")}: ${r.stderr}`);
  };
  run(["replay", straceFile, "-o", enriched]);
  run(["bom", join(REPO, "test/fixtures/runtime/mixed.jsonl"), "-o", bomFile]);
});

afterAll(() => {
  if (savedSysctl !== "") writeFileSync(SYSCTL, `${savedSysctl}\n`);
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Each command, its output name(s) and the temporary names older versions wrote them through. */
const CASES: { name: string; args: () => string[]; outputs: string[]; oldNames: string[] }[] = [
  {
    name: "bom -o",
    args: () => ["bom", join(REPO, "test/fixtures/runtime/mixed.jsonl"), "-o", "rep.json"],
    outputs: ["rep.json"],
    oldNames: ["rep.json.tmp-$$"],
  },
  {
    name: "merge -o",
    args: () => ["merge", bomFile, "-o", "merged.json"],
    outputs: ["merged.json"],
    oldNames: ["merged.json.tmp-$$"],
  },
  {
    name: "policy -o",
    args: () => ["policy", bomFile, "-o", "policy.json"],
    outputs: ["policy.json"],
    oldNames: ["policy.json.tmp-$$"],
  },
  {
    name: "attest -o",
    args: () => ["attest", bomFile, "-o", "att"],
    outputs: ["att.md", "att.html", "att.json"],
    oldNames: ["att.md.tmp-$$", "att.html.tmp-$$", "att.json.tmp-$$"],
  },
  {
    name: "timeline -o",
    args: () => ["timeline", enriched, "-o", "tl.html"],
    outputs: ["tl.html"],
    oldNames: [".tl.html.$$.partial"],
  },
  {
    name: "actions -o",
    args: () => ["actions", enriched, "-o", "act.txt"],
    outputs: ["act.txt"],
    oldNames: [".act.txt.$$.partial"],
  },
  {
    name: "seccomp -o",
    args: () => ["seccomp", enriched, "-o", "prof.json"],
    outputs: ["prof.json"],
    oldNames: [".prof.json.$$.partial"],
  },
  {
    name: "replay -o (and its seal)",
    args: () => ["replay", straceFile, "-o", "rep.jsonl"],
    outputs: ["rep.jsonl", "rep.jsonl.seal.json"],
    oldNames: ["rep.jsonl.seal.json.tmp-$$", "rep.jsonl.seal.json"],
  },
  ...(traceSkipReason() === null
    ? [
        {
          name: "trace --metrics-json and --out (and its seal)",
          args: () => [
            "trace",
            "--duration",
            "0.5",
            "--metrics-interval",
            "0",
            "--metrics-json",
            "m.json",
            "--out",
            "t.jsonl",
          ],
          outputs: ["m.json", "t.jsonl", "t.jsonl.seal.json"],
          oldNames: ["m.json.tmp-$$", "t.jsonl.seal.json.tmp-$$"],
        },
      ]
    : []),
];

function freshShared(): void {
  for (const f of readdirSync(shared)) rmSync(join(shared, f), { force: true });
  writeFileSync(victim, PRECIOUS);
}

describe.skipIf(skip !== null)("a symlink planted by another user (fs.protected_symlinks=0)", () => {
  test.each(CASES)("$name: links at the old temporary names are never followed", (c) => {
    freshShared();
    const r = carnotAfterPlanting(c.oldNames, c.args());
    expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(readFileSync(victim, "utf8")).toBe(PRECIOUS);
    for (const out of c.outputs) {
      expect(lstatSync(join(shared, out)).isFile()).toBe(true);
      expect(readFileSync(join(shared, out), "utf8")).not.toBe(PRECIOUS);
    }
    // no temporary of ours left behind
    expect(readdirSync(shared).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  test.each(CASES)("$name: a link at the output name is refused (exit 2, one line)", (c) => {
    freshShared();
    const first = c.outputs[0]!;
    const r = carnotAfterPlanting([first], c.args());
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `carnot: ${first} is a symbolic link (refused; --follow-symlinks writes its target)\n`,
    );
    expect(readFileSync(victim, "utf8")).toBe(PRECIOUS);
    expect(lstatSync(join(shared, first)).isSymbolicLink()).toBe(true);
  });

  test("--follow-symlinks writes the target of a link the user made (bom, replay)", () => {
    for (const [args, out] of [
      [["bom", join(REPO, "test/fixtures/runtime/mixed.jsonl"), "-o", "rep.json"], "rep.json"],
      [["replay", straceFile, "-o", "rep.jsonl"], "rep.jsonl"],
    ] as const) {
      freshShared();
      const r = carnotAfterPlanting([out], [...args, "--follow-symlinks"]);
      expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(readFileSync(victim, "utf8")).not.toBe(PRECIOUS);
      expect(lstatSync(join(shared, out)).isSymbolicLink()).toBe(true);
    }
  });
});
