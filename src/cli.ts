#!/usr/bin/env bun
// The executable's entry: everything else is in program.ts, which commands may import (the demo runs
// other commands) without waiting on this module's top-level await.
import { handleStrayErrors, refuseCommandLine, runCli } from "./program.ts";
import { restartWithEngineOptions } from "./trace/engine.ts";

const argv = process.argv.slice(2);
handleStrayErrors(argv);
// a command line carnot does not understand does nothing: not even trace's re-execution (it writes a cache file)
const refused = await refuseCommandLine(argv);
if (refused !== null) process.exitCode = refused;
else {
  // only here, where this process is carnot itself: a test or the demo calling runCli in-process is never replaced
  if (argv.find((a) => !a.startsWith("-")) === "trace") restartWithEngineOptions();
  process.exitCode = await runCli(argv);
}
