/** Sockets: made, paired, bound, connected, asked for their addresses, accepted. */
import { netFromAnnotation, parseSockaddr } from "../args.ts";
import { O_CLOEXEC } from "../constants.ts";
import type { Net } from "../schema.ts";
import { fileFromAnnotation, type OpenFile } from "../tables.ts";
import type { Handler } from "./context.ts";
import { openPair } from "./fds.ts";
import { emptyNet, mergeNet } from "./net.ts";

const SOCK_PROTOCOLS: Record<string, Record<number, string>> = {
  AF_INET: { 1: "TCP", 2: "UDP", 3: "RAW", 5: "SCTP" },
  AF_INET6: { 1: "TCP", 2: "UDP", 3: "RAW", 5: "SCTP" },
  AF_UNIX: { 1: "STREAM", 2: "DGRAM", 5: "SEQPACKET" },
};
const IPPROTO_NAMES: Record<string, string> = {
  IPPROTO_TCP: "TCP",
  IPPROTO_UDP: "UDP",
  IPPROTO_ICMP: "ICMP",
  IPPROTO_ICMPV6: "ICMPV6",
  IPPROTO_SCTP: "SCTP",
  IPPROTO_RAW: "RAW",
  IPPROTO_UDPLITE: "UDPLITE",
  IPPROTO_MPTCP: "MPTCP",
};

const socket: Handler = (ctx) => {
  const args = ctx.args;
  const family = args.at(0) ?? null;
  const type = ctx.words[1] ?? null;
  ctx.socketFamily = family;
  ctx.socketType = type;
  const protocolName = args.at(2);
  const proto = protocolName === undefined ? undefined : IPPROTO_NAMES[protocolName];
  const base = type === null ? null : type & 0xf;
  const protocol =
    proto ?? (family !== null && base !== null ? (SOCK_PROTOCOLS[family]?.[base] ?? null) : null);
  const n: Net = emptyNet(family, protocol);
  ctx.resourceType = "SOCKET";
  if (ctx.ok) {
    const annotated = ctx.retAnnotation === null ? null : netFromAnnotation(ctx.retAnnotation);
    const file: OpenFile = {
      path: null,
      type: "SOCKET",
      net: annotated === null ? n : mergeNet(n, annotated),
    };
    ctx.files.fds.set(ctx.retval!, { file, cloexec: ((type ?? 0) & O_CLOEXEC) !== 0 });
    ctx.net = file.net;
  } else {
    ctx.net = n;
  }
};

const socketpair: Handler = (ctx) => {
  const family = ctx.args.at(0) ?? null;
  if (ctx.ok)
    openPair(ctx, ctx.args.at(3), ((ctx.words[1] ?? 0) & O_CLOEXEC) !== 0, (a) => {
      const file: OpenFile = a !== null ? fileFromAnnotation(a) : { path: null, type: "SOCKET", net: null };
      file.net = (a !== null ? netFromAnnotation(a) : null) ?? emptyNet(family, null);
      return file;
    });
  ctx.resourceType = "SOCKET";
};

/** connect and bind: the address the call names is the peer's or the socket's own. */
const connectOrBind: Handler = (ctx) => {
  const address = ctx.args.at(1);
  const sa = address === undefined ? null : parseSockaddr(address);
  ctx.resourceType = "SOCKET";
  if (sa === null) return;
  const add =
    ctx.call === "connect"
      ? { ...emptyNet(sa.family, null), remote_addr: sa.addr, remote_port: sa.port }
      : // port 0 asks the kernel to choose one: which, the trace tells only later (getsockname)
        { ...emptyNet(sa.family, null), local_addr: sa.addr, local_port: sa.port === 0 ? null : sa.port };
  const merged = mergeNet(ctx.fdEntry?.file.net ?? null, add);
  ctx.net = merged;
  if (ctx.fdEntry && (ctx.ok || ctx.errno === "EINPROGRESS")) ctx.fdEntry.file.net = merged;
};

/** getsockname and getpeername: the kernel's answer, so a port bound as 0 is known from here on. */
const socketName: Handler = (ctx) => {
  const address = ctx.args.at(1);
  const sa = ctx.ok && address !== undefined ? parseSockaddr(address) : null;
  const entry = ctx.fdEntry;
  if (sa === null || !entry) return;
  const add =
    ctx.call === "getsockname"
      ? { ...emptyNet(sa.family, null), local_addr: sa.addr, local_port: sa.port }
      : { ...emptyNet(sa.family, null), remote_addr: sa.addr, remote_port: sa.port };
  entry.file.net = mergeNet(entry.file.net, add);
  ctx.net = entry.file.net;
};

/** accept and accept4: a new socket with the listener's local end and the peer's address. */
const accept: Handler = (ctx) => {
  ctx.resourceType = "SOCKET";
  if (!ctx.ok) return;
  const address = ctx.args.at(1);
  const sa = address === undefined ? null : parseSockaddr(address);
  const listening = ctx.fdEntry?.file.net ?? null;
  let n: Net = emptyNet(sa?.family ?? listening?.family ?? null, listening?.protocol ?? null);
  n.local_addr = listening?.local_addr ?? null;
  n.local_port = listening?.local_port ?? null;
  if (sa !== null) {
    n.remote_addr = sa.addr;
    n.remote_port = sa.port;
  }
  if (ctx.retAnnotation !== null) {
    const a = netFromAnnotation(ctx.retAnnotation);
    if (a !== null) n = mergeNet(n, a);
  }
  const cloexec = ctx.call === "accept4" && ((ctx.words[3] ?? 0) & O_CLOEXEC) !== 0;
  ctx.files.fds.set(ctx.retval!, { file: { path: null, type: "SOCKET", net: n }, cloexec });
  ctx.net = n;
};

export const SOCKET_HANDLERS: Readonly<Record<string, Handler>> = {
  socket,
  socketpair,
  connect: connectOrBind,
  bind: connectOrBind,
  getsockname: socketName,
  getpeername: socketName,
  accept,
  accept4: accept,
};
