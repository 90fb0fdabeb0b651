import { expect, test } from "bun:test";
import { Worker } from "node:worker_threads";
import { createRing, RING_BYTES, RingProducer } from "../../src/chain/ring.ts";

test("the ring hands a worker every frame, in order, byte for byte — across wrap-arounds and frames larger than the ring", async () => {
  const ring = createRing();
  const worker = new Worker(new URL("./ring-consumer.ts", import.meta.url), { workerData: { ring } });
  const report = new Promise<{ frames: number; firstBad: number | null }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  const producer = new RingProducer(ring);
  let stage = Buffer.alloc(512 * 1024);
  let pos = 0;
  let seed = 1;
  const next = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const send = () => {
    producer.write(stage, pos);
    producer.publish();
    pos = 0;
  };
  const FRAMES = 300_000;
  let total = 0;
  for (let seq = 0; seq < FRAMES; seq++) {
    // mostly record-sized frames, a few much larger than the ring itself
    const len = seq % 50_000 === 49_999 ? RING_BYTES + 12345 : Math.floor(next() * 1500);
    if (pos + 8 + len > stage.length) {
      send();
      if (8 + len > stage.length) stage = Buffer.alloc(8 + len);
    }
    stage.writeInt32LE(len, pos);
    stage.writeInt32LE(seq, pos + 4);
    for (let k = 0; k < len; k++) stage[pos + 8 + k] = (seq * 7 + k) & 255;
    pos += 8 + len;
    total += 8 + len;
    // publish at uneven sizes, so frames straddle publications and the ring's end
    if (pos >= 100_000 + Math.floor(next() * 200_000)) send();
  }
  send();
  producer.end();
  const r = await report;
  await worker.terminate();
  expect(total).toBeGreaterThan(8 * RING_BYTES);
  expect(r).toEqual({ frames: FRAMES, firstBad: null });
});
