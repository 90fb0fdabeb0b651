import { defineCommand } from "citty";
import { CarnotError } from "../errors.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: { name: "policy", description: "(being built)" },
  args: { ...commonArgs },
  run() {
    throw new CarnotError("carnot policy: not available in this build", { exitCode: 2 });
  },
});
