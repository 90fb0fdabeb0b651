/**
 * Bun's own TLS (BoringSSL, inside the carnot executable) as a client and a server on loopback: it negotiates
 * the hybrid post-quantum X25519MLKEM768 by default, and uses no system library, so only the wire sees it.
 * The carnot executable runs the script as Bun itself (BUN_BE_BUN=1; from source, `process.execPath` is bun).
 */
import type { TlsCert } from "./loopback.ts";
import { runClient } from "./loopback.ts";

/** One process: Bun.serve with TLS on 127.0.0.1, then one node:tls handshake to it with the given SNI. */
const PAIR_SCRIPT = `
import { connect } from "node:tls";
const [cert, key, sni] = process.argv.slice(-3);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  fetch: () => new Response("ok\\n"),
});
const socket = connect({ host: "127.0.0.1", port: server.port, servername: sni, rejectUnauthorized: false }, () => {
  let reply = "";
  socket.on("data", (chunk) => { reply += chunk; });
  socket.on("end", () => {
    console.log(JSON.stringify({ pid: process.pid, port: server.port, localPort: socket.localPort,
      version: socket.getProtocol(), status: reply.split("\\r\\n")[0] }));
    server.stop(true);
    process.exit(0);
  });
  socket.write("GET / HTTP/1.0\\r\\nHost: " + sni + "\\r\\n\\r\\n");
});
socket.on("error", (err) => { console.error("bun tls: " + err.message); process.exit(1); });
`;

export interface BunTlsPair {
  /** the one process that was both client and server */
  pid: number;
  /** the server's port and the client's */
  port: number;
  localPort: number;
  version: string;
}

/** Runs Bun's TLS against itself once; throws with Bun's own message when the handshake fails. */
export async function bunTlsPair(cert: TlsCert, sni: string): Promise<BunTlsPair> {
  const r = await runClient([process.execPath, "-e", PAIR_SCRIPT, cert.cert, cert.key, sni], {
    BUN_BE_BUN: "1",
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{")) {
    throw new Error(`bun tls pair failed (exit ${r.exitCode}): ${r.stderr.trim().split("\n").pop() ?? ""}`);
  }
  return JSON.parse(line) as BunTlsPair;
}
