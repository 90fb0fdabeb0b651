import { rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Where a consumer writes: stdout, or a file that appears only when complete (written
 * beside it under a temporary name and renamed), so an error never leaves half a file.
 */
export interface OutputSink {
  write(text: string): void;
  /** Flushes and, for a file, moves it into place. */
  commit(): Promise<void>;
  /** Drops a partly written file. */
  abort(): Promise<void>;
}

export function openOutputSink(path: string | undefined): OutputSink {
  if (!path || path === "-") {
    const out = Bun.stdout.writer();
    return {
      write: (text) => void out.write(text),
      commit: async () => void (await out.flush()),
      abort: async () => void (await out.flush()),
    };
  }
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  const writer = Bun.file(temporary).writer({ highWaterMark: 1 << 20 });
  return {
    write: (text) => void writer.write(text),
    commit: async () => {
      await writer.end();
      await rename(temporary, path);
    },
    abort: async () => {
      await writer.end();
      await unlink(temporary).catch(() => undefined);
    },
  };
}

/** Runs `produce` against a sink and commits it, or aborts it when `produce` throws. */
export async function writeThroughSink<T>(
  path: string | undefined,
  produce: (sink: OutputSink) => Promise<T>,
): Promise<T> {
  const sink = openOutputSink(path);
  try {
    const result = await produce(sink);
    await sink.commit();
    return result;
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
