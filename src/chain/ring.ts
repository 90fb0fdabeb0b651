/**
 * A single-producer, single-consumer byte ring in shared memory: the writer's thread puts record
 * frames in, the hash worker takes them out. Positions count bytes modulo 2^31 in an Int32Array
 * so both sides read them with Atomics; each side sleeps in Atomics.wait only when it must, and
 * is woken only when the other side says it sleeps (no syscall per record).
 */

/** Ring size: a power of two, so positions modulo 2^31 map straight onto it. */
export const RING_BYTES = 1 << 20;
const POS_MASK = 0x7fffffff;
/** Slots of the shared control array. */
export const CTL = {
  /** bytes published by the producer */
  written: 0,
  /** bytes consumed by the worker */
  read: 1,
  /** 0 while records may come, 1 once the producer has published its last frame */
  ended: 2,
  workerWaiting: 3,
  producerWaiting: 4,
  /** set by the worker when it runs */
  started: 5,
  /** length of the worker's error message (in the error area), 0 when none */
  errorLen: 6,
  /** the producer's latest flush request (a sequence number) */
  flushWanted: 7,
  /** the last flush request the worker has carried out */
  flushDone: 8,
} as const;
export const CTL_INTS = 12;
/** The worker's error message, UTF-8, after the control ints. */
export const ERROR_BYTES = 512;
/** How long a side waits for the other before it gives up (the other is gone). */
const STALL_MS = 60_000;

/** The shared memory of one ring. */
export interface RingShared {
  data: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

export function createRing(): RingShared {
  return {
    data: new SharedArrayBuffer(RING_BYTES),
    control: new SharedArrayBuffer(CTL_INTS * 4 + ERROR_BYTES),
  };
}

/** The worker's error message, or null. */
export function ringError(shared: RingShared, ctl: Int32Array): string | null {
  const len = Atomics.load(ctl, CTL.errorLen);
  if (len === 0) return null;
  return new TextDecoder().decode(new Uint8Array(shared.control, CTL_INTS * 4, len).slice());
}

/** Record the worker's error message for the producer to read synchronously. */
export function setRingError(shared: RingShared, ctl: Int32Array, message: string): void {
  const area = new Uint8Array(shared.control, CTL_INTS * 4, ERROR_BYTES);
  const len = new TextEncoder().encodeInto(message.slice(0, ERROR_BYTES / 3), area).written;
  Atomics.store(ctl, CTL.errorLen, Math.max(1, len));
}

export class RingProducer {
  readonly ctl: Int32Array;
  private readonly data: Buffer;
  private w = 0;

  constructor(readonly shared: RingShared) {
    this.ctl = new Int32Array(shared.control);
    this.data = Buffer.from(shared.data);
  }

  /** Copy src[0..len) into the ring, waiting for room; publishes as it goes when the ring fills. */
  write(src: Buffer, len: number): void {
    const ctl = this.ctl;
    let off = 0;
    while (off < len) {
      const free = RING_BYTES - ((this.w - Atomics.load(ctl, CTL.read)) & POS_MASK);
      if (free === 0) {
        this.publish();
        this.waitForRoom();
        continue;
      }
      const at = this.w & (RING_BYTES - 1);
      const n = Math.min(len - off, free, RING_BYTES - at);
      src.copy(this.data, at, off, off + n);
      off += n;
      this.w = (this.w + n) & POS_MASK;
    }
  }

  /** Make everything written so far visible to the worker (and wake it if it sleeps). */
  publish(): void {
    Atomics.store(this.ctl, CTL.written, this.w);
    if (Atomics.load(this.ctl, CTL.workerWaiting) !== 0) Atomics.notify(this.ctl, CTL.written);
  }

  /**
   * Ask the worker to write out what it has once it has taken everything published so far, and
   * wait until it has. Returns false when the worker reported an error instead (see ringError).
   */
  requestFlush(): boolean {
    const ctl = this.ctl;
    const seq = (Atomics.load(ctl, CTL.flushWanted) + 1) | 0;
    Atomics.store(ctl, CTL.flushWanted, seq);
    this.publish();
    const since = performance.now();
    for (;;) {
      const done = Atomics.load(ctl, CTL.flushDone);
      // the worker also marks a request done when its write failed: then the error decides
      if (done === seq) return Atomics.load(ctl, CTL.errorLen) === 0;
      if (Atomics.load(ctl, CTL.errorLen) !== 0) return false;
      if (performance.now() - since > STALL_MS) throw new Error("the hash worker stopped taking records");
      // the worker may have looked at the request slot just before it changed and be about to
      // sleep on `written`: wake it again each round instead of relying on a single notify
      Atomics.notify(ctl, CTL.written);
      Atomics.wait(ctl, CTL.flushDone, done, 2);
    }
  }

  /** No more frames: the worker drains the ring and stops. */
  end(): void {
    this.publish();
    Atomics.store(this.ctl, CTL.ended, 1);
    Atomics.notify(this.ctl, CTL.written);
  }

  /** Sleep until the worker has taken something out of a full ring. */
  private waitForRoom(): void {
    const ctl = this.ctl;
    const since = performance.now();
    for (;;) {
      // compare with our own position, not with an earlier read of the worker's: it may have
      // emptied the ring between our last look and now, and would then never move again
      const r = Atomics.load(ctl, CTL.read);
      if (((this.w - r) & POS_MASK) < RING_BYTES) return;
      if (Atomics.load(ctl, CTL.errorLen) !== 0) return; // the worker only drains now; the caller checks the error
      if (performance.now() - since > STALL_MS) throw new Error("the hash worker stopped taking records");
      Atomics.store(ctl, CTL.producerWaiting, 1);
      if (Atomics.load(ctl, CTL.read) === r) Atomics.wait(ctl, CTL.read, r, 100);
      Atomics.store(ctl, CTL.producerWaiting, 0);
    }
  }
}

export class RingConsumer {
  readonly ctl: Int32Array;
  private readonly data: Buffer;
  private r = 0;

  /** onFlush runs when the producer asks for a flush and everything it published has been read. */
  constructor(
    readonly shared: RingShared,
    private readonly onFlush: () => void = () => {},
  ) {
    this.ctl = new Int32Array(shared.control);
    this.data = Buffer.from(shared.data);
  }

  /** Fill dest[off..off+len) from the ring, waiting for the producer; false once the ring has ended first. */
  readExact(dest: Uint8Array, off: number, len: number): boolean {
    const ctl = this.ctl;
    let got = 0;
    while (got < len) {
      const avail = (Atomics.load(ctl, CTL.written) - this.r) & POS_MASK;
      if (avail === 0) {
        this.release();
        if (!this.waitForData()) return false;
        continue;
      }
      const at = this.r & (RING_BYTES - 1);
      const n = Math.min(len - got, avail, RING_BYTES - at);
      if (n <= 16) {
        // a frame header: a loop is cheaper than a native copy call
        const data = this.data;
        const to = off + got;
        for (let k = 0; k < n; k++) dest[to + k] = data[at + k]!;
      } else this.data.copy(dest, off + got, at, at + n);
      got += n;
      this.r = (this.r + n) & POS_MASK;
    }
    return true;
  }

  /** Give consumed bytes back to the producer (and wake it if it waits for room). */
  release(): void {
    Atomics.store(this.ctl, CTL.read, this.r);
    if (Atomics.load(this.ctl, CTL.producerWaiting) !== 0) Atomics.notify(this.ctl, CTL.read);
  }

  /** false when the producer has ended and everything was read. Carries out flush requests meanwhile. */
  private waitForData(): boolean {
    const ctl = this.ctl;
    for (;;) {
      const w = Atomics.load(ctl, CTL.written);
      if (w !== this.r) return true;
      if (Atomics.load(ctl, CTL.ended) !== 0 && Atomics.load(ctl, CTL.written) === this.r) return false;
      const wanted = Atomics.load(ctl, CTL.flushWanted);
      if (wanted !== Atomics.load(ctl, CTL.flushDone)) {
        // the producer publishes before it asks, so an empty ring holds everything it wants written
        this.onFlush();
        Atomics.store(ctl, CTL.flushDone, wanted);
        Atomics.notify(ctl, CTL.flushDone);
        continue;
      }
      Atomics.store(ctl, CTL.workerWaiting, 1);
      if (
        Atomics.load(ctl, CTL.written) === this.r &&
        Atomics.load(ctl, CTL.ended) === 0 &&
        Atomics.load(ctl, CTL.flushWanted) === wanted
      ) {
        Atomics.wait(ctl, CTL.written, w, 1000);
      }
      Atomics.store(ctl, CTL.workerWaiting, 0);
    }
  }
}
