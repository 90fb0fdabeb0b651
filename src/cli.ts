#!/usr/bin/env bun
// The executable's entry: everything else is in program.ts, which commands may import (the demo runs
// other commands) without waiting on this module's top-level await.
import { holdStopSignals } from "./trace/stop-signals.ts";

const argv = process.argv.slice(2);
// only here, where this process is carnot itself: a test or the demo calling runCli in-process is never replaced
if (argv.find((a) => !a.startsWith("-")) === "trace") {
  // first of all (the other modules load after it): a stop signal during start-up is kept, whatever the
  // parent ignored (src/trace/stop-signals.ts)
  holdStopSignals();
  const { restartWithEngineOptions } = await import("./trace/engine.ts");
  await restartWithEngineOptions();
}
const { runCli } = await import("./program.ts");
process.exitCode = await runCli(argv);
