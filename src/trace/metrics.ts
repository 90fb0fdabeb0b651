/**
 * What `carnot trace` counts: the published flat counters (totals over both sources), then each source's own,
 * and how the two were joined. Printed on stderr (`--metrics-interval`) and written to `--metrics-json`.
 */
import { writeFailure } from "../errors.ts";
import { writeFileSafely } from "../io/safe-file.ts";

export interface LibsslMetrics {
  events: number;
  handshakes: number;
  timeouts: number;
  evictions: number;
  kernel_drops: number;
}

export interface WireMetrics {
  events: number;
  segments: number;
  /** connections whose stream started with a ClientHello (kernel) */
  connections_followed: number;
  /** lines' worth: connections with a readable ClientHello */
  handshakes: number;
  /** connections whose first bytes were something else (kernel) */
  not_tls: number;
  /** connections older than the trace (kernel) */
  late: number;
  /** connections of processes the filters leave out (kernel) */
  filtered: number;
  /** connections that started like TLS but could not be read: no line, by problem */
  unreadable: Record<string, number>;
  /** lines written with a problem after the ClientHello (a gap, a conflict, …), by problem */
  problems: Record<string, number>;
  timeouts: number;
  evictions: number;
  /** directions that reached the kernel's copy limit */
  capped: number;
  kernel_drops: number;
}

export interface JoinMetrics {
  joined: number;
  libssl_only: number;
  wire_only: number;
  links_rejected: number;
}

export interface TraceMetrics {
  eventsReceived: number;
  handshakesEmitted: number;
  correlationTimeouts: number;
  cacheEvictions: number;
  kernel_drops: number;
  kernel_drop_rate: number;
  libssl: LibsslMetrics | null;
  wire: WireMetrics | null;
  join: JoinMetrics;
}

/** Before the pipeline runs (a scrape while the probes are being attached). */
export const EMPTY_METRICS: TraceMetrics = Object.freeze({
  eventsReceived: 0,
  handshakesEmitted: 0,
  correlationTimeouts: 0,
  cacheEvictions: 0,
  kernel_drops: 0,
  kernel_drop_rate: 0,
  libssl: null,
  wire: null,
  join: Object.freeze({ joined: 0, libssl_only: 0, wire_only: 0, links_rejected: 0 }),
});

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** One line for stderr: the published counters, then each source's. */
export function formatMetrics(m: TraceMetrics): string {
  let line =
    `eventsReceived=${m.eventsReceived} handshakesEmitted=${m.handshakesEmitted} ` +
    `correlationTimeouts=${m.correlationTimeouts} cacheEvictions=${m.cacheEvictions} ` +
    `kernel_drops=${m.kernel_drops} kernel_drop_rate=${m.kernel_drop_rate}`;
  if (m.libssl) line += ` libssl_events=${m.libssl.events} libssl_handshakes=${m.libssl.handshakes}`;
  if (m.wire) {
    const w = m.wire;
    line +=
      ` wire_events=${w.events} wire_handshakes=${w.handshakes} wire_not_tls=${w.not_tls}` +
      ` wire_unreadable=${sum(w.unreadable)} wire_problems=${sum(w.problems)} wire_kernel_drops=${w.kernel_drops}`;
  }
  if (m.libssl && m.wire) line += ` joined=${m.join.joined} links_rejected=${m.join.links_rejected}`;
  return line;
}

export function writeMetricsJson(path: string, m: TraceMetrics, followSymlinks = false): void {
  try {
    writeFileSafely(path, `${JSON.stringify(m)}\n`, { followSymlinks });
  } catch (err) {
    throw writeFailure(path, err, "cannot write metrics to");
  }
}
