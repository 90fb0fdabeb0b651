import { defineCommand } from "citty";
import { readKeyFile } from "../chain/keys.ts";
import { formatVerifyResult, verifyLog } from "../chain/verify.ts";
import { writeStdout } from "../io/output.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check a hash-chained JSONL log and its seal: exit 0 when intact, 1 naming the first bad line",
  },
  args: {
    file: {
      type: "positional",
      description: "The log (its seal is FILE.seal.json)",
      valueHint: "FILE",
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
    const result = await verifyLog(args.file, { key });
    writeStdout(`${formatVerifyResult(result)}\n`);
    return result.ok ? 0 : 1;
  },
});
