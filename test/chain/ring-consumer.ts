/** Worker side of the ring test: reads numbered frames and checks every byte. */
import { parentPort, workerData } from "node:worker_threads";
import { RingConsumer, type RingShared } from "../../src/chain/ring.ts";

const ring = new RingConsumer((workerData as { ring: RingShared }).ring);
const header = Buffer.alloc(8);
let body = Buffer.alloc(1 << 16);
let frames = 0;
let firstBad: number | null = null;
while (ring.readExact(header, 0, 8)) {
  const len = header.readInt32LE(0);
  const seq = header.readInt32LE(4);
  if (len > body.length) body = Buffer.alloc(len);
  if (!ring.readExact(body, 0, len)) break;
  ring.release();
  let ok = seq === frames;
  for (let k = 0; ok && k < len; k++) ok = body[k] === ((seq * 7 + k) & 255);
  if (!ok && firstBad === null) firstBad = frames;
  frames++;
}
parentPort!.postMessage({ frames, firstBad });
