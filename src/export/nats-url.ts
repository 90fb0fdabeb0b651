/**
 * `nats://HOST[:PORT]/SUBJECT[?stream=NAME]`: where `carnot trace --export` publishes records and where
 * `carnot bom` reads them back. Parsed strictly: one clear line for anything else.
 */
import { CarnotError } from "../errors.ts";

export interface NatsTarget {
  /** `host:port` for the client (IPv6 in brackets) */
  server: string;
  subject: string;
  /** the JetStream stream that captures the subject: found by the subject, created under this name if none */
  stream: string;
  /** as given, for messages */
  text: string;
}

export const DEFAULT_NATS_PORT = 4222;
/** A subject of plain tokens: no wildcards (`*`, `>`), no empty token, no space. */
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const STREAM = /^[A-Za-z0-9_-]{1,64}$/;

/** True when `text` is meant as a NATS address (the bom command's inputs). */
export function isNatsUrl(text: string): boolean {
  return text.startsWith("nats://");
}

/** The stream name used when none is given and no stream captures the subject yet. */
export function defaultStreamName(subject: string): string {
  return `carnot_${subject.replace(/[^A-Za-z0-9_-]/g, "_")}`.slice(0, 64);
}

/** Parse `nats://HOST[:PORT]/SUBJECT[?stream=NAME]`; a usage error (exit 2) naming `flag` otherwise. */
export function parseNatsUrl(text: string, flag: string): NatsTarget {
  const bad = (why: string) =>
    new CarnotError(`invalid ${flag} "${text}": ${why} (expected nats://HOST:PORT/SUBJECT)`, { exitCode: 2 });
  if (!isNatsUrl(text)) throw bad("not a nats:// address");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad("not a URL");
  }
  if (url.username !== "" || url.password !== "") throw bad("credentials in the address are not taken");
  if (url.hostname === "") throw bad("no host");
  if (url.hash !== "") throw bad("a fragment has no meaning here");
  const port = url.port === "" ? DEFAULT_NATS_PORT : Number(url.port);
  if (!(port >= 1 && port <= 65535)) throw bad("port out of range");
  const subject = decodeURIComponent(url.pathname.slice(1));
  if (!SUBJECT.test(subject))
    throw bad("the subject must be dot-separated tokens of letters, digits, _ and -");
  const params = [...url.searchParams.keys()];
  const unknown = params.find((k) => k !== "stream");
  if (unknown !== undefined) throw bad(`unknown parameter ${unknown}`);
  const stream = url.searchParams.get("stream") ?? defaultStreamName(subject);
  if (!STREAM.test(stream)) throw bad("a stream name is 1 to 64 letters, digits, _ or -");
  return { server: `${url.hostname}:${port}`, subject, stream, text };
}
