/** Actions on sockets: made, connected, bound, listening, accepting. */
import type { EnrichedRecord } from "../enriched-reader.ts";
import { Category } from "./categories.ts";
import type { ActionCollapser } from "./collapse.ts";
import { fdArgument, fdUse, openFd } from "./fds.ts";
import { type ProcessState, socketOf, updateSocket } from "./state.ts";

/** socket(): a new fd that is a socket; a failed one is plumbing. */
export function socket(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  if (ok) {
    const use = openFd(c, state, record, line, record.retval!);
    use.socket = socketOf(record);
  } else c.runtime(state, record, line);
}

/** connect, bind, listen: what the socket on the fd became. */
export function socketCall(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
  category: Category,
): void {
  const fd = fdArgument(record);
  if (fd === null) {
    c.runtime(state, record, line);
    return;
  }
  const use = fdUse(state, record, line, fd);
  use.socket ??= socketOf(record);
  const socket = use.socket;
  if (record.net) updateSocket(socket, record);
  if (category === Category.Connect) {
    // a non-blocking connect reports EINPROGRESS and completes later
    if (ok || record.errno === "EINPROGRESS") {
      socket.connected = true;
      socket.connectError = null;
    } else socket.connectError = record.errno ?? "failed";
  } else if (category === Category.Listen && ok) socket.listening = true;
}

/** accept: the listener counts one more connection; the new fd is that connection. */
export function accept(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  const listener = fdArgument(record);
  if (listener !== null && state.fds.has(listener)) {
    const use = fdUse(state, record, line, listener);
    use.socket ??= socketOf(record);
    if (ok) use.socket.accepted++;
  }
  if (!ok) {
    if (listener === null || !state.fds.has(listener)) c.runtime(state, record, line);
    return;
  }
  const use = openFd(c, state, record, line, record.retval!);
  use.socket = socketOf(record);
  use.socket.connected = true;
  use.socket.acceptedFrom = use.socket.remote;
}
