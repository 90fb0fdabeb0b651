/**
 * Reads a BPF ring buffer map from JS through mmap, without libbpf's ring_buffer__poll (which calls back per
 * record and, in libbpf 1.1, does not return while records keep arriving).
 * Layout (kernel/bpf/ringbuf.c): page 0 = consumer_pos (RW); from page 1 = producer_pos page, then the data
 * area mapped twice in a row (RO), so a record never wraps. Each record: u32 len (bit 31 BUSY, bit 30 DISCARD),
 * u32 page offset, then the sample; records are 8-byte aligned.
 * Only plain typed-array loads and stores: Atomics on the read-only mapping crashed Bun's JIT, and x86-64
 * orders plain loads as the producer's release stores require.
 */
import type { Libc, Mapping } from "./libc.ts";

const BUSY_BIT = 0x8000_0000;
const DISCARD_BIT = 0x4000_0000;
const HEADER_SIZE = 8;

export class RingBufferReader {
  readonly size: number;
  readonly #libc: Libc;
  readonly #consumerMap: Mapping;
  readonly #producerMap: Mapping;
  readonly #consumerWords: BigUint64Array;
  readonly #producerWords: BigUint64Array;
  /** The data area (twice `size` bytes) for decoders: offsets given to onRecord are relative to it. */
  readonly dataBuffer: ArrayBuffer;
  readonly dataOffset: number;
  readonly #dataWords: Uint32Array;
  #closed = false;

  /** `size` = the map's max_entries (a power of two, multiple of the page size). */
  constructor(libc: Libc, mapFd: number, size: number) {
    const pageSize = libc.pageSize();
    if (size < pageSize || (size & (size - 1)) !== 0) {
      throw new Error(`ring buffer size ${size} is not a power of two of at least ${pageSize}`);
    }
    this.#libc = libc;
    this.size = size;
    this.#consumerMap = libc.mapShared(mapFd, pageSize, 0, true);
    try {
      this.#producerMap = libc.mapShared(mapFd, pageSize + 2 * size, pageSize, false);
    } catch (err) {
      libc.unmap(this.#consumerMap);
      throw err;
    }
    this.#consumerWords = new BigUint64Array(this.#consumerMap.bytes, 0, 1);
    this.#producerWords = new BigUint64Array(this.#producerMap.bytes, 0, 1);
    this.dataBuffer = this.#producerMap.bytes;
    this.dataOffset = pageSize;
    this.#dataWords = new Uint32Array(this.#producerMap.bytes, pageSize, (2 * size) / 4);
  }

  /** One 8-byte load (no torn read of a position the producer is updating); exact below 2^53. */
  static #position(word: BigUint64Array): number {
    return Number(word[0]!);
  }

  /** Bytes written by the producer and not yet consumed. */
  pending(): number {
    return RingBufferReader.#position(this.#producerWords) - RingBufferReader.#position(this.#consumerWords);
  }

  /**
   * Hands every committed record available now to `onRecord(offset, length)` (byte offset of the sample in
   * the data area: `dataBuffer` from `dataOffset`; 8-byte aligned), then
   * publishes the new consumer position once. Stops at the first record still being written. Returns the
   * number of records delivered (discarded ones are skipped, not counted).
   */
  drain(onRecord: (offset: number, length: number) => void, maxRecords = Infinity): number {
    if (this.#closed) return 0;
    const start = RingBufferReader.#position(this.#consumerWords);
    const end = RingBufferReader.#position(this.#producerWords);
    const words = this.#dataWords;
    const mask = this.size - 1;
    // Positions pass 2^32 (no bitwise ops on them); the offset within the buffer is a small integer.
    let offset = start % this.size;
    let position = start;
    let delivered = 0;
    while (position < end && delivered < maxRecords) {
      const header = words[offset >>> 2]!;
      if ((header & BUSY_BIT) !== 0) break;
      const length = (header & ~(BUSY_BIT | DISCARD_BIT)) >>> 0;
      if ((header & DISCARD_BIT) === 0) {
        onRecord(offset + HEADER_SIZE, length);
        delivered++;
      }
      const step = (length + HEADER_SIZE + 7) & ~7;
      position += step;
      offset = (offset + step) & mask;
    }
    // One 8-byte store per batch: the producer never sees a half-written position.
    if (position !== start) this.#consumerWords[0] = BigInt(position);
    return delivered;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.unmap(this.#producerMap);
    this.#libc.unmap(this.#consumerMap);
  }
}
