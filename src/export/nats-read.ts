/**
 * Reading records back from a JetStream stream (`carnot bom nats://HOST:PORT/SUBJECT`): every message on the
 * subject, oldest first, up to the last one stored when reading starts, each as the JSON line it carries.
 * An ordered consumer of the client's own (nothing is created or left on the broker).
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { CarnotError } from "../errors.ts";
import type { InputFile } from "../io/input-files.ts";
import type { NatsTarget } from "./nats-url.ts";

const TIMEOUT_MS = 5_000;

/** Every record line on `target`'s subject, oldest first (the stream is found by its subject). */
export async function* readStreamLines(target: NatsTarget): AsyncGenerator<string> {
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await connect({
      servers: target.server,
      name: "carnot read",
      timeout: TIMEOUT_MS,
      reconnect: false,
    });
  } catch (err) {
    throw new CarnotError(`cannot reach ${target.text}: ${(err as Error).message}`);
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: TIMEOUT_MS });
    const stream = await jsm.streams.find(target.subject).catch(() => null);
    if (stream === null)
      throw new CarnotError(`${target.text}: no JetStream stream captures ${target.subject}`);
    // what is stored now is read; what arrives meanwhile is left for the next reading
    const last = await jsm.streams.getMessage(stream, { last_by_subj: target.subject }).catch(() => null);
    if (last === null) return;
    const consumer = await jetstream(nc, { timeout: TIMEOUT_MS }).consumers.get(stream, {
      filter_subjects: target.subject,
    });
    const messages = await consumer.consume();
    const decoder = new TextDecoder("utf-8", { fatal: true });
    for await (const m of messages) {
      let line: string;
      try {
        line = decoder.decode(m.data);
      } catch {
        throw new CarnotError(`${target.text}: message ${m.seq} is not UTF-8 text`);
      }
      yield line;
      if (m.seq >= last.seq) break;
    }
  } finally {
    await nc.close().catch(() => {});
  }
}

/**
 * The stream as it is stored now, written line by line to `path` (a new file in a directory only this process
 * writes to), as an input named by the stream's address: a reader of runtime files reads it like any other.
 */
export async function stageStream(target: NatsTarget, path: string): Promise<InputFile> {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    let batch: string[] = [];
    const flush = () => {
      if (batch.length > 0) writeSync(fd, `${batch.join("\n")}\n`);
      batch = [];
    };
    for await (const line of readStreamLines(target)) {
      batch.push(line);
      if (batch.length === 1024) flush();
    }
    flush();
    const st = fstatSync(fd);
    return { path: target.text, pattern: null, dev: st.dev, ino: st.ino, openPath: path };
  } finally {
    closeSync(fd);
  }
}
