/**
 * Trace lines in the lab's terms: the handshake facts of a line as tshark's summary states them, and the lines
 * of one TCP connection, picked by its endpoints (the tracer sees the whole host: a test reads only its own).
 */
import type { ChainedObservation } from "../../../src/trace/observation.ts";
import type { ConnectionFacts, HandshakeSummary } from "./tshark.ts";

/** A summary as a line can state it: any field may be null. */
export type LineSummary = { [K in keyof HandshakeSummary]: HandshakeSummary[K] | null };

/** What a line says of the handshake, field by field as summarize() says it of a capture. */
export function lineSummary(line: ChainedObservation): LineSummary {
  return {
    serverName: line.server_name,
    groupsOffered: line.groups_offered,
    keySharesOffered: line.key_shares_offered,
    helloRetry: line.hello_retry,
    version: line.tls_version,
    cipher: line.cipher,
    group: line.negotiated_group,
    alpn: line.alpn,
    resumed: line.resumed,
  };
}

/** The endpoints of a line as [local address, local port, remote address, remote port]. */
export const endpointsOf = (line: ChainedObservation) =>
  [line.local_addr, line.local_port, line.remote_addr, line.remote_port] as const;

/** The client's and the server's lines of one captured connection (each side from its own endpoints). */
export function linesOfConnection(
  lines: readonly ChainedObservation[],
  conn: ConnectionFacts,
): { client: ChainedObservation[]; server: ChainedObservation[] } {
  const is = (l: ChainedObservation, local: ConnectionFacts["client"], remote: ConnectionFacts["client"]) =>
    l.local_addr === local.addr &&
    l.local_port === local.port &&
    l.remote_addr === remote.addr &&
    l.remote_port === remote.port;
  return {
    client: lines.filter((l) => l.role === "client" && is(l, conn.client, conn.server)),
    server: lines.filter((l) => l.role === "server" && is(l, conn.server, conn.client)),
  };
}
