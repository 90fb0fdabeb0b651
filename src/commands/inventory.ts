import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "inventory", description: "Cloud key and certificate inventories → a CryptoBOM of assets" },
  subCommands: {
    aws: () => import("./inventory-aws.ts").then((m) => m.default),
  },
});
