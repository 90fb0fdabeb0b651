import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, tempDir } from "./logs.ts";

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

test("the compiled binary hashes large outputs in its embedded worker, and the log verifies", () => {
  // the same entry points as the Makefile's build line, which must name the worker
  const makefile = readFileSync(join(REPO, "Makefile"), "utf8");
  expect(makefile).toMatch(
    /bun build --compile .*src\/cli\.ts src\/chain\/hash-worker\.ts( \S+)* --outfile carnot/,
  );
  const binary = join(tmp.dir, "carnot");
  const build = Bun.spawnSync(
    ["bun", "build", "--compile", "--minify", "src/cli.ts", "src/chain/hash-worker.ts", "--outfile", binary],
    { cwd: REPO, stderr: "pipe" },
  );
  expect(build.exitCode).toBe(0);

  // a real trace with more records than the writer chains in its own thread (20,000)
  const trace = join(tmp.dir, "dd.strace");
  const dd = Bun.spawnSync(
    ["strace", "-o", trace, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=12000", "status=none"],
    { stderr: "pipe" },
  );
  expect(dd.exitCode).toBe(0);
  const out = join(tmp.dir, "dd.jsonl");
  const replay = Bun.spawnSync([binary, "replay", trace, "-o", out, "--verbose"], {
    cwd: tmp.dir,
    stderr: "pipe",
  });
  const stderr = replay.stderr.toString();
  expect(replay.exitCode).toBe(0);
  expect(stderr).toContain("chain: hashing moved to a worker thread after 20000 records");
  const lines = readFileSync(out, "utf8").split("\n").length - 1;
  expect(lines).toBeGreaterThan(24_000);
  const verify = Bun.spawnSync([binary, "verify", out], { stderr: "pipe" });
  expect(verify.stdout.toString()).toBe(`ok: ${lines} records, chain intact, sealed\n`);
  expect(verify.exitCode).toBe(0);
});
