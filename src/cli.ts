#!/usr/bin/env bun
// The executable's entry: everything else is in program.ts, which commands may import (the demo runs
// other commands) without waiting on this module's top-level await.
import { holdStopSignals } from "./trace/stop-signals.ts";

const argv = process.argv.slice(2);
const tracing = argv.find((a) => !a.startsWith("-")) === "trace";
// first of all (the other modules load after it): a stop signal during start-up is kept, whatever the parent
// ignored (src/trace/stop-signals.ts)
if (tracing) holdStopSignals();
const { handleStrayErrors, refuseCommandLine, runCli } = await import("./program.ts");
handleStrayErrors(argv);
// a command line carnot does not understand does nothing: not even trace's re-execution (it writes a cache file)
const refused = await refuseCommandLine(argv);
if (refused !== null) process.exitCode = refused;
else {
  // only here, where this process is carnot itself: a test or the demo calling runCli in-process is never replaced
  if (tracing) {
    const { restartWithEngineOptions } = await import("./trace/engine.ts");
    await restartWithEngineOptions();
  }
  process.exitCode = await runCli(argv);
}
