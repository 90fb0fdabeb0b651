/**
 * A local account the test creates (useradd) and removes after (userdel): the "other user" of the tests on
 * files carnot must not trust. Needs root; the reason comes back when it cannot be made.
 */
import { randomBytes } from "node:crypto";

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** userdel (its group goes with it); never throws */
  remove(): void;
}

export function createTestUser(): TestUser | string {
  if (process.getuid?.() !== 0) return "needs root (useradd)";
  if (Bun.which("useradd") === null) return "useradd not found";
  const name = `carnot-t${randomBytes(4).toString("hex")}`;
  const add = Bun.spawnSync(
    ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
    { stderr: "pipe" },
  );
  if (add.exitCode !== 0) return `useradd failed: ${add.stderr.toString().trim()}`;
  const id = (flag: string) => Number(Bun.spawnSync(["id", flag, name]).stdout.toString().trim());
  return {
    name,
    uid: id("-u"),
    gid: id("-g"),
    remove: () => {
      Bun.spawnSync(["userdel", name], { stderr: "ignore" });
    },
  };
}
