/**
 * The two servers of the client-coverage lab, each on 127.0.0.1 and ::1 on one port, each answering HTTP:
 * nginx with the system OpenSSL 3.0, and Debian 13's OpenSSL 3.5 `s_server -www` through its own loader
 * (one process per address: s_server listens on one).
 */
import { join } from "node:path";
import {
  childPids,
  freeTcpPort,
  type RunningServer,
  startNginx,
  startOpenSslServer,
  type TlsCert,
} from "../../../src/lab/loopback.ts";
import { openssl35 } from "../kex-matrix.ts";

export const LAB_ADDRESSES = ["127.0.0.1", "::1"] as const;

export interface LabServer {
  /** "nginx (OpenSSL 3.0)" or "s_server (OpenSSL 3.5)" */
  readonly name: string;
  readonly port: number;
  /** the processes that make the server's handshakes (nginx: its workers) */
  readonly pids: number[];
  stop(): Promise<void>;
}

export async function startLabNginx(dir: string, cert: TlsCert, port = freeTcpPort()): Promise<LabServer> {
  const nginx = await startNginx(join(dir, "nginx"), cert, { port, hosts: [...LAB_ADDRESSES], workers: 1 });
  return { name: "nginx (OpenSSL 3.0)", port, pids: await childPids(nginx.pid), stop: () => nginx.stop() };
}

/** null when .cache/openssl35 is missing (make openssl35). */
export async function startLabSServer35(cert: TlsCert, port = freeTcpPort()): Promise<LabServer | null> {
  const v35 = openssl35();
  if (!v35) return null;
  const servers: RunningServer[] = [];
  try {
    for (const host of LAB_ADDRESSES)
      servers.push(await startOpenSslServer(cert, { port, host, command: v35.command }));
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  return {
    name: "s_server (OpenSSL 3.5)",
    port,
    pids: servers.map((s) => s.pid),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}
