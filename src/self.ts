import { existsSync } from "node:fs";
import { join } from "node:path";

/** How to run carnot itself (a child, a re-execution): the compiled executable, or bun with cli.ts (from source). */
export function selfCommand(): string[] {
  const cli = join(import.meta.dir, "cli.ts");
  // compiled, import.meta.dir lies in Bun's embedded file system (/$bunfs/…) and the executable is carnot
  if (!import.meta.dir.startsWith("/$bunfs") && existsSync(cli)) return [process.execPath, cli];
  return [process.execPath];
}
