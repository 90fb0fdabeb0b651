/** `carnot serve`: the routes of src/serve/routes.ts on Bun's HTTP server, until SIGINT or SIGTERM. */
import { route, type ServeOptions } from "./routes.ts";

export interface ListenAddress {
  hostname: string;
  port: number;
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (loopback); null when it is none of these. */
export function parseAddress(addr: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { hostname: m[1] ?? (m[2] || "127.0.0.1"), port };
}

export interface RunningServer {
  url: string;
  stop(): Promise<void>;
}

export function startServer(address: ListenAddress, opts: ServeOptions): RunningServer {
  const server = Bun.serve({
    hostname: address.hostname,
    port: address.port,
    // Bun's own cap sits above the routes' limit, which answers first and names it
    maxRequestBodySize: opts.maxBodyBytes * 2 + (1 << 20),
    fetch: (req) => route(req, opts),
  });
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return { url: `http://${host}:${server.port}`, stop: () => server.stop() };
}
