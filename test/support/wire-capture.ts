/**
 * Real handshakes on loopback, captured by `dumpcap` (Debian package `tshark`) with a filter on the test's own
 * port, then read back with `tshark`: each TCP connection's segments as the kernel would hand them to the wire
 * source (per socket, per direction, stream offsets, in capture order), and tshark's own dissection of the
 * TLS fields, the independent truth the parser is compared with.
 */
import { existsSync, statSync } from "node:fs";
import { freeTcpPort } from "../../src/lab/loopback.ts";
import type { Direction, WireEnd } from "../../src/trace/wire/connection.ts";

export const TSHARK = Bun.which("tshark");
export const DUMPCAP = Bun.which("dumpcap");

/** Why the capture tests cannot run here, or null. */
export function captureSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "capturing on loopback needs root";
  if (!TSHARK || !DUMPCAP) return "tshark/dumpcap missing (Debian package tshark; `make setup` installs it)";
  return null;
}

/** Connects to `marker` (nothing listens there) until the capture file holds a packet of it; false on timeout. */
async function markerSeen(path: string, marker: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await Bun.connect({ hostname: "127.0.0.1", port: marker, socket: { data() {} } }).catch(() => {});
    await Bun.sleep(100);
    if (!existsSync(path)) continue;
    const seen = Bun.spawnSync([TSHARK!, "-r", path, "-Y", `tcp.port == ${marker}`, "-c", "100000"], {
      stderr: "ignore",
    });
    if (seen.stdout.length > 0) return true;
  }
  return false;
}

/**
 * A capture running on `lo` for the given TCP ports; `stop()` ends it once every packet sent before it is in
 * the file, and returns the pcapng path. The kernel hands packets to dumpcap in blocks, late, and dumpcap says
 * it is capturing before its filter sees every packet: at both ends a marker connection (to a port nothing
 * listens on) is made until the file holds it.
 */
export async function startCapture(ports: number[], path: string): Promise<{ stop(): Promise<string> }> {
  const marker = freeTcpPort();
  const filter = [...ports, marker].map((p) => `tcp port ${p}`).join(" or ");
  const proc = Bun.spawn([DUMPCAP!, "-q", "-i", "lo", "-f", filter, "-w", path], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  // dumpcap says "Capturing on 'Loopback: lo'" once the filter is installed
  const reader = proc.stderr.getReader();
  let said = "";
  const deadline = Date.now() + 10_000;
  while (!said.includes("Capturing on") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`dumpcap exited: ${said.trim()}`);
    said += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  if (!(await markerSeen(path, marker, 10_000))) {
    proc.kill("SIGTERM");
    await proc.exited;
    throw new Error("dumpcap captured nothing on lo in 10 s");
  }
  return {
    async stop() {
      await markerSeen(path, marker, 5000);
      proc.kill("SIGTERM");
      await proc.exited;
      if (!existsSync(path) || statSync(path).size === 0) throw new Error(`dumpcap wrote nothing to ${path}`);
      return path;
    },
  };
}

/** One packet of a TCP connection, from one end's side. */
export type WireEvent =
  | { kind: "segment"; direction: Direction; offset: number; bytes: Uint8Array }
  | { kind: "end"; direction: Direction; end: WireEnd; offset: number };

export interface CapturedConnection {
  stream: number;
  clientPort: number;
  serverPort: number;
  /** the packets in capture order, from the client socket's side (direction 0 = sent by the client) */
  client: WireEvent[];
  /** the same packets from the server socket's side */
  server: WireEvent[];
}

function tsharkFields(pcap: string, fields: string[], filter?: string): string[][] {
  const args = [TSHARK!, "-r", pcap, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"];
  if (filter) args.push("-Y", filter);
  for (const f of fields) args.push("-e", f);
  const out = Bun.spawnSync(args, { stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`tshark failed: ${out.stderr.toString().trim()}`);
  return out.stdout
    .toString()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("|"));
}

/** Every TCP connection of a capture, as the wire source would see it at each end. */
export function readConnections(pcap: string): CapturedConnection[] {
  const rows = tsharkFields(pcap, [
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq",
    "tcp.len",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tcp.payload",
  ]);
  const byStream = new Map<number, CapturedConnection>();
  for (const [stream, src, dst, seq, len, syn, ack, fin, rst, payload] of rows) {
    const id = Number(stream);
    let conn = byStream.get(id);
    if (conn === undefined) {
      // the first packet of a connection is the client's SYN
      if (syn !== "1" || ack === "1") continue;
      conn = { stream: id, clientPort: Number(src), serverPort: Number(dst), client: [], server: [] };
      byStream.set(id, conn);
    }
    const fromClient = Number(src) === conn.clientPort;
    // tshark's relative sequence number: the SYN is 0, the first byte of the stream 1
    const offset = Number(seq) - 1;
    const events: WireEvent[] = [];
    if (Number(len) > 0)
      events.push({ kind: "segment", direction: 0, offset, bytes: Buffer.from(payload!, "hex") });
    if (fin === "1") events.push({ kind: "end", direction: 0, end: "fin", offset: offset + Number(len) });
    if (rst === "1") events.push({ kind: "end", direction: 0, end: "rst", offset });
    for (const e of events) {
      conn.client.push({ ...e, direction: fromClient ? 0 : 1 });
      conn.server.push({ ...e, direction: fromClient ? 1 : 0 });
    }
  }
  return [...byStream.values()];
}

/** What tshark dissects of the TLS handshakes of one TCP connection (`-E occurrence=a`: every value, in order). */
export interface TsharkTls {
  serverName: string[];
  ciphers: number[];
  supportedGroups: number[];
  keyShareGroups: number[];
  keyShareSelectedGroup: number[];
  supportedVersions: number[];
  alpn: string[];
  extensionTypes: number[];
  signatureAlgorithms: number[];
  alertLevels: number[];
  alertDescriptions: number[];
  namedCurve: number[];
  dhPrime: string[];
  handshakeTypes: number[];
  /** tls.handshake.version: the legacy version of each hello */
  helloVersions: number[];
  sessionIds: string[];
  pskSelected: number[];
}

const FIELDS: Record<keyof TsharkTls, string> = {
  serverName: "tls.handshake.extensions_server_name",
  ciphers: "tls.handshake.ciphersuite",
  supportedGroups: "tls.handshake.extensions_supported_group",
  keyShareGroups: "tls.handshake.extensions_key_share_group",
  keyShareSelectedGroup: "tls.handshake.extensions_key_share_selected_group",
  supportedVersions: "tls.handshake.extensions.supported_version",
  alpn: "tls.handshake.extensions_alpn_str",
  extensionTypes: "tls.handshake.extension.type",
  signatureAlgorithms: "tls.handshake.sig_hash_alg",
  alertLevels: "tls.alert_message.level",
  alertDescriptions: "tls.alert_message.desc",
  namedCurve: "tls.handshake.server_named_curve",
  dhPrime: "tls.handshake.p",
  handshakeTypes: "tls.handshake.type",
  helloVersions: "tls.handshake.version",
  sessionIds: "tls.handshake.session_id",
  pskSelected: "tls.handshake.extensions.psk.identity.selected",
};

const STRING_FIELDS = new Set<keyof TsharkTls>(["serverName", "alpn", "dhPrime", "sessionIds"]);

/** tshark's TLS fields of one packet, with the connection and the port that sent it. */
export interface TsharkFrame extends TsharkTls {
  stream: number;
  srcPort: number;
}

/** tshark's TLS fields of every packet of a capture, in capture order (one tshark run). */
export function readTlsFrames(pcap: string): TsharkFrame[] {
  const keys = Object.keys(FIELDS) as (keyof TsharkTls)[];
  const rows = tsharkFields(pcap, ["tcp.stream", "tcp.srcport", ...keys.map((k) => FIELDS[k])], "tcp");
  return rows.map(([stream, srcPort, ...cells]) => {
    const out = Object.fromEntries(keys.map((k) => [k, []])) as unknown as TsharkFrame;
    out.stream = Number(stream);
    out.srcPort = Number(srcPort);
    keys.forEach((k, i) => {
      const cell = cells[i] ?? "";
      if (cell === "") return;
      for (const v of cell.split(",")) (out[k] as unknown[]).push(STRING_FIELDS.has(k) ? v : Number(v));
    });
    return out;
  });
}

/** The frames sent from `srcPort` in one connection; with `types`, only those holding one of these handshake types. */
export function framesOf(
  frames: TsharkFrame[],
  stream: number,
  srcPort: number,
  types?: number[],
): TsharkFrame[] {
  return frames.filter(
    (f) =>
      f.stream === stream &&
      f.srcPort === srcPort &&
      (!types || f.handshakeTypes.some((t) => types.includes(t))),
  );
}
