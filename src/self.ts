import { existsSync } from "node:fs";
import { basename, join } from "node:path";

/** How to run carnot itself (a child, a re-execution): the compiled executable, or bun with cli.ts (from source). */
export function selfCommand(): string[] {
  const cli = join(import.meta.dir, "cli.ts");
  // compiled, import.meta.dir lies in Bun's embedded file system (/$bunfs/…) and the executable is carnot
  if (!import.meta.dir.startsWith("/$bunfs") && existsSync(cli)) return [process.execPath, cli];
  return [process.execPath];
}

/**
 * A module built as its own entry point of `bun build --compile` (see the Makefile), so that what it imports is
 * parsed only when it is loaded: from source the .ts file under src/, compiled the .js file embedded under the
 * entry points' common folder. `path` is relative to src/, without extension; null when this build has none.
 */
export function entryModule(path: string): string | null {
  if (!Bun.isStandaloneExecutable) return join(import.meta.dir, `${path}.ts`);
  const root = import.meta.dir;
  const candidates = [`${root}/${path}.js`, `${root}/src/${path}.js`, `${root}/${basename(path)}.js`];
  return candidates.find((p) => existsSync(p)) ?? null;
}
