import { defineCommand } from "citty";
import { CarnotError } from "../errors.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: { name: "merge", description: "(being built)" },
  args: { ...commonArgs },
  run() {
    throw new CarnotError("carnot merge: not available in this build", { exitCode: 2 });
  },
});
