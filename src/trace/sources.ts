/**
 * Opening the kernel sources of `carnot trace`: the libssl probes (each library's offsets verified first) and
 * the wire capture, which shares the probes' ring buffer and per-thread handshake maps when both run. What
 * cannot be verified is said once, at start.
 */
import { realpathSync } from "node:fs";
import { CarnotError, describeError } from "../errors.ts";
import type { GroupIndex } from "./groups.ts";
import { type CalibrationResult, calibrate } from "./libssl/calibration/calibrate.ts";
import { checkLibssl, findSystemLibssl, opensslVersion } from "./libssl/library.ts";
import type { CgroupFilter } from "./libssl/events.ts";
import { SslProbes } from "./libssl/probes.ts";
import type { LibraryFacts } from "./observation.ts";
import type { EventRegion } from "./pipeline.ts";
import { openCacheDir, traceCacheDir } from "./cache-dir.ts";
import { untrustedReason } from "./trusted-path.ts";
import { WireCapture } from "./wire/capture.ts";

export type SourceChoice = "libssl" | "wire" | "all";
export const SOURCE_CHOICES: readonly SourceChoice[] = ["all", "libssl", "wire"];

export interface SourceOptions {
  source: SourceChoice;
  /** libraries to probe; empty = the system libssl */
  libraries: string[];
  pid?: number;
  comm?: string;
  /** only processes in this cgroup v2 or below it (--container) */
  cgroup?: CgroupFilter;
  maxPending: number;
  ringbufSize?: number;
  verbose: boolean;
  implicitProbes?: boolean;
  rawEvents?: boolean;
  cacheDir?: string;
  groupIndex: GroupIndex;
  status: (line: string) => void;
}

export interface OpenedSources {
  probes: SslProbes | null;
  wire: WireCapture | null;
  /** the one ring buffer both write to */
  region: EventRegion;
  /** per probed library (lib_id): what the records say of it */
  facts: LibraryFacts[];
  attachMs: number;
  /** what is attached, for the "ready" line */
  summary: string;
  /** detach everything (libssl links cost a grace period each) */
  close(): void;
}

/** Functions whose probes say which groups a connection or its context was given. */
const GROUP_SETTERS = ["SSL_ctrl", "SSL_CTX_ctrl"];

/**
 * What the records say about a library: its label with the OpenSSL version, cipher names, default groups
 * (none when a probe on a group setter is missing: groups an application set would go unseen, and the
 * library's defaults would be a guess).
 */
export function libraryFacts(
  path: string,
  result: CalibrationResult | undefined,
  groups: GroupIndex,
  unprobed: readonly string[] = [],
): LibraryFacts {
  const c = result?.calibration ?? null;
  // the library's own answer (OpenSSL_version) first, else the version string found in the file
  const fromLibrary = c ? /OpenSSL \d+\.\d+\.\d+[a-z]?/.exec(c.openssl)?.[0] : undefined;
  const fromFile = opensslVersion(path);
  const version = fromLibrary ?? (fromFile ? `OpenSSL ${fromFile}` : null);
  let defaultGroups: string[] | null = null;
  if (c?.defaultGroups && !unprobed.some((name) => GROUP_SETTERS.includes(name))) {
    const names = c.defaultGroups.map((code) => groups.byCodePoint.get(code)?.name ?? null);
    // a code point carnot cannot name makes the list incomplete: no list rather than a wrong one
    defaultGroups = names.every((n) => n !== null) ? (names as string[]) : null;
  }
  return { label: version ? `${path} (${version})` : path, ciphers: c?.ciphers ?? null, defaultGroups };
}

/**
 * Offsets verified for each exact file before anything is attached (a cached result costs a digest). What
 * cannot be probed, or could have been prepared by another user, is refused before anything runs it (the
 * calibration loads the library, or executes a program such as node, even if confined).
 */
async function calibrateAll(
  paths: string[],
  named: boolean,
  opts: SourceOptions,
): Promise<Map<string, CalibrationResult>> {
  const resolvedPaths = paths.map((path) => {
    let resolved: string;
    try {
      resolved = checkLibssl(path).path;
    } catch (err) {
      throw new CarnotError(describeError(err), { exitCode: 2 });
    }
    const untrusted = untrustedReason(resolved, { siblingsUsed: true });
    if (untrusted !== null) {
      const which = named ? `--libssl ${path}` : `the system libssl ${path}`;
      throw new CarnotError(`refused ${which}: ${untrusted}`, { exitCode: 2 });
    }
    return resolved;
  });
  const cache = openCacheDir(opts.cacheDir ?? traceCacheDir());
  if (cache.problem !== null) opts.status(`carnot: warning: cache directory not used: ${cache.problem}`);
  const calibrations = new Map<string, CalibrationResult>();
  for (const resolved of resolvedPaths) {
    if (!calibrations.has(resolved))
      calibrations.set(resolved, await calibrate(resolved, { cacheDir: opts.cacheDir }));
  }
  return calibrations;
}

/** Says once, at start, what could not be verified for each library (and, with --verbose, what was). */
function reportCalibrations(
  probes: SslProbes,
  calibrations: Map<string, CalibrationResult>,
  facts: LibraryFacts[],
  opts: SourceOptions,
): void {
  for (const [i, { path }] of probes.libraries.entries()) {
    const result = calibrations.get(path);
    const label = facts[i]!.label;
    if (result?.calibration) {
      const unverified = Object.entries(result.calibration.offsets)
        .filter(([, value]) => value === null)
        .map(([name]) => name);
      if (opts.verbose) {
        const how = result.cached ? "cached" : `${result.calibration.handshakes} calibration handshakes`;
        opts.status(
          `carnot: ${label}: offsets verified (${how}): ${JSON.stringify(result.calibration.offsets)}`,
        );
      }
      if (unverified.length > 0) {
        opts.status(
          `carnot: warning: ${label}: no verified offset for ${unverified.join(", ")}: those values stay null`,
        );
      }
    } else {
      opts.status(
        `carnot: warning: ${label}: struct offsets not verified (${result?.problem ?? "not calibrated"}): ` +
          "negotiated_group, tls_version and cipher stay null, implicit handshakes are not seen",
      );
    }
  }
}

async function openProbes(opts: SourceOptions): Promise<{ probes: SslProbes; facts: LibraryFacts[] } | null> {
  const libraries = opts.libraries.length > 0 ? opts.libraries : [findSystemLibssl()];
  if (libraries.some((l) => l === null)) {
    // with the wire source on, a host without OpenSSL is still traced
    if (opts.source === "all") {
      opts.status(
        "carnot: warning: no libssl found: only the wire source runs (name one with --libssl PATH)",
      );
      return null;
    }
    throw new CarnotError("no libssl found (install libssl3, or name one with --libssl PATH)");
  }
  const paths = libraries as string[];
  const calibrations = await calibrateAll(paths, opts.libraries.length > 0, opts);
  const offsetsOf = (path: string) => {
    let resolved = path;
    try {
      resolved = realpathSync(path);
    } catch {}
    const c = calibrations.get(resolved)?.calibration;
    return c ? { ...c.offsets, handStateOk: c.handStateOk } : null;
  };
  const probes = SslProbes.open({
    libraries: paths,
    pid: opts.pid,
    comm: opts.comm,
    cgroup: opts.cgroup,
    ringbufSize: opts.ringbufSize,
    verbose: opts.verbose,
    offsets: paths.map(offsetsOf),
    implicitProbes: opts.implicitProbes,
    aggregate: opts.rawEvents !== true,
    maxPending: opts.maxPending,
  });
  const facts = probes.libraries.map(({ id, path }) =>
    libraryFacts(
      path,
      calibrations.get(path),
      opts.groupIndex,
      (probes.refused.get(id) ?? []).map((r) => r.func),
    ),
  );
  for (const [id, refused] of probes.refused) {
    const which = refused.map((r) => `${r.func}: ${r.reason}`).join("; ");
    opts.status(
      `carnot: warning: ${facts[id]?.label}: not probed — ${which}; tracing with the other probes, ` +
        "what only these would show stays null",
    );
  }
  reportCalibrations(probes, calibrations, facts, opts);
  return { probes, facts };
}

function openWire(opts: SourceOptions, probes: SslProbes | null): WireCapture | null {
  try {
    return WireCapture.open({
      pid: opts.pid,
      comm: opts.comm,
      cgroup: opts.cgroup,
      shared: probes?.sharedMaps(),
      ringbufSize: opts.ringbufSize,
    });
  } catch (err) {
    if (opts.source === "wire" || probes === null) throw err;
    opts.status(`carnot: warning: ${describeError(err)}: only the libssl source runs`);
    return null;
  }
}

export async function openSources(opts: SourceOptions): Promise<OpenedSources> {
  const opened = opts.source === "wire" ? null : await openProbes(opts);
  const probes = opened?.probes ?? null;
  let wire: WireCapture | null = null;
  try {
    wire = opts.source === "libssl" ? null : openWire(opts, probes);
  } catch (err) {
    probes?.close();
    throw err;
  }
  const ring = probes?.ring ?? wire?.reader;
  if (!ring) throw new CarnotError("no source to trace with");
  const parts: string[] = [];
  if (probes)
    parts.push(`${probes.linkCount} probes on ${(opened?.facts ?? []).map((f) => f.label).join(", ")}`);
  if (wire) parts.push(`the wire of every TCP connection (cgroup ${wire.cgroupRoot})`);
  return {
    probes,
    wire,
    region: {
      dataBuffer: ring.dataBuffer,
      dataOffset: ring.dataOffset,
      length: 2 * ring.size,
      drain: (onRecord) => ring.drain(onRecord),
    },
    facts: opened?.facts ?? [],
    attachMs: (probes?.attachMs ?? 0) + (wire?.attachMs ?? 0),
    summary: parts.join(" and "),
    close() {
      wire?.close();
      probes?.close();
    },
  };
}
