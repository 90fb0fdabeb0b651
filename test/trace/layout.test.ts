/**
 * bpf/carnot.h is the one definition of the kernel→user layout: compile it into a tiny C program that prints
 * offsetof/sizeof of every field and the value of every constant, and compare with src/trace/libssl/events.ts.
 * Editing one side only fails here.
 */
import { describe, expect, test } from "bun:test";
import {
  CONFIG_LAYOUT,
  CONFIG_SIZE,
  COMM_LEN,
  cgroupIdOf,
  COOKIE_FUNC_BITS,
  DATA_MAX,
  decodeEvent,
  EVENT_LAYOUT,
  EVENT_SIZE,
  CONN_KEY_LAYOUT,
  CONN_KEY_SIZE,
  CONN_STATE_LAYOUT,
  CONN_STATE_SIZE,
  ConfigFlags,
  ConnFlags,
  DONE_LAYOUT,
  DONE_SIZE,
  EventKind,
  KEX_LAYOUT,
  OUTCOME_ERRORS,
  KEX_SIZE,
  KexValid,
  LIB_OFFSETS_LAYOUT,
  LIB_OFFSETS_SIZE,
  LIBS_MAX,
  encodeConfig,
  encodeEvent,
  HandshakeFunc,
  NIDS_MAX,
  ProbeFunc,
  Role,
  STAT_ATTEMPTED,
  STAT_CONN_CREATED,
  STAT_CONN_DELETED,
  STAT_COUNT,
  STAT_DROPPED,
} from "../../src/trace/libssl/events.ts";
import { COMPILER, measureHeader, tiles } from "../support/c-layout.ts";

/** TS constant → C name in bpf/carnot.h. */
const CONSTANTS: Record<string, [number, string]> = {
  EVENT_SIZE: [EVENT_SIZE, "sizeof(struct carnot_event)"],
  CONFIG_SIZE: [CONFIG_SIZE, "sizeof(struct carnot_config)"],
  DATA_MAX: [DATA_MAX, "CARNOT_DATA_MAX"],
  COMM_LEN: [COMM_LEN, "CARNOT_COMM_LEN"],
  NIDS_MAX: [NIDS_MAX, "CARNOT_NIDS_MAX"],
  STAT_ATTEMPTED: [STAT_ATTEMPTED, "CARNOT_STAT_ATTEMPTED"],
  STAT_DROPPED: [STAT_DROPPED, "CARNOT_STAT_DROPPED"],
  STAT_CONN_CREATED: [STAT_CONN_CREATED, "CARNOT_STAT_CONN_CREATED"],
  STAT_CONN_DELETED: [STAT_CONN_DELETED, "CARNOT_STAT_CONN_DELETED"],
  STAT_COUNT: [STAT_COUNT, "CARNOT_STAT_COUNT"],
  COOKIE_FUNC_BITS: [COOKIE_FUNC_BITS, "CARNOT_COOKIE_FUNC_BITS"],
  "EventKind.SslNew": [EventKind.SslNew, "CARNOT_EV_SSL_NEW"],
  "EventKind.SslFree": [EventKind.SslFree, "CARNOT_EV_SSL_FREE"],
  "EventKind.SetHostname": [EventKind.SetHostname, "CARNOT_EV_SET_HOSTNAME"],
  "EventKind.SetGroupsList": [EventKind.SetGroupsList, "CARNOT_EV_SET_GROUPS_LIST"],
  "EventKind.SetGroupsNids": [EventKind.SetGroupsNids, "CARNOT_EV_SET_GROUPS_NIDS"],
  "EventKind.CtxGroupsList": [EventKind.CtxGroupsList, "CARNOT_EV_CTX_GROUPS_LIST"],
  "EventKind.CtxGroupsNids": [EventKind.CtxGroupsNids, "CARNOT_EV_CTX_GROUPS_NIDS"],
  "EventKind.HandshakeEnter": [EventKind.HandshakeEnter, "CARNOT_EV_HS_ENTER"],
  "EventKind.HandshakeReturn": [EventKind.HandshakeReturn, "CARNOT_EV_HS_RETURN"],
  "EventKind.SetState": [EventKind.SetState, "CARNOT_EV_SET_STATE"],
  "EventKind.GetError": [EventKind.GetError, "CARNOT_EV_GET_ERROR"],
  "EventKind.Synthetic": [EventKind.Synthetic, "CARNOT_EV_SYNTHETIC"],
  "HandshakeFunc.DoHandshake": [HandshakeFunc.DoHandshake, "CARNOT_HS_DO_HANDSHAKE"],
  "HandshakeFunc.Connect": [HandshakeFunc.Connect, "CARNOT_HS_CONNECT"],
  "HandshakeFunc.Accept": [HandshakeFunc.Accept, "CARNOT_HS_ACCEPT"],
  "Role.Client": [Role.Client, "CARNOT_ROLE_CLIENT"],
  "Role.Server": [Role.Server, "CARNOT_ROLE_SERVER"],
  "ProbeFunc.SSL_new": [ProbeFunc.SSL_new, "CARNOT_FN_SSL_NEW"],
  "ProbeFunc.SSL_free": [ProbeFunc.SSL_free, "CARNOT_FN_SSL_FREE"],
  "ProbeFunc.SSL_ctrl": [ProbeFunc.SSL_ctrl, "CARNOT_FN_SSL_CTRL"],
  "ProbeFunc.SSL_CTX_ctrl": [ProbeFunc.SSL_CTX_ctrl, "CARNOT_FN_SSL_CTX_CTRL"],
  "ProbeFunc.SSL_set_connect_state": [ProbeFunc.SSL_set_connect_state, "CARNOT_FN_SSL_SET_CONNECT_STATE"],
  "ProbeFunc.SSL_set_accept_state": [ProbeFunc.SSL_set_accept_state, "CARNOT_FN_SSL_SET_ACCEPT_STATE"],
  "ProbeFunc.SSL_do_handshake": [ProbeFunc.SSL_do_handshake, "CARNOT_FN_SSL_DO_HANDSHAKE"],
  "ProbeFunc.SSL_connect": [ProbeFunc.SSL_connect, "CARNOT_FN_SSL_CONNECT"],
  "ProbeFunc.SSL_accept": [ProbeFunc.SSL_accept, "CARNOT_FN_SSL_ACCEPT"],
  "ProbeFunc.SSL_get_error": [ProbeFunc.SSL_get_error, "CARNOT_FN_SSL_GET_ERROR"],
  "ProbeFunc.SSL_read": [ProbeFunc.SSL_read, "CARNOT_FN_SSL_READ"],
  "ProbeFunc.SSL_write": [ProbeFunc.SSL_write, "CARNOT_FN_SSL_WRITE"],
  "ProbeFunc.SSL_read_ex": [ProbeFunc.SSL_read_ex, "CARNOT_FN_SSL_READ_EX"],
  "ProbeFunc.SSL_write_ex": [ProbeFunc.SSL_write_ex, "CARNOT_FN_SSL_WRITE_EX"],
  "EventKind.HandshakeImplicit": [EventKind.HandshakeImplicit, "CARNOT_EV_HS_IMPLICIT"],
  "EventKind.HandshakeDone": [EventKind.HandshakeDone, "CARNOT_EV_HS_DONE"],
  "EventKind.Exe": [EventKind.Exe, "CARNOT_EV_EXE"],
  DONE_SIZE: [DONE_SIZE, "sizeof(struct carnot_done)"],
  CONN_KEY_SIZE: [CONN_KEY_SIZE, "sizeof(struct carnot_conn_key)"],
  CONN_STATE_SIZE: [CONN_STATE_SIZE, "sizeof(struct carnot_conn_state)"],
  "ConfigFlags.Aggregate": [ConfigFlags.Aggregate, "CARNOT_CFG_AGGREGATE"],
  "ConnFlags.Live": [ConnFlags.Live, "CARNOT_CONN_LIVE"],
  "ConnFlags.AwaitError": [ConnFlags.AwaitError, "CARNOT_CONN_AWAIT_ERROR"],
  "ConnFlags.Implicit": [ConnFlags.Implicit, "CARNOT_CONN_IMPLICIT"],
  "ConnFlags.Visible": [ConnFlags.Visible, "CARNOT_CONN_VISIBLE"],
  "ConnFlags.Finished": [ConnFlags.Finished, "CARNOT_CONN_FINISHED"],
  "Outcome.ok": [OUTCOME_ERRORS.indexOf(null), "CARNOT_DONE_OK"],
  "Outcome.fatal": [OUTCOME_ERRORS.indexOf("fatal"), "CARNOT_DONE_FATAL"],
  "Outcome.syscall": [OUTCOME_ERRORS.indexOf("syscall"), "CARNOT_DONE_SYSCALL"],
  "Outcome.closed": [OUTCOME_ERRORS.indexOf("closed"), "CARNOT_DONE_CLOSED"],
  "Outcome.freed": [OUTCOME_ERRORS.indexOf("freed"), "CARNOT_DONE_FREED"],
  KEX_SIZE: [KEX_SIZE, "sizeof(struct carnot_kex)"],
  LIB_OFFSETS_SIZE: [LIB_OFFSETS_SIZE, "sizeof(struct carnot_lib_offsets)"],
  LIBS_MAX: [LIBS_MAX, "CARNOT_LIBS_MAX"],
  "KexValid.Version": [KexValid.Version, "CARNOT_KEX_VERSION"],
  "KexValid.Cipher": [KexValid.Cipher, "CARNOT_KEX_CIPHER"],
  "KexValid.Group": [KexValid.Group, "CARNOT_KEX_GROUP"],
  "KexValid.Group13": [KexValid.Group13, "CARNOT_KEX_GROUP13"],
};

function measure(): Map<string, number> {
  return measureHeader(
    "carnot.h",
    {
      carnot_event: EVENT_LAYOUT,
      carnot_config: CONFIG_LAYOUT,
      carnot_kex: KEX_LAYOUT,
      carnot_lib_offsets: LIB_OFFSETS_LAYOUT,
      carnot_done: DONE_LAYOUT,
      carnot_conn_key: CONN_KEY_LAYOUT,
      carnot_conn_state: CONN_STATE_LAYOUT,
    },
    Object.fromEntries(Object.entries(CONSTANTS).map(([name, [, cName]]) => [name, cName])),
  );
}

describe.skipIf(COMPILER === null)("bpf/carnot.h and src/trace/libssl/events.ts agree", () => {
  if (COMPILER === null) console.warn("layout test skipped: no C compiler (cc, clang or gcc) on PATH");
  const measured = COMPILER === null ? new Map<string, number>() : measure();

  test.each(Object.entries(EVENT_LAYOUT))("carnot_event.%s offset and size", (name, [offset, size]) => {
    expect([measured.get(`carnot_event.${name}@offset`), measured.get(`carnot_event.${name}@size`)]).toEqual([
      offset,
      size,
    ]);
  });

  test.each(Object.entries(CONFIG_LAYOUT))("carnot_config.%s offset and size", (name, [offset, size]) => {
    expect([
      measured.get(`carnot_config.${name}@offset`),
      measured.get(`carnot_config.${name}@size`),
    ]).toEqual([offset, size]);
  });

  test.each([
    ...Object.entries(KEX_LAYOUT).map(([name, span]) => [`carnot_kex.${name}`, span] as const),
    ...Object.entries(LIB_OFFSETS_LAYOUT).map(
      ([name, span]) => [`carnot_lib_offsets.${name}`, span] as const,
    ),
  ])("%s offset and size", (name, [offset, size]) => {
    expect([measured.get(`${name}@offset`), measured.get(`${name}@size`)]).toEqual([offset, size]);
  });

  test.each(Object.entries(CONSTANTS))("%s", (name, [value]) => {
    expect(measured.get(name)).toBe(value);
  });

  test("the decoder's fields tile each struct exactly (no field missing on the TS side)", () => {
    for (const [layout, size] of [
      [EVENT_LAYOUT, EVENT_SIZE],
      [CONFIG_LAYOUT, CONFIG_SIZE],
      [KEX_LAYOUT, KEX_SIZE],
      [LIB_OFFSETS_LAYOUT, LIB_OFFSETS_SIZE],
      [DONE_LAYOUT, DONE_SIZE],
      [CONN_KEY_LAYOUT, CONN_KEY_SIZE],
      [CONN_STATE_LAYOUT, CONN_STATE_SIZE],
    ] as const) {
      expect(tiles(layout, size)).toBe(true);
    }
  });
});

describe("event codec", () => {
  test("decode reads back what encode wrote, negative aux and 47-bit pointers included", () => {
    const bytes = encodeEvent({
      kind: EventKind.GetError,
      tsNs: 123_456_789_012_345,
      ptr: 0x7fff_dead_beef,
      aux: -1,
      pid: 4242,
      tid: 4243,
      ret: -5,
      libId: 3,
      depth: 2,
      comm: "nginx: worker",
      cgroupId: 2 ** 32 + 4711,
      text: "after the cgroup id",
    });
    expect(bytes.byteLength).toBe(EVENT_SIZE);
    const ev = decodeEvent(bytes);
    expect(ev).toMatchObject({
      kind: EventKind.GetError,
      tsNs: 123_456_789_012_345,
      ptr: 0x7fff_dead_beef,
      aux: -1,
      pid: 4242,
      tid: 4243,
      ret: -5,
      libId: 3,
      depth: 2,
      comm: "nginx: worker",
      cgroupId: 2 ** 32 + 4711,
      text: null,
      nids: null,
    });
    expect(new TextDecoder().decode(ev.data)).toBe("after the cgroup id");
  });

  test("a cgroup id is exact as a number or 0 (unknown): past 2^53 it would be another id", () => {
    expect(cgroupIdOf(4711, 0)).toBe(4711);
    expect(cgroupIdOf(0xffff_ffff, 0x1f_ffff)).toBe(Number.MAX_SAFE_INTEGER);
    expect(cgroupIdOf(0, 0x20_0000)).toBe(0);
  });

  test("text kinds carry the string, NID kinds the integers", () => {
    expect(decodeEvent(encodeEvent({ kind: EventKind.SetHostname, text: "api.example.org" })).text).toBe(
      "api.example.org",
    );
    expect(decodeEvent(encodeEvent({ kind: EventKind.CtxGroupsNids, nids: [1034, 415, -1] })).nids).toEqual([
      1034, 415, -1,
    ]);
  });

  test("config: the --container filter's cgroup id (64 bits) and level", () => {
    const view = new DataView(encodeConfig({ cgroup: { id: 2 ** 33 + 5, level: 3 } }).buffer);
    expect(view.getBigUint64(CONFIG_LAYOUT.targ_cgroup[0], true)).toBe(2n ** 33n + 5n);
    expect(view.getUint32(CONFIG_LAYOUT.targ_cgroup_level[0], true)).toBe(3);
  });

  test("config: pid and comm land where the header puts them; a comm over 15 bytes is refused", () => {
    const bytes = encodeConfig({ pid: 77, comm: "curl" });
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(CONFIG_LAYOUT.targ_tgid[0], true)).toBe(77);
    expect(
      new TextDecoder().decode(bytes.subarray(CONFIG_LAYOUT.targ_comm[0], CONFIG_LAYOUT.targ_comm[0] + 4)),
    ).toBe("curl");
    expect(bytes[CONFIG_LAYOUT.targ_comm[0] + 4]).toBe(0);
    expect(() => encodeConfig({ comm: "a-very-long-name" })).toThrow(/longer than 15 bytes/);
  });
});
