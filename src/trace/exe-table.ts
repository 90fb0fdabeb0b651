/**
 * Each process's executable, as the kernel announced it (CARNOT_EV_EXE, taken at the process's first event, by
 * either source: a short-lived client is gone by the time its handshake is read). Bounded: the oldest process
 * goes first, and one seen again moves to the back; a process announced before it was dropped here is unknown
 * (null), never guessed.
 */
import type { CarnotEvent } from "./libssl/events.ts";

/** Above the kernel's table of announced processes (16,384): what it still holds, this table holds too. */
const EXE_TABLE_MAX = 32_768;

export class ExeTable {
  private readonly paths = new Map<number, string | null>();

  learn(ev: CarnotEvent): void {
    this.paths.delete(ev.pid);
    if (this.paths.size >= EXE_TABLE_MAX) {
      const oldest = this.paths.keys().next().value;
      if (oldest !== undefined) this.paths.delete(oldest);
    }
    // an error (deleted, too deep) is an unknown executable: null, never a guess
    this.paths.set(ev.pid, ev.ret === 0 && ev.text !== null && ev.text !== "" ? ev.text : null);
  }

  get(pid: number): string | null {
    const exe = this.paths.get(pid);
    if (exe === undefined) return null;
    this.paths.delete(pid);
    this.paths.set(pid, exe);
    return exe;
  }
}
