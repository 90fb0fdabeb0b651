#!/usr/bin/env bun
// The executable's entry: everything else is in program.ts, which commands may import (the demo runs
// other commands) without waiting on this module's top-level await.
import { runCli } from "./program.ts";

process.exitCode = await runCli(process.argv.slice(2));
