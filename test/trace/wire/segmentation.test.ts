/**
 * The wire parser on captured bytes cut and shuffled the way a network and the kernel can hand them over:
 * one byte per segment, flights reversed, retransmissions and overlaps, MTU-sized pieces, and the ways it
 * goes wrong (conflicting retransmissions, a hole, a cut-off stream, garbage behind a record header, random
 * mutations). A handshake re-cut must give exactly the result of the original; a broken one an honest null,
 * never a throw, never a value that is not in the bytes. Needs root (the bytes are captured on `lo`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort, makeSelfSignedCert, startOpenSslServer } from "../../../src/lab/loopback.ts";
import { type WireHandshake, WireConnection, wireContext } from "../../../src/trace/wire/connection.ts";
import {
  type CapturedConnection,
  captureSkipReason,
  readConnections,
  startCapture,
  type WireEvent,
} from "../../support/wire-capture.ts";

const skip = captureSkipReason();
if (skip) console.warn(`skipping the segmentation tests: ${skip}`);

const ctx = wireContext();

type Segment = Extract<WireEvent, { kind: "segment" }>;

function feed(events: WireEvent[], stopWhenDecided = true): { conn: WireConnection; result: WireHandshake } {
  const conn = new WireConnection(ctx);
  for (const e of events) {
    if (stopWhenDecided && conn.decided) break;
    if (e.kind === "segment") conn.segment(e.direction, e.offset, e.bytes);
    else conn.end(e.direction, e.end, e.offset);
  }
  return { conn, result: conn.result() };
}

/** Each segment cut into pieces of `size` bytes (the last may be shorter). */
function cut(events: WireEvent[], size: (i: number) => number): WireEvent[] {
  return events.flatMap((e) => {
    if (e.kind !== "segment") return [e];
    const out: WireEvent[] = [];
    for (let at = 0, i = 0; at < e.bytes.length; i++) {
      const n = Math.max(1, size(i));
      out.push({ ...e, offset: e.offset + at, bytes: e.bytes.subarray(at, at + n) });
      at += n;
    }
    return out;
  });
}

/** Each flight (consecutive segments of one direction) fed in reverse order. */
function reverseFlights(events: WireEvent[]): WireEvent[] {
  const out: WireEvent[] = [];
  let flight: WireEvent[] = [];
  for (const e of events) {
    if (flight.length > 0 && (e.kind !== "segment" || e.direction !== flight[0]!.direction)) {
      out.push(...flight.reverse());
      flight = [];
    }
    if (e.kind === "segment") flight.push(e);
    else out.push(e);
  }
  return [...out, ...flight.reverse()];
}

/** A deterministic pseudo-random sequence (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** One direction's whole stream, as captured. */
function stream(events: WireEvent[], direction: 0 | 1): Uint8Array {
  const segs = events.filter((e): e is Segment => e.kind === "segment" && e.direction === direction);
  const end = Math.max(0, ...segs.map((s) => s.offset + s.bytes.length));
  const out = new Uint8Array(end);
  for (const s of segs) out.set(s.bytes, s.offset);
  return out;
}

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(Buffer.from(needle)) >= 0;
}

const u16 = (v: number) => Uint8Array.of(v >> 8, v & 0xff);

interface Captured {
  name: string;
  connection: CapturedConnection;
  reference: WireHandshake;
}

const captured: Captured[] = [];
let dir = "";

describe.skipIf(skip !== null)("the wire parser on re-cut and broken captured bytes", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-wire-seg-"));
    const cert = await makeSelfSignedCert(dir);
    const ports = [freeTcpPort(), freeTcpPort(), freeTcpPort()];
    const capture = await startCapture(ports, join(dir, "seg.pcapng"));
    const names = ["TLS 1.3 hybrid (Bun)", "TLS 1.2 ECDHE (OpenSSL)", "HelloRetryRequest (OpenSSL)"];
    // Bun's fetch and Bun.serve: X25519MLKEM768, a 1.8 kB ClientHello
    const bun = Bun.serve({
      port: ports[0],
      hostname: "127.0.0.1",
      tls: { cert: Bun.file(cert.cert), key: Bun.file(cert.key) },
      fetch: () => new Response("ok"),
    });
    await (await fetch(`https://127.0.0.1:${ports[0]}/`, { tls: { rejectUnauthorized: false } })).text();
    bun.stop(true);
    const sClient = async (port: number, args: string[]) => {
      const proc = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-ign_eof", ...args], {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
      });
      proc.stdin.write("GET / HTTP/1.0\r\n\r\n");
      await proc.stdin.end();
      await proc.exited;
    };
    for (const [i, args, serverArgs] of [
      [1, ["-tls1_2", "-servername", "seg12.example"], []],
      [2, ["-groups", "X25519:secp384r1", "-servername", "seghrr.example"], ["-groups", "secp384r1"]],
    ] as const) {
      const server = await startOpenSslServer(cert, { port: ports[i], args: [...serverArgs] });
      await sClient(ports[i]!, [...args]);
      await server.stop();
    }
    const pcap = await capture.stop();
    const connections = readConnections(pcap).filter((k) =>
      k.client.some((e) => e.kind === "segment" && e.direction === 0),
    );
    ports.forEach((port, i) => {
      const connection = connections.find((k) => k.serverPort === port)!;
      captured.push({ name: names[i]!, connection, reference: feed(connection.client).result });
    });
  }, 60_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the captured handshakes themselves: complete, successful, with their facts", () => {
    expect(captured.map((c) => [c.reference.success, c.reference.problem])).toEqual([
      [true, null],
      [true, null],
      [true, null],
    ]);
    expect(captured[0]!.reference.server!.negotiatedGroup).toBe("X25519MLKEM768");
    expect(captured[1]!.reference.server!.tlsVersion).toBe("TLSv1.2");
    expect(captured[2]!.reference.server!.helloRetry).toBe(true);
  });

  const recuts: Array<[string, (events: WireEvent[], seed: number) => WireEvent[]]> = [
    ["one byte per segment", (e) => cut(e, () => 1)],
    ["MTU 1500 segments (1448 bytes of payload)", (e) => cut(e, () => 1448)],
    ["flights fed in reverse, 7-byte pieces", (e) => reverseFlights(cut(e, () => 7))],
    [
      "every segment retransmitted, pieces of random size",
      (e, seed) => {
        const next = random(seed);
        return cut(e, () => 1 + Math.floor(next() * 300)).flatMap((x) => [x, x]);
      },
    ],
    [
      "overlapping retransmissions (each piece repeats the end of the one before)",
      (e) =>
        e.flatMap((x) => {
          if (x.kind !== "segment") return [x];
          const out: WireEvent[] = [];
          for (let at = 0; at < x.bytes.length; at += 50) {
            const from = Math.max(0, at - 20);
            out.push({ ...x, offset: x.offset + from, bytes: x.bytes.subarray(from, at + 50) });
          }
          return out;
        }),
    ],
  ];

  for (const [name, recut] of recuts) {
    test(`${name}: the same result as the capture`, () => {
      for (const c of captured) {
        for (const side of ["client", "server"] as const) {
          // protected records are counted until the outcome is decided, which a re-cut moves
          const reference = { ...feed(c.connection[side]).result, protectedRecords: null };
          const result = { ...feed(recut(c.connection[side], 7)).result, protectedRecords: null };
          expect({ case: c.name, side, result }).toEqual({ case: c.name, side, result: reference });
        }
      }
    });
  }

  test("a hybrid ClientHello in 1448-byte segments is two segments and parses whole", () => {
    const hello = captured[0]!.connection.client.find((e): e is Segment => e.kind === "segment")!;
    expect(hello.bytes.length).toBeGreaterThan(1448);
    const r = feed(cut(captured[0]!.connection.client, () => 1448)).result;
    expect(r.client!.keySharesOffered).toContain("X25519MLKEM768");
  });

  test("a retransmission that disagrees with bytes held beyond a hole: conflict, no facts", () => {
    for (const c of captured) {
      const events = cut(c.connection.client, () => 100);
      const i = events.findIndex((e) => e.kind === "segment" && e.offset === 100 && e.direction === 0);
      const first = events[i - 1] as Segment;
      const held = events[i] as Segment;
      const altered = { ...held, bytes: Uint8Array.from(held.bytes, (b, k) => (k === 10 ? b ^ 0xff : b)) };
      const reordered = [...events.slice(0, i - 1), held, altered, first, ...events.slice(i + 1)];
      const r = feed(reordered).result;
      expect({
        case: c.name,
        problem: r.problem,
        client: r.client,
        server: r.server,
        success: r.success,
      }).toEqual({
        case: c.name,
        problem: "conflict",
        client: null,
        server: null,
        success: null,
      });
    }
  });

  test("a hole that never fills: the client's facts, then a gap and no outcome", () => {
    for (const c of captured) {
      const events = c.connection.client;
      // the server's first segment (its hello) never arrives: what follows it waits beyond a hole
      const dropped = events.find((e) => e.kind === "segment" && e.direction === 1);
      const r = feed(events.filter((e) => e !== dropped)).result;
      expect({ case: c.name, success: r.success, problem: r.problem, server: r.server }).toEqual({
        case: c.name,
        success: null,
        problem: "gap",
        server: null,
      });
      expect(r.client).toEqual(c.reference.client);
    }
  });

  test("a stream cut off: in the ClientHello nothing, after it the client's facts only", () => {
    for (const c of captured) {
      const client = stream(c.connection.client, 0);
      const cutInHello = feed([{ kind: "segment", direction: 0, offset: 0, bytes: client.subarray(0, 100) }]);
      expect(cutInHello.conn.decided).toBe(false);
      expect(cutInHello.result).toMatchObject({
        client: null,
        server: null,
        success: null,
        problem: "truncated",
      });
      const first = c.connection.client.find((e): e is Segment => e.kind === "segment")!;
      const server = stream(c.connection.client, 1);
      const cutInServer = feed([
        first,
        { kind: "segment", direction: 1, offset: 0, bytes: server.subarray(0, 40) },
      ]);
      expect(cutInServer.result).toMatchObject({
        server: null,
        success: null,
        error: "unconfirmed",
        problem: null,
      });
      expect(cutInServer.result.client).toEqual(c.reference.client);
      // and a FIN from both ends there: closed before the handshake finished
      const closed = feed([
        first,
        { kind: "segment", direction: 1, offset: 0, bytes: server.subarray(0, 40) },
        { kind: "end", direction: 1, end: "fin", offset: 40 },
        { kind: "end", direction: 0, end: "fin", offset: first.bytes.length },
      ]);
      expect(closed.conn.decided).toBe(true);
      expect(closed.result).toMatchObject({ success: false, error: "closed", problem: null });
    }
  });

  test("the outcome waits for its proof: a Finished that is not there, or proves nothing yet", () => {
    for (const c of captured) {
      // TLS 1.3: up to the end of the client's first protected record (its Finished), then FIN both ways;
      // TLS 1.2: up to the server's ChangeCipherSpec, without the server's Finished behind it
      const tls12 = c.reference.server!.tlsVersion === "TLSv1.2";
      const direction = tls12 ? 1 : 0;
      const bytes = stream(c.connection.client, direction);
      let end = 0;
      for (let at = 0; at + 5 <= bytes.length && end === 0; ) {
        const next = at + 5 + ((bytes[at + 3]! << 8) | bytes[at + 4]!);
        if (bytes[at] === (tls12 ? 20 : 23)) end = next;
        at = next;
      }
      expect(end).toBeGreaterThan(0);
      const events: WireEvent[] = [];
      for (const e of c.connection.client) {
        if (e.kind !== "segment") continue;
        if (e.direction === direction && e.offset + e.bytes.length >= end) {
          events.push({ ...e, bytes: e.bytes.subarray(0, end - e.offset) });
          break;
        }
        events.push(e);
      }
      events.push({ kind: "end", direction: 0, end: "fin", offset: stream(events, 0).length });
      events.push({ kind: "end", direction: 1, end: "fin", offset: stream(events, 1).length });
      const r = feed(events).result;
      // TLS 1.3: the client finished, the server may not have accepted it; TLS 1.2: the server never finished
      const expected = tls12 ? { success: false, error: "closed" } : { success: null, error: "unconfirmed" };
      expect({ case: c.name, success: r.success, error: r.error }).toEqual({ case: c.name, ...expected });
    }
  });

  test("garbage behind a valid record header: a problem, never facts, never a throw", () => {
    const next = random(12);
    const problems = new Set<string | null>();
    for (let n = 0; n < 2000; n++) {
      const len = 1 + Math.floor(next() * 600);
      const bytes = new Uint8Array(5 + len);
      bytes.set([0x16, 0x03, 0x01, len >> 8, len & 0xff]);
      for (let i = 5; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      // half of them pretend to be a ClientHello with a plausible length
      if (n % 2 === 0 && len >= 6) bytes.set([0x01, 0x00, (len - 4) >> 8, (len - 4) & 0xff, 0x03, 0x03], 5);
      const { conn, result } = feed([
        { kind: "segment", direction: 0, offset: 0, bytes },
        { kind: "end", direction: 0, end: "fin", offset: bytes.length },
        { kind: "end", direction: 1, end: "fin", offset: 0 },
      ]);
      expect(conn.decided).toBe(true);
      expect(result.client).toBeNull();
      expect(result.success).toBeNull();
      problems.add(result.problem);
    }
    // a random message length past the bound is "overflow"; one the stream does not reach is "truncated"
    expect([...problems].sort()).toEqual(["malformed", "overflow", "truncated"]);
  });

  test("streams that are not TLS: not-tls", () => {
    const http = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(feed([{ kind: "segment", direction: 0, offset: 0, bytes: http }]).result.problem).toBe("not-tls");
    // a TLS client answered by a plain-text server
    const hello = captured[0]!.connection.client.find((e): e is Segment => e.kind === "segment")!;
    const r = feed([hello, { kind: "segment", direction: 1, offset: 0, bytes: http }]);
    expect(r.result).toMatchObject({ problem: "not-tls", success: null });
    expect(r.result.client).toEqual(captured[0]!.reference.client);
  });

  test("random mutations: never a throw, every value found in the bytes", () => {
    const next = random(2026);
    let withFacts = 0;
    for (let n = 0; n < 3000; n++) {
      const c = captured[n % captured.length]!;
      const events = cut(c.connection.client, () => 64).map((e) => {
        if (e.kind !== "segment" || next() > 0.3) return e;
        const bytes = Uint8Array.from(e.bytes);
        const kind = next();
        if (kind < 0.6) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
        else if (kind < 0.8) return { ...e, bytes: bytes.subarray(0, Math.floor(next() * bytes.length)) };
        else return { ...e, offset: Math.max(0, e.offset + Math.floor(next() * 5) - 2), bytes };
        return { ...e, bytes };
      });
      const { result } = feed(events, false);
      const sent = stream(events, 0);
      const received = stream(events, 1);
      if (result.client !== null) {
        withFacts++;
        const facts = result.client;
        if (facts.serverName !== null)
          expect(contains(sent, new TextEncoder().encode(facts.serverName))).toBe(true);
        const hello = feed(events, false).conn.clientHello!;
        for (const code of [
          ...hello.cipherSuites,
          ...(hello.supportedGroups ?? []),
          ...(hello.keyShares ?? []),
        ]) {
          expect(contains(sent, u16(code))).toBe(true);
        }
      }
      if (result.server?.negotiatedGroupId != null) {
        expect(contains(received, u16(result.server.negotiatedGroupId))).toBe(true);
      }
      if (result.server !== null) expect(contains(received, u16(result.server.cipherId))).toBe(true);
      if (result.success === true) expect(result.problem).toBeNull();
    }
    expect(withFacts).toBeGreaterThan(100);
  });
});
