/** One connection, one line: the joiner pairs libssl completions and wire observations by the kernel's link. */
import { describe, expect, test } from "bun:test";
import { HandshakeJoiner, type Joined, type WireSide } from "../../src/trace/join.ts";
import type { CorrelatedHandshake } from "../../src/trace/libssl/correlate.ts";

const hs = (over: Partial<CorrelatedHandshake> = {}): CorrelatedHandshake => ({
  pid: 100,
  tid: 101,
  ssl: 0x5000,
  libId: 0,
  comm: "curl",
  role: "client",
  sni: "a.example",
  groups: null,
  groupsSource: null,
  success: true,
  error: null,
  startNs: 1,
  endNs: 2,
  kex: null,
  implicit: false,
  cgroupId: null,
  ...over,
});

const wire = (over: Partial<WireSide> = {}): WireSide => ({
  cookie: 7,
  link: { pid: 100, ssl: 0x5000, strong: true },
  role: "client",
  serverName: "a.example",
  version: 0x0304,
  cipher: 0x1302,
  group: 29,
  endNs: 10,
  ...over,
});

function joiner(undecided: Map<number, WireSide> = new Map()) {
  const out: Joined<WireSide>[] = [];
  const asked: number[] = [];
  const j = new HandshakeJoiner<WireSide>(
    {
      holdNs: 1000,
      decideWire: (cookie) => {
        asked.push(cookie);
        return undecided.get(cookie) ?? null;
      },
    },
    (x) => out.push(x),
  );
  return { j, out, asked };
}

describe("HandshakeJoiner", () => {
  test("wire decided first waits for its libssl completion: one joined line", () => {
    const { j, out } = joiner();
    const w = wire();
    j.linked(7, w.link!);
    j.wire(w);
    expect(out).toHaveLength(0);
    j.libssl(hs());
    expect(out).toEqual([{ libssl: hs(), wire: w }]);
    expect(j.counters).toMatchObject({ joined: 1, libsslOnly: 0, wireOnly: 0 });
    expect(j.pending).toBe(0);
  });

  test("a libssl completion for a linked, undecided connection decides the wire side now", () => {
    const w = wire();
    const { j, out, asked } = joiner(new Map([[7, w]]));
    j.linked(7, w.link!);
    j.libssl(hs());
    expect(asked).toEqual([7]);
    expect(out).toEqual([{ libssl: hs(), wire: w }]);
  });

  test("without a link each side is its own line, at once", () => {
    const { j, out } = joiner();
    j.wire(wire({ link: null, cookie: 9 }));
    j.libssl(hs({ ssl: 0x6000 }));
    expect(out.map((x) => [x.libssl !== null, x.wire !== null])).toEqual([
      [false, true],
      [true, false],
    ]);
    expect(j.counters).toMatchObject({ joined: 0, libsslOnly: 1, wireOnly: 1 });
  });

  test("a weak link whose sides disagree (role, server name) is not taken: two lines, counted", () => {
    const { j, out } = joiner();
    const weak = { pid: 100, ssl: 0x5000, strong: false };
    j.linked(7, weak);
    j.wire(wire({ link: weak, serverName: "b.example" }));
    j.libssl(hs());
    expect(out).toHaveLength(2);
    expect(out.every((x) => x.libssl === null || x.wire === null)).toBe(true);
    expect(j.counters.linksRejected).toBe(1);
    // … or the version, cipher or group the library read
    const kex = joiner();
    kex.j.linked(7, weak);
    kex.j.wire(wire({ link: weak, group: 23 }));
    kex.j.libssl(hs({ kex: { version: 0x0304, cipherId: 0x03001302, group: 29, group13: 29 } }));
    expect(kex.out).toHaveLength(2);
    // the same weak link with agreeing sides joins
    const again = joiner();
    again.j.linked(7, weak);
    again.j.wire(wire({ link: weak }));
    again.j.libssl(hs());
    expect(again.out).toHaveLength(1);
    expect(again.j.counters.joined).toBe(1);
  });

  test("a wire line whose completion never comes goes out alone after the hold window", () => {
    const { j, out } = joiner();
    j.wire(wire({ endNs: 10 }));
    j.expire(500);
    expect(out).toHaveLength(0);
    j.expire(1010);
    expect(out).toEqual([{ libssl: null, wire: wire({ endNs: 10 }) }]);
    expect(j.counters.holdTimeouts).toBe(1);
  });

  test("an SSL* reused before the first connection's completion: the first goes out alone, nothing lost", () => {
    const { j, out } = joiner();
    j.wire(wire({ cookie: 1 }));
    j.wire(wire({ cookie: 2 }));
    j.libssl(hs());
    expect(out.map((x) => [x.wire?.cookie ?? null, x.libssl !== null])).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  test("flush writes whatever still waits", () => {
    const { j, out } = joiner();
    j.wire(wire());
    j.flush();
    expect(out).toHaveLength(1);
    expect(j.pending).toBe(0);
  });
});
