/**
 * The exporter's thread: reads the records back from the output files as they are written and publishes each
 * one to JetStream with its chain value as the message id (`Nats-Msg-Id`: the stream drops a duplicate within
 * its window). The files are the only queue: what is not yet acknowledged is read again from where the last
 * acknowledged record ends, after a failure, a reconnection or a broker that restarted; at most WINDOW records
 * are in flight. The tracer's thread never waits for it.
 *
 * Messages from the tracer's thread: `file` (a new output file and a descriptor to read it through), `written`
 * (how many bytes of it hold whole lines now), `finish` (stop once everything is acknowledged or the grace
 * period ends). Counters go to a shared array the tracer reads for its metrics.
 */
import { closeSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { NatsTarget } from "./nats-url.ts";
import { COUNTER, type ExportWorkerInput, type FromExporter, type ToExporter } from "./protocol.ts";

/** Records published and not yet acknowledged, at most. */
const WINDOW = 256;
/** Bytes read from a file at a time. */
const READ_BYTES = 256 * 1024;
/** How long a publication waits for the stream's acknowledgement. */
const ACK_TIMEOUT_MS = 5_000;
/** Waits between attempts to reach the broker. */
const RETRY_MS = 500;
/** Stream's de-duplication window when carnot creates the stream: resends after an outage stay deduplicated. */
const DUPLICATE_WINDOW_NS = 3_600 * 1e9;
/** `,"chain":"<64 hex>"}`: the fixed end of every line; the chain value is the message id. */
const CHAIN_TAIL = 66;

interface FileState {
  sequence: number;
  fd: number;
  /** bytes of whole lines written so far */
  bytes: number;
  /** no more lines will come */
  final: boolean;
}

/** A place in the files: before the line that starts at `offset` (line number `line`, from 1). */
interface Cursor {
  file: number;
  offset: number;
  line: number;
}

class ExportLoop {
  readonly #files: FileState[] = [];
  readonly #counters: Float64Array;
  /** after the last acknowledged record */
  #acked: Cursor = { file: 0, offset: 0, line: 1 };
  #buf = Buffer.allocUnsafe(READ_BYTES);
  #bufFile = -1;
  #bufStart = 0;
  #bufLen = 0;
  #wake: (() => void) | null = null;
  #finishAt: number | null = null;
  #nc: NatsConnection | null = null;
  #connected = false;

  constructor(
    private readonly target: NatsTarget,
    counters: SharedArrayBuffer,
    private readonly send: (m: FromExporter) => void,
  ) {
    this.#counters = new Float64Array(counters);
  }

  receive(m: ToExporter): void {
    if (m.kind === "file") this.#files.push({ sequence: m.sequence, fd: m.fd, bytes: 0, final: false });
    else if (m.kind === "written") {
      const f = this.#files.find((x) => x.sequence === m.sequence);
      if (f) {
        f.bytes = Math.max(f.bytes, m.bytes);
        f.final ||= m.final;
      }
    } else this.#finishAt = performance.now() + m.graceMs;
    this.#wake?.();
  }

  async run(): Promise<void> {
    while (!this.#finished()) {
      const js = await this.#connect();
      if (js === null) {
        await this.#sleep(RETRY_MS);
        continue;
      }
      try {
        await this.#resume();
        await this.#pump(js);
      } catch (err) {
        if (this.#finished()) break;
        this.#counters[COUNTER.failures]!++;
        log(
          `publish failed: ${describe(err)}; sending again from record ${this.#describeCursor(this.#acked)}`,
        );
        await this.#sleep(RETRY_MS);
      }
    }
    await this.#nc?.close().catch(() => {});
    this.#connected = false;
    this.#counters[COUNTER.connected] = 0;
    this.send({ kind: "done", pending: this.#pending() });
  }

  /** Everything acknowledged and no more to come, or the grace period is over. */
  #finished(): boolean {
    if (this.#finishAt === null) return false;
    return this.#pending() === null || performance.now() >= this.#finishAt;
  }

  #pending(): { sequence: number; line: number } | null {
    const c = this.#acked;
    const f = this.#files[c.file];
    if (f === undefined) return null;
    const atEnd = c.offset >= f.bytes && this.#files.slice(c.file + 1).every((g) => g.bytes === 0);
    return atEnd ? null : { sequence: f.sequence, line: c.line };
  }

  /** Connected and the stream there (found by the subject, created if none); null while the broker is away. */
  async #connect(): Promise<JetStreamClient | null> {
    if (this.#nc !== null && !this.#nc.isClosed()) {
      if (this.#connected) return jetstream(this.#nc, { timeout: ACK_TIMEOUT_MS });
      return null;
    }
    try {
      const nc = await connect({
        servers: this.target.server,
        name: "carnot trace",
        timeout: 2_000,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: RETRY_MS,
      });
      this.#nc = nc;
      this.#setConnected(true);
      void this.#watch(nc);
      const jsm = await jetstreamManager(nc, { timeout: ACK_TIMEOUT_MS });
      const found = await jsm.streams.find(this.target.subject).catch(() => null);
      if (found === null) {
        await jsm.streams.add({
          name: this.target.stream,
          subjects: [this.target.subject],
          duplicate_window: DUPLICATE_WINDOW_NS,
        });
        this.send({ kind: "note", text: `created stream ${this.target.stream} for ${this.target.subject}` });
      }
      return jetstream(nc, { timeout: ACK_TIMEOUT_MS });
    } catch (err) {
      if (this.#connected || this.#counters[COUNTER.disconnects] === 0) this.#lost(describe(err));
      this.#setConnected(false);
      await this.#nc?.close().catch(() => {});
      this.#nc = null;
      return null;
    }
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") this.#lost("the connection was lost");
      else if (s.type === "reconnect") this.#setConnected(true);
    }
  }

  #lost(why: string): void {
    const was = this.#connected;
    this.#setConnected(false);
    if (was || this.#counters[COUNTER.disconnects] === 0) {
      this.#counters[COUNTER.disconnects]!++;
      this.send({
        kind: "warning",
        text: `export: cannot reach ${this.target.text}: ${why}; the records stay in the output files and are sent once it answers`,
      });
    }
  }

  #setConnected(up: boolean): void {
    if (up && !this.#connected && this.#counters[COUNTER.disconnects]! > 0)
      this.send({
        kind: "note",
        text: `export: ${this.target.text} reached again; sending from record ${this.#describeCursor(this.#acked)}`,
      });
    this.#connected = up;
    this.#counters[COUNTER.connected] = up ? 1 : 0;
    if (!up) this.#wake?.();
  }

  /**
   * After a reconnection: the stream's last message on the subject may be one of the records in flight when
   * the connection broke (stored, its acknowledgement lost): start after it, so it is not stored twice even
   * past the stream's de-duplication window.
   */
  async #resume(): Promise<void> {
    const nc = this.#nc;
    if (nc === null) return;
    const jsm = await jetstreamManager(nc, { timeout: ACK_TIMEOUT_MS });
    const last = await jsm.streams
      .getMessage(this.target.stream, { last_by_subj: this.target.subject })
      .catch(() => null);
    const id = last?.header?.get("Nats-Msg-Id");
    if (!id) return;
    let c = this.#acked;
    for (let i = 0; i < WINDOW; i++) {
      const next = this.#nextLine(c);
      if (next === null) return;
      if (next.id === id) {
        this.#counters[COUNTER.published]! += i + 1;
        this.#acked = next.after;
        return;
      }
      c = next.after;
    }
  }

  /** Publish from the acknowledged place on, WINDOW at a time, acknowledgements taken in order. */
  async #pump(js: JetStreamClient): Promise<void> {
    let send = this.#acked;
    const inflight: { ack: Promise<unknown>; after: Cursor }[] = [];
    for (;;) {
      if (!this.#connected) throw new Error("not connected");
      const next = inflight.length < WINDOW ? this.#nextLine(send) : null;
      if (next !== null) {
        const ack = js.publish(this.target.subject, next.data, { msgID: next.id });
        ack.catch(() => {}); // awaited in order below
        inflight.push({ ack, after: next.after });
        send = next.after;
        continue;
      }
      const oldest = inflight.shift();
      if (oldest !== undefined) {
        await oldest.ack;
        this.#acked = oldest.after;
        this.#counters[COUNTER.published]!++;
        this.#release();
        continue;
      }
      if (this.#finished()) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 200);
      });
      this.#wake = null;
    }
  }

  /** The line at `c` (its bytes, chain value and the place after it), or null when none is written yet. */
  #nextLine(c: Cursor): { data: Uint8Array; id: string; after: Cursor } | null {
    let file = c.file;
    let offset = c.offset;
    let line = c.line;
    for (;;) {
      const f = this.#files[file];
      if (f === undefined) return null;
      if (offset < f.bytes) break;
      // a finished file is left for the next one
      if (!f.final || this.#files[file + 1] === undefined) return null;
      file++;
      offset = 0;
      line = 1;
    }
    const f = this.#files[file]!;
    const data = this.#lineAt(f, file, offset);
    if (data === null) return null;
    const id = data.subarray(data.length - CHAIN_TAIL, data.length - 2).toString();
    return { data, id, after: { file, offset: offset + data.length + 1, line: line + 1 } };
  }

  /** The whole line starting at `offset` (without its newline), or null when it is not complete yet. */
  #lineAt(f: FileState, file: number, offset: number): Buffer | null {
    let fresh = false;
    for (;;) {
      if (this.#bufFile === file && offset >= this.#bufStart && offset < this.#bufStart + this.#bufLen) {
        const from = offset - this.#bufStart;
        const nl = this.#buf.subarray(0, this.#bufLen).indexOf(10, from);
        if (nl >= 0) return Buffer.from(this.#buf.subarray(from, nl));
        if (fresh && this.#bufLen < this.#buf.length) return null; // all there is, and no newline yet
        // a line longer than the buffer
        if (fresh) {
          this.#buf = Buffer.allocUnsafe(this.#buf.length * 2);
          this.#bufFile = -1;
        }
      }
      const want = Math.min(f.bytes - offset, this.#buf.length);
      if (want <= 0 || f.fd < 0) return null;
      let got = 0;
      while (got < want) {
        const n = readSync(f.fd, this.#buf, got, want - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      this.#counters[COUNTER.readBytes]! += got;
      this.#bufFile = file;
      this.#bufStart = offset;
      this.#bufLen = got;
      if (got === 0) return null;
      fresh = true;
    }
  }

  /** Descriptors of files wholly acknowledged are closed (their disk space can go with --max-files). */
  #release(): void {
    for (let i = 0; i < this.#acked.file; i++) {
      const f = this.#files[i]!;
      if (f.fd >= 0 && f.final) {
        try {
          closeSync(f.fd);
        } catch {}
        f.fd = -1;
      }
    }
  }

  #describeCursor(c: Cursor): string {
    const f = this.#files[c.file];
    return f === undefined ? "1" : `${c.line} of file ${f.sequence}`;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.message ?? e.code ?? String(err);
}

function log(text: string): void {
  parentPort?.postMessage({ kind: "note", text: `export: ${text}` } satisfies FromExporter);
}

if (parentPort && workerData && (workerData as { target?: unknown }).target) {
  const input = workerData as ExportWorkerInput;
  const port = parentPort;
  const loop = new ExportLoop(input.target, input.counters, (m) => port.postMessage(m));
  port.on("message", (m: ToExporter) => loop.receive(m));
  void loop.run();
}
