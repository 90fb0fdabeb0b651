/**
 * Two network namespaces joined by a veth pair, for the wire tests that need a real link: a server side and a
 * client side on a private /30, MTU 1500, with the veth offloads off so that what one side writes crosses the
 * link as MTU-sized segments (as between two hosts) rather than as one large GSO packet. Names carry the
 * creating pid so that a pair left by a killed run can be found and removed.
 */
import { existsSync, readdirSync } from "node:fs";

/** Prefix of every namespace and veth this lab makes (veth names must fit in 15 bytes). */
const PREFIX = "crnlab";

export interface NetnsSide {
  /** namespace name (for `ip netns exec`) */
  readonly ns: string;
  /** the veth device inside it */
  readonly dev: string;
  /** its IPv4 address on the /30 */
  readonly addr: string;
}

export interface NetnsPair {
  readonly server: NetnsSide;
  readonly client: NetnsSide;
  readonly mtu: number;
  /** `cmd` prefixed to run inside a side's namespace (the process keeps its pid: `ip netns exec` execs it) */
  exec(side: NetnsSide, cmd: string[]): string[];
  /** Deletes both namespaces (and so the veth pair); safe to call twice. */
  destroy(): void;
}

/** Why the namespace tests cannot run here, or null. */
export function netnsSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  if (!Bun.which("ip")) return "ip (Debian iproute2) not installed";
  if (!Bun.which("ethtool")) return "ethtool (Debian ethtool) not installed";
  return null;
}

function ip(args: string[]): string {
  const r = Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

function inNs(ns: string, cmd: string[]): void {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, ...cmd], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} in ${ns}: ${r.stderr.toString().trim()}`);
}

/** The lab's namespaces that exist now. */
export function labNamespaces(): string[] {
  if (!existsSync("/run/netns")) return [];
  return readdirSync("/run/netns").filter((n) => n.startsWith(`${PREFIX}-`));
}

/** Removes namespaces left by lab runs whose process is gone (a killed test run). */
export function removeStaleNamespaces(): void {
  for (const ns of labNamespaces()) {
    const pid = Number(ns.split("-")[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !existsSync(`/proc/${pid}`)) ip(["netns", "del", ns]);
  }
}

/** Creates the pair, links up: server 10.231.0.1, client 10.231.0.2 (each pair is a world of its own). */
export function createNetnsPair(opts: { mtu?: number } = {}): NetnsPair {
  const mtu = opts.mtu ?? 1500;
  const id = crypto
    .getRandomValues(new Uint8Array(4))
    .reduce((s, b) => s + b.toString(16).padStart(2, "0"), "");
  const tag = `${PREFIX}-${process.pid}-${id}`;
  const server: NetnsSide = { ns: `${tag}-s`, dev: `${PREFIX}${id.slice(0, 6)}s`, addr: "10.231.0.1" };
  const client: NetnsSide = { ns: `${tag}-c`, dev: `${PREFIX}${id.slice(0, 6)}c`, addr: "10.231.0.2" };
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const side of [server, client]) if (labNamespaces().includes(side.ns)) ip(["netns", "del", side.ns]);
  };
  try {
    for (const side of [server, client]) ip(["netns", "add", side.ns]);
    ip([
      "link",
      "add",
      server.dev,
      "netns",
      server.ns,
      "type",
      "veth",
      "peer",
      "name",
      client.dev,
      "netns",
      client.ns,
    ]);
    for (const side of [server, client]) {
      ip(["-n", side.ns, "link", "set", "lo", "up"]);
      ip(["-n", side.ns, "link", "set", side.dev, "mtu", String(mtu), "up"]);
      ip(["-n", side.ns, "addr", "add", `${side.addr}/30`, "dev", side.dev]);
      // segmentation by the sender's TCP, no coalescing at the receiver: MTU-sized packets on both sides
      inNs(side.ns, ["ethtool", "-K", side.dev, "tso", "off", "gso", "off", "gro", "off"]);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    server,
    client,
    mtu,
    exec: (side, cmd) => ["ip", "netns", "exec", side.ns, ...cmd],
    destroy,
  };
}

export interface NamespaceServer {
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts `cmd` inside `side`'s namespace and resolves once something listens there on TCP `port`. */
export async function serveInNamespace(
  side: NetnsSide,
  cmd: string[],
  port: number,
): Promise<NamespaceServer> {
  const proc = Bun.spawn(["ip", "netns", "exec", side.ns, ...cmd], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    if (!(await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]))) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ss = Bun.spawnSync(["ip", "netns", "exec", side.ns, "ss", "-Hltn", `sport = :${port}`], {
      stdout: "pipe",
    });
    if (ss.stdout.toString().trim() !== "") break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      const err = await new Response(proc.stderr).text();
      throw new Error(
        `${cmd[0]} did not listen on ${side.addr}:${port}: ${err.trim().split("\n").slice(-1)[0]}`,
      );
    }
    await Bun.sleep(25);
  }
  return { pid: proc.pid, stop };
}
