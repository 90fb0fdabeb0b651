import { defineCommand } from "citty";
import { CarnotError } from "../errors.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: { name: "trace", description: "(being built)" },
  args: { ...commonArgs },
  run() {
    throw new CarnotError("carnot trace: not available in this build", { exitCode: 2 });
  },
});
