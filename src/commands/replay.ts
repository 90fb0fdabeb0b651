import { fstatSync } from "node:fs";
import { stat } from "node:fs/promises";
import { defineCommand } from "citty";
import { ChainedWriter, readKeyFile } from "../chain/writer.ts";
import { CarnotError, systemReason } from "../errors.ts";
import { fileChunks, formatCounts, replayStream, UnparsedLineError } from "../replay/run.ts";
import { commonArgs, outputArgs } from "./shared.ts";

/** Inputs at least this big get a progress bar (when stderr is a terminal). */
const PROGRESS_MIN_BYTES = 32 * 1024 * 1024;
/** Inputs at least this big make a large output: the writer moves hashing to its worker sooner. */
const LARGE_INPUT_BYTES = 16 * 1024 * 1024;

function progressBar(total: number): (bytes: number, lines: number) => void {
  let last = 0;
  return (bytes, lines) => {
    const now = performance.now();
    if (now - last < 200 && bytes < total) return;
    last = now;
    const frac = Math.min(1, bytes / total);
    const width = 30;
    const full = Math.round(frac * width);
    const bar = `${"#".repeat(full)}${"-".repeat(width - full)}`;
    process.stderr.write(`\rreplay [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  ${lines} lines`);
  };
}

export default defineCommand({
  meta: {
    name: "replay",
    description: "Turn strace output into enriched, hash-chained records (EnhancedEvent JSONL)",
  },
  args: {
    file: {
      type: "positional",
      description: "strace output (written with -o or from stderr); - reads stdin",
      valueHint: "FILE|-",
      required: true,
    },
    ...outputArgs,
    strict: {
      type: "boolean",
      description: "Any line that is not strace output is an error (exit 2)",
      default: false,
    },
    ...commonArgs,
  },
  async run({ args }) {
    const input = args.file;
    let size = 0;
    // a pipe or terminal may be fed as things happen: records are flushed whenever it pauses
    let live = input === "-" && !fstatSync(0).isFile();
    let regular = false;
    if (input !== "-") {
      try {
        const st = await stat(input);
        if (st.isDirectory()) throw new CarnotError(`cannot read ${input}: is a directory`, { exitCode: 2 });
        size = st.size;
        regular = st.isFile();
        live = !regular;
      } catch (err) {
        if (err instanceof CarnotError) throw err;
        throw new CarnotError(`cannot read ${input}: ${systemReason(err)}`, { exitCode: 2 });
      }
    }
    const key = args["key-file"] ? await readKeyFile(args["key-file"]) : undefined;
    // a regular file is read in small synchronous chunks (cache-friendly); pipes and stdin as a stream
    const source =
      input === "-" ? Bun.stdin.stream() : regular ? fileChunks(input) : Bun.file(input).stream();
    const writer = await ChainedWriter.open(args.output ?? null, {
      key,
      largeOutput: size >= LARGE_INPUT_BYTES,
      followSymlinks: args["follow-symlinks"],
    });
    const showProgress = process.stderr.isTTY === true && size >= PROGRESS_MIN_BYTES;
    try {
      const counts = await replayStream(source, writer, {
        strict: args.strict,
        live,
        onProgress: showProgress ? progressBar(size) : undefined,
      });
      await writer.close();
      if (showProgress) process.stderr.write("\n");
      process.stderr.write(`${formatCounts(counts)}\n`);
      return 0;
    } catch (err) {
      if (showProgress) process.stderr.write("\n");
      if (err instanceof UnparsedLineError) {
        await writer.abort(err.message);
        process.stderr.write(`${formatCounts(err.counts)}\n`);
        throw new CarnotError(err.message, { exitCode: 2 });
      }
      await writer.abort(err instanceof Error ? err.message : String(err));
      throw err;
    }
  },
});
