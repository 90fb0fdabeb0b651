/**
 * Traffic generators for the wire edge cases (issue 12), each one thing a capture must survive: a ClientHello
 * one byte per segment, in two segments, reordered, cut by a reset; plain HTTP on 443; garbage behind a TLS
 * record header. The bytes go out through traffic.py (system python: TCP_NODELAY and SO_LINGER per socket).
 */
import { join } from "node:path";
import { runClient, SYSTEM_PYTHON } from "../../../src/lab/loopback.ts";
import type { NetnsSide } from "./netns.ts";

const TRAFFIC = join(import.meta.dir, "traffic.py");

export type TrafficMode = "send" | "bytewise" | "split" | "reset";

export interface TrafficResult {
  pid: number;
  localPort: number;
  sent: number;
  received: number;
  /** the first 16 bytes received, hex */
  head: string;
  ended: "eof" | "reset" | "timeout" | "not read";
}

export interface TrafficOptions {
  /** the delay in ms between bytes (bytewise) or the length of the first segment (split) */
  arg?: number;
  /** run inside this, e.g. `ip netns exec NS` */
  prefix?: string[];
}

function trafficCommand(
  mode: TrafficMode,
  host: string,
  port: number,
  bytes: Uint8Array,
  opts: TrafficOptions,
) {
  return [
    ...(opts.prefix ?? []),
    SYSTEM_PYTHON,
    TRAFFIC,
    mode,
    host,
    String(port),
    Buffer.from(bytes).toString("hex"),
    ...(opts.arg === undefined ? [] : [String(opts.arg)]),
  ];
}

/** Sends `bytes` to host:port in the given way. */
export async function sendTraffic(
  mode: TrafficMode,
  host: string,
  port: number,
  bytes: Uint8Array,
  opts: TrafficOptions = {},
): Promise<TrafficResult> {
  return trafficResult(mode, await runClient(trafficCommand(mode, host, port, bytes, opts)));
}

/**
 * The same, held back: the process (its pid final: `exec`) waits until `go()` lets it connect, so that a tracer
 * can be started for its pid first.
 */
export function gatedTraffic(
  mode: TrafficMode,
  host: string,
  port: number,
  bytes: Uint8Array,
  opts: TrafficOptions = {},
): { pid: number; go(): Promise<TrafficResult> } {
  const proc = Bun.spawn(
    ["sh", "-c", 'read -r _ && exec "$@"', "sh", ...trafficCommand(mode, host, port, bytes, opts)],
    { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  return {
    pid: proc.pid,
    async go() {
      proc.stdin.write("go\n");
      await proc.stdin.end();
      const [stdout, stderr, exitCode] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      return trafficResult(mode, { pid: proc.pid, stdout, stderr, exitCode });
    },
  };
}

function trafficResult(
  mode: TrafficMode,
  r: { pid: number; stdout: string; stderr: string; exitCode: number },
): TrafficResult {
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  if (r.exitCode !== 0 || !line)
    throw new Error(`traffic.py ${mode}: ${r.stderr.trim().split("\n").slice(-1)[0]}`);
  const o = JSON.parse(line) as Record<string, unknown>;
  return {
    pid: o.pid as number,
    localPort: o.local_port as number,
    sent: o.sent as number,
    received: o.received as number,
    head: o.head as string,
    ended: o.ended as TrafficResult["ended"],
  };
}

/**
 * The first TLS record a client sends — its ClientHello, exactly as on the wire — read by a listener on
 * 127.0.0.1 from Bun's own TLS (BoringSSL: an X25519MLKEM768 key share, 1,216 bytes of it).
 */
export async function captureClientHello(sni: string): Promise<Uint8Array> {
  let bytes = new Uint8Array(0);
  const { promise, resolve } = Promise.withResolvers<Uint8Array>();
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, chunk) {
        bytes = Buffer.concat([bytes, chunk]);
        const length = bytes.length >= 5 ? 5 + ((bytes[3]! << 8) | bytes[4]!) : Number.POSITIVE_INFINITY;
        if (bytes.length >= length) {
          resolve(bytes.slice(0, length));
          socket.end();
        }
      },
    },
  });
  const client = fetch(`https://127.0.0.1:${listener.port}/`, {
    tls: { rejectUnauthorized: false, serverName: sni },
  }).catch(() => null); // the listener hangs up after the hello
  const hello = await Promise.race([promise, Bun.sleep(10_000).then(() => null)]);
  await client;
  listener.stop(true);
  if (!hello) throw new Error("no ClientHello arrived from Bun's fetch");
  return hello;
}

/** A TLS handshake record header (16 03 01) and then `length` random bytes, the length field included. */
export function garbageAfterRecordHeader(length = 300): Uint8Array {
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), crypto.getRandomValues(new Uint8Array(length))]);
}

export const PLAIN_HTTP_REQUEST = new TextEncoder().encode(
  "GET / HTTP/1.0\r\nHost: plain.lab.example\r\n\r\n",
);

function nft(side: NetnsSide, args: string[]): void {
  const r = Bun.spawnSync(["ip", "netns", "exec", side.ns, "nft", ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`nft ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

/**
 * Reorders a connection's first data at the receiver: an nftables rule in `side`'s namespace (the server's)
 * drops, once, the first packet arriving for `port` whose payload starts with a TLS handshake record header
 * (16 03 01). With the ClientHello written as two segments, the server's TCP receives the second first (it
 * SACKs it) and the first as the sender's retransmission. A drop on the sending side would not do: TCP learns
 * of a local drop and sends the data again, coalesced, as if nothing had happened. Returns the undo.
 */
export function dropFirstHelloSegmentOnce(side: NetnsSide, port: number): () => void {
  nft(side, ["add", "table", "inet", "carnot_lab"]);
  nft(side, ["add", "chain", "inet", "carnot_lab", "in", "{ type filter hook prerouting priority 0 ; }"]);
  nft(side, [
    "add",
    "rule",
    "inet",
    "carnot_lab",
    "in",
    `tcp dport ${port} @ih,0,24 0x160301 limit rate 1/hour burst 1 packets drop`,
  ]);
  return () => nft(side, ["delete", "table", "inet", "carnot_lab"]);
}
