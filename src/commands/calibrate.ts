/**
 * `carnot __calibrate LIBSSL [--fd N [--crypto-fd M]]` (hidden; run by `carnot trace` as a confined child
 * process): prints the verified struct offsets of that exact library as one JSON line, loading it (and its
 * libcrypto) from the descriptors the parent opened when given. See src/trace/libssl/calibration/child.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calibrateLoaded } from "../trace/libssl/calibration/child.ts";

export async function runCalibrate(args: string[]): Promise<number> {
  const libssl = args[0];
  if (!libssl) {
    process.stderr.write("carnot: __calibrate needs a libssl path\n");
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), "carnot-calibrate-"));
  try {
    const fd = (flag: string) => {
      const at = args.indexOf(flag);
      const n = at < 0 ? "" : (args[at + 1] ?? "");
      return /^[0-9]+$/.test(n) ? `/proc/self/fd/${n}` : undefined;
    };
    const result = calibrateLoaded(libssl, dir, { libssl: fd("--fd"), libcrypto: fd("--crypto-fd") });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `carnot: calibration of ${libssl} failed: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
