/**
 * The TLS tables and parsers on bytes, without root: names checked against Wireshark's and OpenSSL's own,
 * JA4 against its specification's worked example, the record layer and hellos against hand-made messages.
 */
import { describe, expect, test } from "bun:test";
import { WireConnection, wireContext } from "../../../src/trace/wire/connection.ts";
import { FFDHE_GROUPS, ffdhePrime } from "../../../src/trace/wire/tls/ffdhe.ts";
import { parseCipherSuiteValues } from "../../../src/trace/wire/tls/generate-cipher-suites.ts";
import { type ClientHello, parseClientHello, parseServerHello } from "../../../src/trace/wire/tls/hello.ts";
import { Ja4 } from "../../../src/trace/wire/tls/ja4.ts";
import { ALERT_NAMES, CIPHER_SUITE_NAMES, isGrease } from "../../../src/trace/wire/tls/names.ts";
import { RecordBody, type RecordListener, RecordReader } from "../../../src/trace/wire/tls/records.ts";

const TSHARK = Bun.which("tshark");
const tsharkValues = TSHARK
  ? Bun.spawnSync([TSHARK, "-G", "values"], { stderr: "ignore" }).stdout.toString()
  : "";
if (!TSHARK)
  console.warn("tshark missing (Debian package tshark): name tables not compared with Wireshark's");

describe("names", () => {
  test.skipIf(!TSHARK)(
    "the committed cipher suite table is what `make cipher-suites` makes from tshark",
    () => {
      expect([...CIPHER_SUITE_NAMES]).toEqual(parseCipherSuiteValues(tsharkValues));
      expect(CIPHER_SUITE_NAMES.get(0x1301)).toBe("TLS_AES_128_GCM_SHA256");
      expect(CIPHER_SUITE_NAMES.get(0xc02b)).toBe("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    },
  );

  test.skipIf(!TSHARK)("alert names are Wireshark's descriptions in the RFC's spelling", () => {
    const theirs = new Map<number, string>();
    for (const m of tsharkValues.matchAll(/^V\ttls\.alert_message\.desc\t(\d+)\t(.+)$/gm)) {
      theirs.set(Number(m[1]), m[2]!.toLowerCase().replaceAll(" ", "_"));
    }
    for (const [code, name] of ALERT_NAMES) expect({ code, name }).toEqual({ code, name: theirs.get(code)! });
  });

  test("GREASE: the sixteen 0x?A?A values, nothing else", () => {
    const grease: number[] = [];
    for (let v = 0; v < 0x10000; v++) if (isGrease(v)) grease.push(v);
    expect(grease).toEqual(Array.from({ length: 16 }, (_, i) => i * 0x1010 + 0x0a0a));
  });

  test("RFC 7919 primes computed from the RFC's formula equal OpenSSL's", () => {
    for (const [bits, , x] of FFDHE_GROUPS) {
      const asn1 = Bun.spawnSync([
        "sh",
        "-c",
        `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe${bits} | openssl asn1parse`,
      ]).stdout.toString();
      const theirs = /INTEGER\s+:([0-9A-F]+)/.exec(asn1)![1]!;
      expect(Buffer.from(ffdhePrime(bits, x)).toString("hex").toUpperCase()).toBe(theirs);
    }
  });
});

/** A ClientHello with just what JA4 reads. */
function hello(fields: Partial<ClientHello>): ClientHello {
  return {
    legacyVersion: 0x0303,
    sessionId: new Uint8Array(0),
    cipherSuites: [],
    extensions: [],
    serverName: null,
    serverNamePresent: false,
    supportedGroups: null,
    keyShares: null,
    supportedVersions: null,
    alpn: null,
    signatureAlgorithms: null,
    pskModes: null,
    pskIdentities: null,
    earlyData: false,
    sessionTicketLength: null,
    ...fields,
  };
}

describe("JA4", () => {
  const fingerprints = new Ja4();
  const ja4 = (h: ClientHello) => fingerprints.of(h);
  const hex = (s: string) => s.split(",").map((h) => Number.parseInt(h, 16));
  // the specification's worked example (technical_details/JA4.md)
  const example = hello({
    cipherSuites: hex("1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035"),
    extensions: hex("001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015"),
    signatureAlgorithms: hex("0403,0804,0401,0503,0805,0501,0806,0601"),
    supportedVersions: [0x0304, 0x0303],
    serverNamePresent: true,
    alpn: [new TextEncoder().encode("h2"), new TextEncoder().encode("http/1.1")],
  });

  test("the specification's example", () => {
    expect(ja4(example)).toBe("t13d1516h2_8daaf6152771_e5627efa2ab1");
  });

  test("without signature algorithms the extension list is hashed alone", () => {
    expect(ja4({ ...example, signatureAlgorithms: null })).toBe("t13d1516h2_8daaf6152771_6d807ffa2a79");
  });

  test("GREASE is ignored everywhere; no SNI is i; no ALPN is 00; no supported_versions: the legacy version", () => {
    const greased = {
      ...example,
      cipherSuites: [0x0a0a, ...example.cipherSuites],
      extensions: [0x1a1a, ...example.extensions, 0xfafa],
      supportedVersions: [0x3a3a, 0x0304],
    };
    expect(ja4(greased)).toBe(ja4(example));
    expect(ja4({ ...example, serverNamePresent: false, alpn: null })).toMatch(/^t13i151600_/);
    expect(ja4({ ...example, supportedVersions: null, legacyVersion: 0x0301 })).toMatch(/^t10d/);
    expect(ja4(hello({}))).toBe("t12i000000_000000000000_000000000000");
  });

  test("what one instance remembers never changes a fingerprint: thousands of lists, long ones, in turn", () => {
    // each hello also made by a fresh instance, which remembers nothing yet
    const fresh = (h: ClientHello) => new Ja4().of(h);
    const hellos: ClientHello[] = [];
    for (let i = 0; i < 3000; i++) {
      hellos.push({
        ...example,
        // the same two lists twice in a row, with and without SNI; 1,500 cipher lists: more than it keeps
        cipherSuites: [...example.cipherSuites, 0x1000 + (i >> 1)],
        extensions: [...example.extensions, 0x2000 + ((i >> 1) % 70)],
        serverNamePresent: i % 2 === 0,
      });
    }
    hellos.push({ ...example, cipherSuites: Array.from({ length: 600 }, (_, i) => 0x0100 + i) });
    for (const h of [...hellos, ...hellos.slice().reverse()]) {
      if (ja4(h) !== fresh(h)) throw new Error(`${fresh(h)} given as ${ja4(h)}`);
    }
    expect(ja4(example)).toBe("t13d1516h2_8daaf6152771_e5627efa2ab1");
  });

  test("more than 99 ciphers: the count says 99, the hash covers them all (buffers grow)", () => {
    const many = Array.from({ length: 150 }, (_, i) => 0x0100 + i);
    const big = { ...example, cipherSuites: many };
    const text = [...many].map((v) => v.toString(16).padStart(4, "0")).join(",");
    const hash = new Bun.CryptoHasher("sha256").update(text).digest("hex").slice(0, 12);
    expect(ja4(big)).toBe(`t13d9916h2_${hash}_e5627efa2ab1`);
    expect(ja4(example)).toBe("t13d1516h2_8daaf6152771_e5627efa2ab1");
  });

  test("an ALPN value that starts or ends with a byte that is not alphanumeric: hex digits", () => {
    const cases: Array<[number[], string]> = [
      [[0xab], "ab"],
      [[0x20], "20"],
      [[0xab, 0xcd], "ad"],
      [[0x20, 0x61], "21"],
      [[0x30, 0xab], "3b"],
      [[0x61, 0x20], "60"],
      [[0x30, 0x31, 0xab, 0xcd], "3d"],
      [[0x30, 0xab, 0xcd, 0x31], "01"],
      [[0x68], "hh"],
    ];
    for (const [bytes, chars] of cases) {
      const fp = ja4({ ...example, alpn: [Uint8Array.from(bytes)] });
      expect({ bytes, chars: fp.slice(8, 10) }).toEqual({ bytes, chars });
    }
  });
});

// --- hand-made messages ---

const u16 = (v: number) => [v >> 8, v & 0xff];
const u24 = (v: number) => [v >> 16, (v >> 8) & 0xff, v & 0xff];
const ext = (type: number, body: number[]) => [...u16(type), ...u16(body.length), ...body];
const list16 = (values: number[]) => [...u16(values.length * 2), ...values.flatMap(u16)];

function clientHelloBody(extensions: number[][], sessionId: number[] = []): number[] {
  const exts = extensions.flat();
  return [
    ...u16(0x0303),
    ...new Array(32).fill(7),
    sessionId.length,
    ...sessionId,
    ...list16([0x1301, 0x1302]),
    1,
    0,
    ...u16(exts.length),
    ...exts,
  ];
}

const sni = (name: string) => {
  const bytes = [...new TextEncoder().encode(name)];
  return ext(0, [...u16(bytes.length + 3), 0, ...u16(bytes.length), ...bytes]);
};
const groupsExt = ext(10, list16([0x11ec, 29, 23]));
const sharesExt = ext(51, [
  ...u16(4 + 2 + 4 + 2),
  ...u16(0x11ec),
  ...u16(2),
  1,
  2,
  ...u16(29),
  ...u16(2),
  3,
  4,
]);
const versionsExt = ext(43, [4, ...u16(0x0304), ...u16(0x0303)]);

describe("ClientHello and ServerHello", () => {
  test("a ClientHello's extensions, in order", () => {
    const h = parseClientHello(
      Uint8Array.from(clientHelloBody([sni("a.example"), groupsExt, sharesExt, versionsExt])),
    )!;
    expect(h.serverName).toBe("a.example");
    expect(h.supportedGroups).toEqual([0x11ec, 29, 23]);
    expect(h.keyShares).toEqual([0x11ec, 29]);
    expect(h.supportedVersions).toEqual([0x0304, 0x0303]);
    expect(h.extensions).toEqual([0, 10, 51, 43]);
  });

  test("malformed ClientHellos are null: lengths that do not fit, a repeated extension, trailing bytes", () => {
    const good = clientHelloBody([sni("a.example"), groupsExt]);
    expect(parseClientHello(Uint8Array.from(good))).not.toBeNull();
    expect(parseClientHello(Uint8Array.from([...good, 0]))).toBeNull();
    expect(parseClientHello(Uint8Array.from(good.slice(0, -1)))).toBeNull();
    expect(parseClientHello(Uint8Array.from(clientHelloBody([groupsExt, groupsExt])))).toBeNull();
    expect(parseClientHello(Uint8Array.from(clientHelloBody([ext(10, [0, 3, 0, 29, 0])])))).toBeNull();
    expect(parseClientHello(Uint8Array.from(clientHelloBody([], new Array(33).fill(1))))).toBeNull();
    expect(parseClientHello(new Uint8Array(0))).toBeNull();
  });

  test("a server name that is not printable ASCII is null (never re-encoded)", () => {
    const h = parseClientHello(Uint8Array.from(clientHelloBody([sni("caf\u00e9.example")])))!;
    expect(h.serverNamePresent).toBe(true);
    expect(h.serverName).toBeNull();
  });

  test("a HelloRetryRequest is told by its random", () => {
    const hrrRandom = [
      ...Buffer.from("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c", "hex"),
    ];
    const exts = [...ext(43, u16(0x0304)), ...ext(51, u16(24))];
    const body = [...u16(0x0303), ...hrrRandom, 0, ...u16(0x1302), 0, ...u16(exts.length), ...exts];
    const h = parseServerHello(Uint8Array.from(body))!;
    expect(h).toMatchObject({ retry: true, selectedVersion: 0x0304, keyShareGroup: 24, cipherSuite: 0x1302 });
    // another random: a ServerHello, whose key_share must be a whole entry, not a group alone
    body[2]! ^= 1;
    expect(parseServerHello(Uint8Array.from(body))).toBeNull();
  });
});

describe("record layer", () => {
  /** Records the listener's calls. */
  function reader() {
    const calls: string[] = [];
    const listener: RecordListener = {
      record: (type, length) => {
        calls.push(`record ${type} ${length}`);
        return type === 22 ? RecordBody.handshake : type === 21 ? RecordBody.alert : RecordBody.skip;
      },
      wants: () => true,
      message: (type, body) => calls.push(`message ${type} ${body?.length}`),
      alert: (level, description) => calls.push(`alert ${level} ${description}`),
      changeCipherSpec: () => calls.push("ccs"),
    };
    return { r: new RecordReader(listener, 1000), calls };
  }
  const record = (type: number, body: number[]) => [type, 3, 3, ...u16(body.length), ...body];
  const message = (type: number, body: number[]) => [type, ...u24(body.length), ...body];

  test("messages span records, records share messages, and any cut of the bytes gives the same", () => {
    const m1 = message(2, new Array(40).fill(1));
    const m2 = message(11, new Array(30).fill(2));
    const m3 = message(14, []);
    const bytes = [
      ...record(22, m1.slice(0, 10)),
      ...record(22, [...m1.slice(10), ...m2, ...m3]),
      ...record(21, [2, 40]),
    ];
    const expected = [
      "record 22 10",
      "record 22 72",
      "message 2 40",
      "message 11 30",
      "message 14 0",
      "record 21 2",
      "alert 2 40",
    ];
    for (const size of [1, 2, 3, 5, 7, 100]) {
      const { r, calls } = reader();
      for (let at = 0; at < bytes.length; at += size) r.write(Uint8Array.from(bytes.slice(at, at + size)));
      expect({ size, calls, problem: r.problem }).toEqual({ size, calls: expected, problem: null });
    }
  });

  test("a record of another type inside a handshake message, a zero-length handshake record: malformed", () => {
    const a = reader();
    a.r.write(Uint8Array.from([...record(22, message(1, [1, 2, 3]).slice(0, 5)), ...record(21, [2, 40])]));
    expect(a.r.problem).toBe("malformed");
    const b = reader();
    b.r.write(Uint8Array.from(record(22, [])));
    expect(b.r.problem).toBe("malformed");
  });

  test("bytes that are no record header: not-tls first, malformed later", () => {
    const a = reader();
    a.r.write(new TextEncoder().encode("SSH-2.0-OpenSSH"));
    expect(a.r.problem).toBe("not-tls");
    const b = reader();
    b.r.write(Uint8Array.from([...record(21, [1, 0]), 0x47, 0x45, 0x54]));
    expect(b.r.problem).toBe("malformed");
  });
});

describe("WireConnection on hand-made streams", () => {
  const ctx = wireContext();
  const record = (type: number, body: number[]) =>
    Uint8Array.from([type, 3, 1, ...u16(body.length), ...body]);

  test("a ClientHello then a fatal alert from the server: false, the alert's name", () => {
    const body = clientHelloBody([sni("x.example"), groupsExt, sharesExt, versionsExt]);
    const conn = new WireConnection(ctx);
    conn.segment(0, 0, record(22, [1, ...u24(body.length), ...body]));
    expect(conn.decided).toBe(false);
    conn.segment(1, 0, record(21, [2, 40]));
    expect(conn.decided).toBe(true);
    expect(conn.result()).toMatchObject({ role: "client", success: false, error: "handshake_failure" });
    expect(conn.result().client!.groupsOffered).toEqual(["X25519MLKEM768", "X25519", "secp256r1"]);
    expect(conn.result().client!.keySharesOffered).toEqual(["X25519MLKEM768", "X25519"]);
  });

  test("a warning alert in TLS ≤ 1.2 (unrecognized_name) does not end the handshake", () => {
    const body = clientHelloBody([sni("x.example")]);
    const conn = new WireConnection(ctx);
    conn.segment(1, 0, record(22, [1, ...u24(body.length), ...body]));
    conn.segment(0, 0, record(21, [1, 112]));
    expect(conn.decided).toBe(false);
    expect(conn.result()).toMatchObject({ role: "server", success: null, error: "unconfirmed" });
  });

  test("both directions starting with a ClientHello: malformed", () => {
    const body = clientHelloBody([]);
    const conn = new WireConnection(ctx);
    conn.segment(0, 0, record(22, [1, ...u24(body.length), ...body]));
    conn.segment(1, 0, record(22, [1, ...u24(body.length), ...body]));
    expect(conn.result().problem).toBe("malformed");
  });
});
