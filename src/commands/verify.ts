import { defineCommand } from "citty";
import { readKeyFile } from "../chain/keys.ts";
import { formatSequenceResult, formatVerifyResult, verifyLog, verifySequence } from "../chain/verify.ts";
import { writeStdout } from "../io/output.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check a hash-chained JSONL log and its seal (or a rotated sequence of them, in order): exit 0 when intact, 1 naming the first bad line or file",
  },
  args: {
    file: {
      type: "positional",
      description:
        "The log (its seal is FILE.seal.json); several: the files of a rotated sequence, oldest first",
      valueHint: "FILE…",
      required: true,
    },
    "key-file": {
      type: "string",
      description:
        "Secret key file the log was written with (--key-file of replay/trace); a keyed log needs it",
      valueHint: "FILE",
    },
    ...commonArgs,
  },
  async run({ args }) {
    const keyFile = args["key-file"];
    const key = keyFile ? await readKeyFile(keyFile) : undefined;
    const files = args._.length > 0 ? args._ : [args.file];
    if (files.length > 1) {
      const sequence = await verifySequence(files, { key });
      writeStdout(`${formatSequenceResult(sequence)}\n`);
      return sequence.ok ? 0 : 1;
    }
    const result = await verifyLog(args.file, { key });
    writeStdout(`${formatVerifyResult(result)}\n`);
    return result.ok ? 0 : 1;
  },
});
