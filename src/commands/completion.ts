import { defineCommand } from "citty";
import { completionScript, SHELLS, type Shell } from "../completion.ts";
import { CarnotError } from "../errors.ts";
import { writeStdout } from "../io/output.ts";
import { commonArgs } from "./shared.ts";

export default defineCommand({
  meta: {
    name: "completion",
    description: "Shell completion for bash, zsh or fish, from the same definitions as --help",
  },
  args: {
    shell: { type: "positional", required: true, description: "bash, zsh or fish", valueHint: "SHELL" },
    ...commonArgs,
  },
  async run({ args }) {
    const shell = args.shell as Shell;
    if (!SHELLS.includes(shell))
      throw new CarnotError(`no completion for ${args.shell}: bash, zsh or fish`, { exitCode: 2 });
    // the command tree is program.ts's: imported here, when it is complete
    const { commandTree } = await import("../program.ts");
    writeStdout(completionScript(shell, await commandTree()));
    return 0;
  },
});
