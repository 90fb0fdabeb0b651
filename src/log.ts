import { createConsola } from "consola";

/** The one logger: always stderr, so stdout stays clean for JSONL. NO_COLOR is honoured by consola. */
export const log = createConsola({
  level: process.argv.includes("--verbose") ? 4 : 3,
  stdout: process.stderr,
  stderr: process.stderr,
  formatOptions: { date: false, colors: !process.env.NO_COLOR && process.stderr.isTTY === true },
});

export const verbose = (): boolean => log.level >= 4;
