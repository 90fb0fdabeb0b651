/** `nats://HOST[:PORT]/SUBJECT[?stream=NAME]`, parsed strictly: anything else is one line naming the flag, exit 2. */
import { describe, expect, test } from "bun:test";
import { CarnotError } from "../../src/errors.ts";
import { parseNatsUrl } from "../../src/export/nats-url.ts";

describe("parseNatsUrl", () => {
  test.each([
    ["nats://127.0.0.1:4222/carnot.runtime", "127.0.0.1:4222", "carnot.runtime", "carnot_carnot_runtime"],
    [
      "nats://broker/carnot.runtime.web-1",
      "broker:4222",
      "carnot.runtime.web-1",
      "carnot_carnot_runtime_web-1",
    ],
    ["nats://[::1]:4223/a?stream=FLEET", "[::1]:4223", "a", "FLEET"],
  ])("%s", (text, server, subject, stream) => {
    expect(parseNatsUrl(text, "--export")).toEqual({ server, subject, stream, text });
  });

  test.each([
    ["http://127.0.0.1:4222/a", "not a nats:// address"],
    ["nats://127.0.0.1:4222/", "the subject must be dot-separated tokens of letters, digits, _ and -"],
    ["nats://127.0.0.1:4222/a.*", "the subject must be dot-separated tokens of letters, digits, _ and -"],
    ["nats://127.0.0.1:4222/a.>", "the subject must be dot-separated tokens of letters, digits, _ and -"],
    ["nats://127.0.0.1:4222/a..b", "the subject must be dot-separated tokens of letters, digits, _ and -"],
    ["nats://127.0.0.1:4222/a b", "the subject must be dot-separated tokens of letters, digits, _ and -"],
    ["nats://127.0.0.1:99999/a", "not a URL"],
    ["nats://user:secret@127.0.0.1:4222/a", "credentials in the address are not taken"],
    ["nats://127.0.0.1:4222/a?stream=a.b", "a stream name is 1 to 64 letters, digits, _ or -"],
    ["nats://127.0.0.1:4222/a?retry=1", "unknown parameter retry"],
    ["nats://127.0.0.1:4222/a#x", "a fragment has no meaning here"],
  ])("%s is refused: %s", (text, why) => {
    let err: unknown;
    try {
      parseNatsUrl(text, "--export");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CarnotError);
    expect((err as CarnotError).exitCode).toBe(2);
    expect((err as Error).message).toBe(
      `invalid --export "${text}": ${why} (expected nats://HOST:PORT/SUBJECT)`,
    );
  });
});
