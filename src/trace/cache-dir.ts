import { homedir } from "node:os";
import { join } from "node:path";

/** Where the tracer caches what it computed (calibrations, the engine's allowlist): $CARNOT_CACHE_DIR, else /var/cache/carnot as root, else ~/.cache/carnot. */
export function traceCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CARNOT_CACHE_DIR) return env.CARNOT_CACHE_DIR;
  if (process.getuid?.() === 0) return "/var/cache/carnot";
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "carnot");
}
