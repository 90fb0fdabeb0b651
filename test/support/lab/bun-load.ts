/**
 * Bun's own TLS under load, for the accounting tests: a Bun.serve server on 127.0.0.1 (its listener sets
 * TCP_DEFER_ACCEPT) and a client process that makes a bounded number of fresh connections, each one TLS
 * handshake and one HTTP/1.0 request, a fixed number at a time. Both negotiate X25519MLKEM768.
 */
import type { TlsCert } from "../../../src/lab/loopback.ts";
import { runClient } from "../../../src/lab/loopback.ts";

const SERVER_SCRIPT = `
const [cert, key] = process.argv.slice(-2);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  fetch: () => new Response("ok\\n"),
});
console.log(JSON.stringify({ pid: process.pid, port: server.port }));
`;

const CLIENT_SCRIPT = `
import { connect } from "node:tls";
const [port, sni, total, concurrency] = process.argv.slice(-4);
let started = 0, ok = 0, failed = 0;
const one = () => new Promise((resolve) => {
  const socket = connect({ host: "127.0.0.1", port: Number(port), servername: sni, rejectUnauthorized: false }, () => {
    socket.write("GET / HTTP/1.0\\r\\nHost: " + sni + "\\r\\n\\r\\n");
  });
  let reply = "";
  socket.on("data", (chunk) => { reply += chunk; });
  socket.on("end", () => { reply.startsWith("HTTP/1.1 200") ? ok++ : failed++; socket.destroy(); resolve(); });
  socket.on("error", () => { failed++; resolve(); });
});
const worker = async () => { while (started < Number(total)) { started++; await one(); } };
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
console.log(JSON.stringify({ pid: process.pid, ok, failed }));
`;

export interface BunServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Starts Bun.serve with TLS on 127.0.0.1 in a process of its own. */
export async function startBunServer(cert: TlsCert): Promise<BunServer> {
  const proc = Bun.spawn([process.execPath, "-e", SERVER_SCRIPT, cert.cert, cert.key], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
    env: { ...process.env, BUN_BE_BUN: "1" },
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Bun.serve exited before listening (exit ${await proc.exited})`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const { pid, port } = JSON.parse(text) as { pid: number; port: number };
  return {
    pid,
    port,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** `total` connections to 127.0.0.1:port, `concurrency` at a time, from one Bun process. */
export async function bunClientLoad(
  port: number,
  sni: string,
  total: number,
  concurrency: number,
): Promise<{ pid: number; ok: number; failed: number }> {
  const r = await runClient(
    [process.execPath, "-e", CLIENT_SCRIPT, String(port), sni, String(total), String(concurrency)],
    { BUN_BE_BUN: "1" },
  );
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{"))
    throw new Error(
      `bun client load failed (exit ${r.exitCode}): ${r.stderr.trim().split("\n").pop() ?? ""}`,
    );
  return JSON.parse(line);
}
