/**
 * The TLS record layer of one direction of a connection, read incrementally from its bytes in stream order
 * (RFC 8446 §5, RFC 5246 §6.2): records span writes, handshake messages span records, several messages share
 * one record. A message the listener wants is handed over whole: as a view of the caller's bytes when it lies
 * in one write (no copy), else assembled in a buffer of its own length. Everything else is skipped without
 * being kept. The reader never throws on bad bytes: it stops and says why in `problem`.
 */
import { ContentType } from "./names.ts";

/** What to do with a record's body; the listener decides from the header and the connection's state. */
export const RecordBody = {
  /** counted only (protected records, heartbeats) */
  skip: 0,
  /** plaintext handshake messages */
  handshake: 1,
  /** a plaintext alert (level, description) */
  alert: 2,
  /** change_cipher_spec: one byte, 1 */
  changeCipherSpec: 3,
} as const;
export type RecordBody = (typeof RecordBody)[keyof typeof RecordBody];

export type RecordProblem = "not-tls" | "malformed" | "overflow";

export interface RecordListener {
  /** A record header was read; the answer says how to read its body (`length` bytes). */
  record(type: number, length: number): RecordBody;
  /** Whether a handshake message of this type is wanted whole (else it is skipped, and reported with null). */
  wants(messageType: number): boolean;
  /** A whole handshake message; `body` is valid only during the call. */
  message(messageType: number, body: Uint8Array | null): void;
  alert(level: number, description: number): void;
  changeCipherSpec(): void;
}

/** Largest record body TLS allows (2^14 + 2048, the TLS 1.2 ciphertext bound). */
const MAX_RECORD = 16384 + 2048;
/** Largest plaintext record body. */
const MAX_PLAINTEXT = 16384;

const EMPTY = new Uint8Array(0);

/** Reads one direction's records and handshake messages; `write` takes the next bytes in stream order. */
export class RecordReader {
  /** why reading stopped, null while the bytes make sense */
  problem: RecordProblem | null = null;
  /** records whose header has been read */
  records = 0;

  #hdrFill = 0;
  #hdrType = 0;
  #hdrVersion = 0;
  #hdrLength = 0;
  /** body bytes of the current record still to come */
  #bodyLeft = 0;
  #body: RecordBody = RecordBody.skip;
  /** alert / change_cipher_spec bytes so far (at most two) */
  #small = 0;
  #smallFill = 0;
  /** handshake message framing: header bytes, type, bytes of the body still to come */
  #msgHdrFill = 0;
  #msgType = 0;
  #msgLength = 0;
  #msgLeft = 0;
  #msgWanted = false;
  #msgBuf: Uint8Array | null = null;
  #msgFill = 0;

  constructor(
    private readonly listener: RecordListener,
    private readonly maxMessage: number,
  ) {}

  /** Whether a record or a handshake message is partly read (the stream stopped in the middle of one). */
  get midway(): boolean {
    return this.#hdrFill > 0 || this.#bodyLeft > 0 || this.#msgHdrFill > 0 || this.#msgLeft > 0;
  }

  /** The next bytes of the stream: `chunk[start, end)` (all of it by default). */
  write(chunk: Uint8Array, start = 0, end = chunk.length): void {
    const n = end;
    let i = start;
    while (i < n && this.problem === null) {
      if (this.#bodyLeft === 0) {
        if (this.#hdrFill === 0 && n - i >= 5) {
          this.#hdrType = chunk[i]!;
          this.#hdrVersion = (chunk[i + 1]! << 8) | chunk[i + 2]!;
          this.#hdrLength = (chunk[i + 3]! << 8) | chunk[i + 4]!;
          i += 5;
        } else {
          this.#headerByte(chunk[i++]!);
          if (this.#hdrFill < 5) continue;
        }
        this.#hdrFill = 0;
        this.#startRecord();
        continue;
      }
      const take = Math.min(this.#bodyLeft, n - i);
      if (this.#body === RecordBody.handshake) this.#handshakeBytes(chunk, i, i + take);
      else if (this.#body !== RecordBody.skip) {
        for (let k = 0; k < take; k++) this.#small = (this.#small << 8) | chunk[i + k]!;
        this.#smallFill += take;
      }
      i += take;
      this.#bodyLeft -= take;
      if (this.#bodyLeft === 0 && this.problem === null) this.#endRecord();
    }
  }

  #headerByte(byte: number): void {
    const k = this.#hdrFill++;
    if (k === 0) {
      this.#hdrType = byte;
      this.#hdrVersion = 0;
      this.#hdrLength = 0;
    } else if (k < 3) this.#hdrVersion = (this.#hdrVersion << 8) | byte;
    else this.#hdrLength = (this.#hdrLength << 8) | byte;
    // a bad first byte or version is known before the whole header has come
    if (k === 0 && (byte < ContentType.changeCipherSpec || byte > ContentType.heartbeat)) this.#badHeader();
    if (k === 1 && byte !== 3) this.#badHeader();
  }

  #badHeader(): void {
    this.problem = this.records === 0 ? "not-tls" : "malformed";
  }

  #startRecord(): void {
    const type = this.#hdrType;
    const length = this.#hdrLength;
    if (type < ContentType.changeCipherSpec || type > ContentType.heartbeat || this.#hdrVersion >> 8 !== 3) {
      this.#badHeader();
      return;
    }
    this.records++;
    if (length > MAX_RECORD) {
      this.problem = "malformed";
      return;
    }
    // a handshake message cut by a record of another type (RFC 8446 §5.1: never interleaved)
    if (type !== ContentType.handshake && (this.#msgHdrFill > 0 || this.#msgLeft > 0)) {
      this.problem = "malformed";
      return;
    }
    const body = this.listener.record(type, length);
    this.#body = body;
    this.#small = 0;
    this.#smallFill = 0;
    if (body !== RecordBody.skip) {
      const bad =
        length > MAX_PLAINTEXT ||
        (body === RecordBody.handshake && length === 0) ||
        (body === RecordBody.alert && length !== 2) ||
        (body === RecordBody.changeCipherSpec && length !== 1);
      if (bad) {
        this.problem = "malformed";
        return;
      }
    }
    this.#bodyLeft = length;
  }

  #endRecord(): void {
    if (this.#body === RecordBody.alert) this.listener.alert(this.#small >> 8, this.#small & 0xff);
    else if (this.#body === RecordBody.changeCipherSpec) {
      if (this.#small !== 1) this.problem = "malformed";
      else this.listener.changeCipherSpec();
    }
  }

  #handshakeBytes(chunk: Uint8Array, at: number, end: number): void {
    while (at < end && this.problem === null) {
      if (this.#msgLeft === 0) {
        if (this.#msgHdrFill === 0 && end - at >= 4) {
          this.#msgType = chunk[at]!;
          this.#msgLength = (chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!;
          at += 4;
        } else {
          const byte = chunk[at++]!;
          if (this.#msgHdrFill === 0) {
            this.#msgType = byte;
            this.#msgLength = 0;
          } else this.#msgLength = (this.#msgLength << 8) | byte;
          if (++this.#msgHdrFill < 4) continue;
        }
        this.#msgHdrFill = 0;
        this.#startMessage();
        continue;
      }
      const take = Math.min(this.#msgLeft, end - at);
      if (this.#msgWanted) {
        if (this.#msgBuf === null && take === this.#msgLength) {
          // the whole message lies in this write: read it in place
          this.#msgLeft = 0;
          this.listener.message(this.#msgType, chunk.subarray(at, at + take));
          at += take;
          continue;
        }
        this.#msgBuf ??= new Uint8Array(this.#msgLength);
        this.#msgBuf.set(chunk.subarray(at, at + take), this.#msgFill);
        this.#msgFill += take;
      }
      at += take;
      this.#msgLeft -= take;
      if (this.#msgLeft === 0) this.#endMessage();
    }
  }

  #startMessage(): void {
    this.#msgWanted = this.listener.wants(this.#msgType);
    if (this.#msgWanted && this.#msgLength > this.maxMessage) {
      this.problem = "overflow";
      return;
    }
    this.#msgFill = 0;
    this.#msgBuf = null;
    this.#msgLeft = this.#msgLength;
    if (this.#msgLength === 0) this.listener.message(this.#msgType, this.#msgWanted ? EMPTY : null);
  }

  #endMessage(): void {
    const body = this.#msgBuf;
    this.#msgBuf = null;
    this.listener.message(this.#msgType, this.#msgWanted ? body : null);
  }
}
