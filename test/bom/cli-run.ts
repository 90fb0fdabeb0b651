/** Runs the real CLI (`bun src/cli.ts …`) the way a user does, capturing exit code and both streams. */
import { join } from "node:path";

export const REPO = join(import.meta.dir, "../..");
export const FIXTURES = join(REPO, "test/fixtures/runtime");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCarnot(args: string[], options: { cwd?: string } = {}): CliResult {
  const proc = Bun.spawnSync(["bun", join(REPO, "src/cli.ts"), ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: proc.exitCode ?? -1, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}
