import { describe, expect, test } from "bun:test";
import {
  type CorrelatedHandshake,
  correlateHandshakes,
  type SslEvent,
} from "../../src/trace/libssl/correlate.ts";
import {
  decodeEvent,
  type EventFields,
  encodeDone,
  encodeEvent,
  encodeKex,
  EventKind as Kind,
  HandshakeFunc as HsFunc,
  Role,
} from "../../src/trace/libssl/events.ts";
import { HandshakeCorrelator } from "../../src/trace/libssl/correlate.ts";

const PID = 4242;
const SSL_A = 0x5599ca9c6b10;
const SSL_B = 0x5599ca9c7000;
const CTX = 0x5599ca9a0000;
const MS = 1_000_000;

/** A synthetic event, through the kernel's bytes and the one decoder; time in ms for readability. */
function ev(kind: number, ms: number, fields: Omit<EventFields, "kind" | "tsNs"> = {}): SslEvent {
  return decodeEvent(
    encodeEvent({
      ptr: SSL_A,
      aux: 0,
      pid: PID,
      tid: PID,
      ret: 0,
      libId: 0,
      comm: "client",
      ...fields,
      kind,
      tsNs: ms * MS,
    }),
  );
}
const enter = (ms: number, func: number, f: Omit<EventFields, "kind" | "tsNs"> = {}) =>
  ev(Kind.HandshakeEnter, ms, { aux: func, ...f });
const ret = (ms: number, r: number, func: number, f: Omit<EventFields, "kind" | "tsNs"> = {}) =>
  ev(Kind.HandshakeReturn, ms, { ret: r, aux: func, ...f });
const getError = (ms: number, code: number, f: Omit<EventFields, "kind" | "tsNs"> = {}) =>
  ev(Kind.GetError, ms, { ret: code, aux: -1, ...f });

function only(events: SslEvent[]): CorrelatedHandshake {
  const { handshakes } = correlateHandshakes(events);
  expect(handshakes).toHaveLength(1);
  return handshakes[0]!;
}

describe("correlateHandshakes", () => {
  test("SSL_connect wrapping SSL_do_handshake is one client handshake with SNI and context groups", () => {
    const hs = only([
      ev(Kind.CtxGroupsList, 0, { ptr: CTX, text: "x25519:P-256" }),
      ev(Kind.SslNew, 1, { aux: CTX }),
      ev(Kind.SetHostname, 2, { text: "api.example.org" }),
      enter(3, HsFunc.Connect),
      enter(3, HsFunc.DoHandshake),
      ret(5, 1, HsFunc.DoHandshake),
      ret(5, 1, HsFunc.Connect),
      ev(Kind.SslFree, 9),
    ]);
    expect(hs).toMatchObject({
      success: true,
      error: null,
      role: "client",
      sni: "api.example.org",
      groups: ["X25519", "secp256r1"],
      groupsSource: "context",
      startNs: 3 * MS,
      endNs: 5 * MS,
    });
  });

  test("an inner failure inside SSL_connect does not finish the handshake; the outer return does", () => {
    const { handshakes } = correlateHandshakes([
      enter(0, HsFunc.Connect),
      enter(0, HsFunc.DoHandshake),
      ret(1, 0, HsFunc.DoHandshake),
    ]);
    expect(handshakes.map((h) => h.error)).toEqual(["incomplete"]);
  });

  test("non-blocking: many want-read returns are still one handshake, finished by the success", () => {
    const events: SslEvent[] = [ev(Kind.SslNew, 0, { aux: CTX }), ev(Kind.SetState, 0, { aux: 2 })];
    for (let i = 1; i <= 5; i++) {
      events.push(enter(i * 10, HsFunc.DoHandshake), ret(i * 10 + 1, -1, HsFunc.DoHandshake));
      events.push(getError(i * 10 + 1, 2 + (i % 2))); // SSL_ERROR_WANT_READ / WANT_WRITE
    }
    events.push(enter(60, HsFunc.DoHandshake), ret(61, 1, HsFunc.DoHandshake));
    const hs = only(events);
    expect(hs).toMatchObject({ success: true, role: "server", startNs: 10 * MS, endNs: 61 * MS });
  });

  test("a want-read return without any SSL_get_error call stays pending until the next call finishes it", () => {
    const hs = only([
      enter(0, HsFunc.DoHandshake),
      ret(1, -1, HsFunc.DoHandshake),
      enter(2, HsFunc.DoHandshake),
      ret(3, 1, HsFunc.DoHandshake),
    ]);
    expect(hs.success).toBe(true);
  });

  test("a handshake set up on one thread and run on two others is one line, with the finishing thread", () => {
    const hs = only([
      ev(Kind.SslNew, 0, { tid: 100, aux: CTX }),
      ev(Kind.SetHostname, 1, { tid: 100, text: "moved.example" }),
      ev(Kind.SetGroupsList, 1, { tid: 100, text: "P-384" }),
      enter(2, HsFunc.DoHandshake, { tid: 101 }),
      ret(3, -1, HsFunc.DoHandshake, { tid: 101 }),
      getError(3, 2, { tid: 101 }),
      enter(4, HsFunc.DoHandshake, { tid: 102 }),
      ret(5, 1, HsFunc.DoHandshake, { tid: 102 }),
    ]);
    expect(hs).toMatchObject({
      tid: 102,
      sni: "moved.example",
      groups: ["secp384r1"],
      groupsSource: "connection",
      success: true,
    });
  });

  test("fatal outcomes: ret 0, SSL_ERROR_SSL, SSL_ERROR_SYSCALL, SSL_ERROR_ZERO_RETURN", () => {
    const cases: [SslEvent[], string][] = [
      [[enter(0, HsFunc.Accept), ret(1, 0, HsFunc.Accept)], "fatal"],
      [[enter(0, HsFunc.Accept), ret(1, -1, HsFunc.Accept), getError(1, 1)], "fatal"],
      [[enter(0, HsFunc.Accept), ret(1, -1, HsFunc.Accept), getError(1, 5)], "syscall"],
      [[enter(0, HsFunc.Accept), ret(1, -1, HsFunc.Accept), getError(1, 6)], "closed"],
    ];
    for (const [events, error] of cases) {
      const hs = only(events);
      expect(hs).toMatchObject({ success: false, error, role: "server" });
    }
  });

  test("SSL_get_error about SSL_read after a finished handshake does not produce a line", () => {
    const { handshakes } = correlateHandshakes([
      enter(0, HsFunc.Connect),
      ret(1, 1, HsFunc.Connect),
      getError(5, 1),
      getError(6, 5, { aux: -1 }),
    ]);
    expect(handshakes.map((h) => h.success)).toEqual([true]);
  });

  test("SSL_free ends a started handshake as freed; a connection that never started one leaves no line", () => {
    const { handshakes } = correlateHandshakes([
      ev(Kind.SslNew, 0, { aux: CTX }),
      ev(Kind.SetHostname, 1, { text: "never.example" }),
      ev(Kind.SslFree, 2),
      ev(Kind.SslNew, 3, { ptr: SSL_B, aux: CTX }),
      enter(4, HsFunc.DoHandshake, { ptr: SSL_B }),
      ret(5, -1, HsFunc.DoHandshake, { ptr: SSL_B }),
      getError(5, 2, { ptr: SSL_B }),
      ev(Kind.SslFree, 7, { ptr: SSL_B }),
    ]);
    expect(handshakes).toHaveLength(1);
    expect(handshakes[0]).toMatchObject({ ssl: SSL_B, success: false, error: "freed", endNs: 7 * MS });
  });

  test("a reused SSL* never mixes two handshakes", () => {
    const { handshakes } = correlateHandshakes([
      ev(Kind.CtxGroupsList, 0, { ptr: CTX, text: "X448" }),
      ev(Kind.SslNew, 0, { aux: CTX }),
      ev(Kind.SetHostname, 1, { text: "first.example" }),
      ev(Kind.SetGroupsNids, 1, { nids: [1034], aux: 1 }),
      enter(2, HsFunc.Connect),
      ev(Kind.SslFree, 3), // freed mid-handshake
      ev(Kind.SslNew, 4, { aux: CTX }), // same address handed out again
      enter(5, HsFunc.Connect),
      ret(6, 1, HsFunc.Connect),
      ev(Kind.SetHostname, 7, { text: "next.example" }), // after a finished handshake: the next one's
      enter(8, HsFunc.Connect),
      ret(9, 1, HsFunc.Connect),
      enter(10, HsFunc.Connect),
      ret(11, 1, HsFunc.Connect),
    ]);
    expect(handshakes.map((h) => [h.error, h.sni, h.groups, h.groupsSource])).toEqual([
      ["freed", "first.example", ["X25519"], "connection"],
      [null, null, ["X448"], "context"],
      [null, "next.example", ["X448"], "context"],
      [null, null, ["X448"], "context"],
    ]);
  });

  test("a handshake untouched for the window expires as timeout and is counted; one within it does not", () => {
    const { handshakes, counters } = correlateHandshakes(
      [
        enter(0, HsFunc.DoHandshake),
        enter(1500, HsFunc.DoHandshake, { ptr: SSL_B }),
        ret(1900, -1, HsFunc.DoHandshake, { ptr: SSL_B }),
        getError(1900, 2, { ptr: SSL_B }),
        ev(Kind.SslNew, 2001, { ptr: 0x1 }), // time passes
        enter(3800, HsFunc.DoHandshake, { ptr: SSL_B }),
        ret(3850, 1, HsFunc.DoHandshake, { ptr: SSL_B }),
      ],
      { windowNs: 2000 * MS },
    );
    expect(handshakes.map((h) => [h.ssl, h.error])).toEqual([
      [SSL_A, "timeout"],
      [SSL_B, null],
    ]);
    expect(counters.correlationTimeouts).toBe(1);
    expect(counters.handshakesEmitted).toBe(2);
  });

  test("the tables are bounded: evictions are counted and a handshake in progress is not lost silently", () => {
    const events: SslEvent[] = [];
    for (let i = 0; i < 10; i++) events.push(enter(i, HsFunc.DoHandshake, { ptr: 0x1000 + i * 0x100 }));
    const { handshakes, counters } = correlateHandshakes(events, { maxPending: 4 });
    expect(counters.cacheEvictions).toBe(6);
    expect(handshakes.filter((h) => h.error === "evicted")).toHaveLength(6);
    expect(handshakes.filter((h) => h.error === "incomplete")).toHaveLength(4);
  });

  test("the same SSL* address in two processes is two connections", () => {
    const { handshakes } = correlateHandshakes([
      ev(Kind.SetHostname, 0, { pid: 1, tid: 1, text: "one.example" }),
      ev(Kind.SetHostname, 0, { pid: 2, tid: 2, text: "two.example" }),
      enter(1, HsFunc.Connect, { pid: 2, tid: 2 }),
      enter(1, HsFunc.Connect, { pid: 1, tid: 1 }),
      ret(2, 1, HsFunc.Connect, { pid: 1, tid: 1 }),
      ret(3, 1, HsFunc.Connect, { pid: 2, tid: 2 }),
    ]);
    expect(handshakes.map((h) => [h.pid, h.sni])).toEqual([
      [1, "one.example"],
      [2, "two.example"],
    ]);
  });

  test("returns that lack the SSL* are matched through the thread's last handshake call", () => {
    const hs = only([
      ev(Kind.SetHostname, 0, { text: "thread.example" }),
      enter(1, HsFunc.DoHandshake),
      ret(2, -1, HsFunc.DoHandshake, { ptr: 0 }),
      getError(2, 1, { ptr: 0 }),
    ]);
    expect(hs).toMatchObject({ sni: "thread.example", error: "fatal" });
  });

  test("the tracer started mid-handshake: a return without its entry still gives a line, with no start", () => {
    const hs = only([ret(2, 1, HsFunc.DoHandshake)]);
    expect(hs).toMatchObject({ success: true, startNs: null });
  });

  test("the facts read at a successful return ride on the handshake; a failed one has none", () => {
    const facts = { version: 0x304, cipherId: 0x03001302, group: 4588, group13: 4588 };
    const { handshakes } = correlateHandshakes([
      enter(1, HsFunc.DoHandshake),
      ret(2, 1, HsFunc.DoHandshake, { data: encodeKex(facts) }),
      enter(3, HsFunc.DoHandshake, { ptr: SSL_B }),
      ret(4, 0, HsFunc.DoHandshake, { ptr: SSL_B }),
    ]);
    expect(handshakes.map((h) => [h.success, h.kex, h.implicit])).toEqual([
      [true, facts, false],
      [false, null, false],
    ]);
  });

  test("an implicit handshake (inside SSL_read/SSL_write) is one line, timed from SSL_set_*_state", () => {
    const facts = { version: 0x303, cipherId: 0x0300c02c, group: 29, group13: null };
    const hs = only([
      ev(Kind.SslNew, 0, { aux: CTX }),
      ev(Kind.SetState, 1, { aux: Role.Server }),
      // the kernel's checkpoint (SSL_get_error) saw the state reach OK: aux = ktime of set_accept_state
      ev(Kind.HandshakeImplicit, 4, { ret: 1, aux: 1 * MS, data: encodeKex(facts) }),
      getError(4, 2),
      ev(Kind.SslFree, 9),
    ]);
    expect(hs).toMatchObject({
      success: true,
      role: "server",
      startNs: 1 * MS,
      endNs: 4 * MS,
      kex: facts,
      implicit: true,
    });
  });

  test("an implicit handshake freed unfinished is one failed line; after an explicit one it says nothing", () => {
    const { handshakes } = correlateHandshakes([
      // implicit, never finished
      ev(Kind.SetState, 1, { aux: Role.Client }),
      ev(Kind.HandshakeImplicit, 5, { ret: 0, aux: 1 * MS }),
      ev(Kind.SslFree, 5),
      // explicit failure through SSL_get_error: the kernel still reports the unfinished implicit one at free
      ev(Kind.SetState, 6, { ptr: SSL_B, aux: Role.Client }),
      enter(7, HsFunc.DoHandshake, { ptr: SSL_B }),
      ret(8, -1, HsFunc.DoHandshake, { ptr: SSL_B }),
      getError(8, 1, { ptr: SSL_B }),
      ev(Kind.HandshakeImplicit, 9, { ptr: SSL_B, ret: 0, aux: 6 * MS }),
      ev(Kind.SslFree, 9, { ptr: SSL_B }),
    ]);
    expect(handshakes.map((h) => [h.ssl, h.success, h.error, h.implicit])).toEqual([
      [SSL_A, false, "freed", true],
      [SSL_B, false, "fatal", false],
    ]);
  });

  test("aggregated: one HS_DONE is a whole handshake; SNI, context groups and role come along", () => {
    const kex = { version: 0x304, cipherId: 0x03001302, group: 4588, group13: 4588 };
    const { handshakes } = correlateHandshakes([
      ev(Kind.CtxGroupsList, 0, { ptr: CTX, text: "X25519MLKEM768:X25519" }),
      ev(Kind.SetHostname, 1, { text: "pq.example" }),
      ev(Kind.HandshakeDone, 5, {
        aux: 2 * MS,
        ret: 1,
        data: encodeDone({ kex, ctx: CTX, role: "client", error: null, implicit: false }),
      }),
      ev(Kind.SslFree, 6),
      // a server connection the kernel never told user space about before its end: a failure
      ev(Kind.HandshakeDone, 7, {
        ptr: SSL_B,
        aux: 6 * MS,
        data: encodeDone({ kex: null, ctx: null, role: "server", error: "syscall", implicit: false }),
      }),
    ]);
    expect(handshakes).toHaveLength(2);
    expect(handshakes[0]).toMatchObject({
      success: true,
      sni: "pq.example",
      groups: ["X25519MLKEM768", "X25519"],
      groupsSource: "context",
      role: "client",
      startNs: 2 * MS,
      endNs: 5 * MS,
      kex,
    });
    expect(handshakes[1]).toMatchObject({
      ssl: SSL_B,
      success: false,
      error: "syscall",
      role: "server",
      kex: null,
    });
  });

  test("aggregated: a connection user space never heard of takes its context's groups and leaves no state", () => {
    const kex = { version: 0x304, cipherId: 0x03001301, group: 29, group13: 29 };
    const done = (t: number) =>
      ev(Kind.HandshakeDone, t, {
        ptr: SSL_B,
        tid: 77,
        aux: (t - 1) * MS,
        data: encodeDone({ kex, ctx: CTX, role: "server", error: null, implicit: false }),
      });
    const lines: CorrelatedHandshake[] = [];
    const c = new HandshakeCorrelator({ windowNs: 2000 * MS, maxPending: 100 }, (h) => lines.push(h));
    c.push(done(3)); // before the context has groups: none
    c.push(ev(Kind.CtxGroupsList, 4, { ptr: CTX, text: "secp384r1:X25519" }));
    c.push(done(6));
    c.push(ev(Kind.SslFree, 7, { ptr: SSL_B })); // nothing held for SSL_B: no line
    c.flush("incomplete");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ groups: null, groupsSource: null, success: true, error: null });
    expect(lines[1]).toMatchObject({
      pid: PID,
      tid: 77,
      ssl: SSL_B,
      role: "server",
      sni: null,
      groups: ["secp384r1", "X25519"],
      groupsSource: "context",
      startNs: 5 * MS,
      endNs: 6 * MS,
      kex,
      implicit: false,
    });
    expect(c.pending).toBe(0);
    expect(c.counters.handshakesEmitted).toBe(2);
  });

  test("aggregated: a handshake the kernel holds is given up as timeout (counted) or incomplete", () => {
    const lines: CorrelatedHandshake[] = [];
    const c = new HandshakeCorrelator({ windowNs: 2000 * MS, maxPending: 100 }, (h) => lines.push(h));
    c.push(ev(Kind.SetHostname, 1, { text: "stuck.example" }));
    c.giveUp(
      { pid: PID, ssl: SSL_A, startNs: 2 * MS, role: "client", libId: 0 },
      "incomplete",
      9 * MS,
      "client",
    );
    c.giveUp({ pid: PID, ssl: SSL_B, startNs: 3 * MS, role: null, libId: 0 }, "timeout", 4 * MS, "client");
    expect(lines.map((l) => [l.sni, l.success, l.error, l.startNs, l.endNs])).toEqual([
      ["stuck.example", false, "incomplete", 2 * MS, 9 * MS],
      [null, false, "timeout", 3 * MS, 4 * MS],
    ]);
    expect(c.counters.correlationTimeouts).toBe(1);
    // the kernel's table holds no cgroup: none is made up
    expect(lines.map((l) => l.cgroupId)).toEqual([null, null]);
  });

  test("the cgroup of a handshake's events; null when they disagree (the process moved during it)", () => {
    const calls = (first: number, last: number) =>
      only([enter(0, HsFunc.Connect, { cgroupId: first }), ret(5, 1, HsFunc.Connect, { cgroupId: last })])
        .cgroupId;
    expect(calls(4711, 4711)).toBe(4711);
    expect(calls(4711, 4712)).toBeNull();
    // 0 is what the kernel gives when it has none: it says nothing against the others
    expect(calls(0, 4712)).toBe(4712);
    expect(calls(0, 0)).toBeNull();
    // ended by SSL_get_error or SSL_free, that event counts too
    const failed = (last: number) =>
      only([
        enter(0, HsFunc.DoHandshake, { cgroupId: 4711 }),
        ret(1, -1, HsFunc.DoHandshake, { cgroupId: 4711 }),
        getError(2, 1, { cgroupId: last }),
      ]).cgroupId;
    expect([failed(4711), failed(4712)]).toEqual([4711, null]);
    const freed = (last: number) =>
      only([enter(0, HsFunc.DoHandshake, { cgroupId: 4711 }), ev(Kind.SslFree, 3, { cgroupId: last })])
        .cgroupId;
    expect([freed(4711), freed(4712)]).toEqual([4711, null]);
    // aggregated: the one event's
    const done = only([
      ev(Kind.HandshakeDone, 5, {
        cgroupId: 4713,
        data: encodeDone({ kex: null, ctx: null, role: "client", error: null, implicit: false }),
      }),
    ]);
    expect(done.cgroupId).toBe(4713);
  });
});
