/**
 * bpf/wire.h is the one definition of the wire source's kernel→user layout: compiled and compared with
 * src/trace/wire/events.ts field by field; and the decoder reads back what the encoder (the kernel's shape) wrote.
 */
import { describe, expect, test } from "bun:test";
import {
  WIRE_CAP,
  WIRE_CHUNK,
  WIRE_COMM_LEN,
  WIRE_CONFIG_LAYOUT,
  WIRE_CONFIG_SIZE,
  WIRE_EVENT_LAYOUT,
  WIRE_HEADER_SIZE,
  WIRE_STAT_COUNT,
  WIRE_UNDECIDED_MAX,
  WireDecoder,
  WireFlag,
  WireKind,
  WireStat,
  encodeWireConfig,
  encodeWireEvent,
  formatAddress,
} from "../../../src/trace/wire/events.ts";
import { EVENT_LAYOUT } from "../../../src/trace/libssl/events.ts";
import { COMPILER, measureHeader, tiles } from "../../support/c-layout.ts";

const CONSTANTS: Record<string, [number, string]> = {
  WIRE_HEADER_SIZE: [WIRE_HEADER_SIZE, "sizeof(struct carnot_wire_event)"],
  WIRE_CONFIG_SIZE: [WIRE_CONFIG_SIZE, "sizeof(struct carnot_wire_config)"],
  WIRE_COMM_LEN: [WIRE_COMM_LEN, "CARNOT_WIRE_COMM_LEN"],
  WIRE_CHUNK: [WIRE_CHUNK, "CARNOT_WIRE_CHUNK"],
  WIRE_CAP: [WIRE_CAP, "CARNOT_WIRE_CAP"],
  WIRE_UNDECIDED_MAX: [WIRE_UNDECIDED_MAX, "CARNOT_WIRE_UNDECIDED_MAX"],
  WIRE_STAT_COUNT: [WIRE_STAT_COUNT, "CARNOT_WSTAT_COUNT"],
  ...Object.fromEntries(
    Object.entries({
      Attempted: "ATTEMPTED",
      Dropped: "DROPPED",
      Followed: "FOLLOWED",
      NotTls: "NOT_TLS",
      Late: "LATE",
      Filtered: "FILTERED",
      Capped: "CAPPED",
      Released: "RELEASED",
      Undecided: "UNDECIDED",
      Deferred: "DEFERRED",
    }).map(([ts, c]) => [`WireStat.${ts}`, [WireStat[ts as keyof typeof WireStat], `CARNOT_WSTAT_${c}`]]),
  ),
  "WireKind.Segment": [WireKind.Segment, "CARNOT_EV_WIRE_SEGMENT"],
  "WireKind.End": [WireKind.End, "CARNOT_EV_WIRE_END"],
  ...Object.fromEntries(
    Object.entries({
      Egress: "EGRESS",
      Fin: "FIN",
      Rst: "RST",
      Owner: "OWNER",
      Link: "LINK",
      LinkWeak: "LINK_WEAK",
      Filtered: "FILTERED",
      Ipv6: "IPV6",
      Listener: "LISTENER",
      Deferred: "DEFERRED",
    }).map(([ts, c]) => [`WireFlag.${ts}`, [WireFlag[ts as keyof typeof WireFlag], `CARNOT_WIRE_${c}`]]),
  ),
};

describe.skipIf(COMPILER === null)("bpf/wire.h and src/trace/wire/events.ts agree", () => {
  if (COMPILER === null) console.warn("wire layout test skipped: no C compiler (cc, clang or gcc) on PATH");
  const measured =
    COMPILER === null
      ? new Map<string, number>()
      : measureHeader(
          "wire.h",
          { carnot_wire_event: WIRE_EVENT_LAYOUT, carnot_wire_config: WIRE_CONFIG_LAYOUT },
          Object.fromEntries(Object.entries(CONSTANTS).map(([name, [, c]]) => [name, c])),
        );

  test.each([
    ...Object.entries(WIRE_EVENT_LAYOUT).map(([n, span]) => [`carnot_wire_event.${n}`, span] as const),
    ...Object.entries(WIRE_CONFIG_LAYOUT).map(([n, span]) => [`carnot_wire_config.${n}`, span] as const),
  ])("%s offset and size", (name, [offset, size]) => {
    expect([measured.get(`${name}@offset`), measured.get(`${name}@size`)]).toEqual([offset, size]);
  });

  test.each(Object.entries(CONSTANTS))("%s", (name, [value]) => {
    expect(measured.get(name)).toBe(value);
  });

  test("the fields tile each struct; `kind` sits where the libssl events keep it (one ring, one dispatch)", () => {
    expect(tiles(WIRE_EVENT_LAYOUT, WIRE_HEADER_SIZE)).toBe(true);
    expect(tiles(WIRE_CONFIG_LAYOUT, WIRE_CONFIG_SIZE)).toBe(true);
    expect(WIRE_EVENT_LAYOUT.kind).toEqual(EVENT_LAYOUT.kind);
  });
});

describe("wire event codec", () => {
  test("decode reads back what encode wrote: cookie, link, owner, endpoints (v4 and v6), payload", () => {
    const payload = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    const v4 = encodeWireEvent({
      tsNs: 9_876_543_210,
      cookie: 2 ** 40 + 7,
      linkSsl: 0x5599_ca9c_6b10,
      pid: 4242,
      tid: 4243,
      streamOffset: 517,
      flags: WireFlag.Egress | WireFlag.Owner | WireFlag.Link,
      localPort: 52320,
      remotePort: 443,
      comm: "curl",
      localAddr: "127.0.0.1",
      remoteAddr: "10.1.2.3",
      cgroupId: 2 ** 32 + 4711,
      payload,
    });
    const v6 = encodeWireEvent({
      cookie: 9,
      localAddr: "::1",
      remoteAddr: "fe80::1:2",
      localPort: 1,
      remotePort: 2,
    });
    const region = new Uint8Array(v4.byteLength + v6.byteLength);
    region.set(v4, 0);
    region.set(v6, v4.byteLength);
    const decoder = new WireDecoder(region.buffer);
    const a = decoder.decode(0, WIRE_HEADER_SIZE + payload.byteLength);
    expect(a).toMatchObject({
      tsNs: 9_876_543_210,
      cookie: 2 ** 40 + 7,
      linkSsl: 0x5599_ca9c_6b10,
      pid: 4242,
      tid: 4243,
      streamOffset: 517,
      kind: WireKind.Segment,
      localPort: 52320,
      remotePort: 443,
      comm: "curl",
      localAddr: "127.0.0.1",
      remoteAddr: "10.1.2.3",
      segmentLength: 6,
      cgroupId: 2 ** 32 + 4711,
    });
    expect([...a.payload]).toEqual([...payload]);
    const b = decoder.decode(v4.byteLength, WIRE_HEADER_SIZE);
    expect([b.localAddr, b.remoteAddr, b.payload.byteLength]).toEqual(["::1", "fe80::1:2", 0]);
    expect(b.flags & WireFlag.Ipv6).toBe(WireFlag.Ipv6);
  });

  test("a data_len larger than the record is cut to the record (never read past it)", () => {
    const bytes = encodeWireEvent({ payload: new Uint8Array(8) });
    new DataView(bytes.buffer).setUint16(38, 4000, true);
    expect(new WireDecoder(bytes.buffer).decode(0, bytes.byteLength).payload.byteLength).toBe(
      bytes.byteLength - WIRE_HEADER_SIZE,
    );
  });

  test("addresses: IPv4-mapped IPv6 reads as IPv4, the longest zero run is compressed", () => {
    const mapped = new Uint8Array(16);
    mapped.set([0xff, 0xff, 127, 0, 0, 1], 10);
    expect(formatAddress(mapped, true)).toBe("127.0.0.1");
    const addr = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    expect(formatAddress(addr, true)).toBe("2001:db8::1:0:0:1");
    expect(formatAddress(new Uint8Array(16), true)).toBe("::");
  });

  test("config: pid and comm where the header puts them; a comm over 15 bytes is refused", () => {
    const bytes = encodeWireConfig({ pid: 77, comm: "wget" });
    expect(new DataView(bytes.buffer).getUint32(WIRE_CONFIG_LAYOUT.targ_tgid[0], true)).toBe(77);
    expect(new TextDecoder().decode(bytes.subarray(8, 12))).toBe("wget");
    expect(() => encodeWireConfig({ comm: "a-very-long-name" })).toThrow(/longer than 15 bytes/);
  });

  test("config: the --container filter's cgroup id (64 bits) and level", () => {
    const view = new DataView(encodeWireConfig({ cgroup: { id: 2 ** 33 + 5, level: 3 } }).buffer);
    expect(view.getBigUint64(WIRE_CONFIG_LAYOUT.targ_cgroup[0], true)).toBe(2n ** 33n + 5n);
    expect(view.getUint32(WIRE_CONFIG_LAYOUT.targ_cgroup_level[0], true)).toBe(3);
    expect(
      new DataView(encodeWireConfig({}).buffer).getBigUint64(WIRE_CONFIG_LAYOUT.targ_cgroup[0], true),
    ).toBe(0n);
  });
});
