/** A worker thread of `carnot serve`: answers one large document off the server's thread (src/serve/offload.ts). */
import { answer, type Job } from "./answer.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<Job>) => {
  self.postMessage(answer(event.data));
};
