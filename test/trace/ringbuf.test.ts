/**
 * The ring buffer read from JS through mmap, and the kernel's drop counter: with a buffer too small for the
 * load, received + dropped must equal attempted exactly — for synthetic events (bpf/flood.bpf.o) and for the
 * real uprobes on libssl. Needs root; skips with the reason otherwise.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type CarnotEvent, EVENT_SIZE, EventKind } from "../../src/trace/libssl/events.ts";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { SslProbes } from "../../src/trace/libssl/probes.ts";
import { SyntheticEventSource } from "../../src/trace/libssl/synthetic-source.ts";

const REPO = join(import.meta.dir, "..", "..");
const FLOOD = join(REPO, "bpf", "flood.bpf.o");
const PYTHON = "/usr/bin/python3";
const PAGE = 4096;
/** Bytes one event takes in the ring: the 8-byte record header, then the 8-byte aligned event. */
const RECORD = EVENT_SIZE + 8;

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (BPF)";
  if (!existsSync(FLOOD) || !existsSync(join(REPO, "bpf", "carnot.bpf.o")))
    return "BPF objects not built (make bpf)";
  return null;
}
const SKIP = skipReason();
if (SKIP) console.warn(`ring buffer tests skipped: ${SKIP}`);

describe.skipIf(SKIP !== null)("ring buffer and drop counter", () => {
  const flood = (size: number) => new SyntheticEventSource(new Uint8Array(readFileSync(FLOOD)), size);

  test("a full ring buffer drops the rest, and received + dropped == attempted exactly", () => {
    const source = flood(4 * PAGE);
    try {
      source.emit(1000);
      const seqs: number[] = [];
      const received = source.drain((ev) => seqs.push(ev.aux));
      const capacity = Math.floor((4 * PAGE) / RECORD);
      expect(received).toBe(capacity);
      // The first events got in; every later one was refused, none half-written.
      expect(seqs).toEqual(Array.from({ length: capacity }, (_, i) => i));
      expect(source.stats()).toMatchObject({ attempted: 1000, dropped: 1000 - capacity });
      // Freed space is usable again: the consumer position was published.
      source.emit(10);
      expect(source.drain(() => {})).toBe(10);
      expect(source.stats()).toMatchObject({ attempted: 1010, dropped: 1000 - capacity });
    } finally {
      source.close();
    }
  });

  test("draining between bursts loses nothing, across many wraps of the buffer, fields intact", () => {
    const source = flood(4 * PAGE);
    try {
      const capacity = Math.floor((4 * PAGE) / RECORD);
      const events: CarnotEvent[] = [];
      let emitted = 0;
      for (let burst = 0; burst < 400; burst++) {
        const n = 1 + (burst % capacity); // uneven bursts: records land at every offset, wrap included
        source.emit(n);
        emitted += n;
        source.drain((ev) => events.push(ev));
      }
      expect(source.stats()).toMatchObject({ attempted: emitted, dropped: 0 });
      expect(events.length).toBe(emitted);
      expect(events.map((ev) => ev.aux)).toEqual(Array.from({ length: emitted }, (_, i) => i));
      for (const ev of [events[0]!, events.at(-1)!]) {
        expect(ev).toMatchObject({
          kind: EventKind.Synthetic,
          comm: "carnot-flood",
          pid: process.pid,
          ret: 1,
        });
        expect(new TextDecoder().decode(ev.data)).toBe("flood:ok");
      }
      expect(source.pendingBytes()).toBe(0);
    } finally {
      source.close();
    }
  });

  test("maxEvents bounds one drain; the rest stays for the next", () => {
    const source = flood(16 * PAGE);
    try {
      source.emit(100);
      expect(source.drain(() => {}, 30)).toBe(30);
      expect(source.pendingBytes()).toBe(70 * RECORD);
      const rest: number[] = [];
      expect(source.drain((ev) => rest.push(ev.aux))).toBe(70);
      expect(rest[0]).toBe(30);
    } finally {
      source.close();
    }
  });

  test.skipIf(!existsSync(PYTHON) || findSystemLibssl() === null)(
    "real uprobes: a 4 KiB ring buffer overflows and every event is accounted for",
    async () => {
      // 300 client SSL objects driven in memory (no network): 7 probe events each, far more than 12 slots.
      const rounds = 300;
      const script = `
import ssl, sys
sys.stdin.readline()
ctx = ssl.create_default_context()
for i in range(${rounds}):
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="h%d.example" % i)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    del obj
`;
      const child = Bun.spawn([PYTHON, "-c", script], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
      const probes = SslProbes.open({ libraries: [findSystemLibssl()!], pid: child.pid, ringbufSize: PAGE });
      try {
        child.stdin.write("go\n");
        await child.stdin.end();
        expect(await child.exited).toBe(0);
        const events: CarnotEvent[] = [];
        probes.drain((ev) => events.push(ev));
        const stats = probes.stats();
        // Per round: SSL_new, SNI, connect state, handshake enter + return, SSL_get_error, SSL_free; and once,
        // first, the process's executable (the ring is empty then: it is received)
        expect(stats.attempted).toBe(rounds * 7 + 1);
        expect(events[0]?.kind).toBe(EventKind.Exe);
        expect(stats.dropped).toBeGreaterThan(0);
        expect(events.length + stats.dropped).toBe(stats.attempted);
        expect(events.length).toBe(Math.floor(PAGE / RECORD));
      } finally {
        probes.close();
      }
    },
  );
});
