/**
 * Chrome DevTools' own trace engine (the Performance panel's "Load profile"), run inside headless Chromium
 * through the DevTools protocol: it reads a Trace Event JSON document the way a person's browser does.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHROMIUM } from "./chromium.ts";

/** One thread as DevTools sees it: its complete events, and how many of them made it into its call tree. */
export interface DevToolsThread {
  pid: number;
  tid: number;
  name: string | null;
  /** complete slices ("X") DevTools took for the thread */
  entries: number;
  /** nodes of the thread's tree: a slice that overlaps a sibling without nesting is left out */
  nodes: number;
}

export interface DevToolsTrace {
  threads: DevToolsThread[];
  /** pid → name from the process_name metadata */
  processNames: Record<string, string>;
}

/**
 * Runs in the DevTools page: parse the document with the handler that builds the threads' call trees (and
 * the handlers it needs; all of them take ten times longer), then walk each thread's tree.
 */
const PARSE_IN_PAGE = `async (text) => {
  const trace = await import("devtools://devtools/bundled/models/trace/trace.js");
  const all = trace.Handlers.ModelHandlers;
  const handlers = {};
  const add = (name) => {
    if (handlers[name]) return;
    handlers[name] = all[name];
    for (const dep of all[name].deps ? all[name].deps() : []) add(dep);
  };
  add("Renderer");
  const model = trace.TraceModel.Model.createWithSubsetOfHandlers(handlers);
  await model.parse(JSON.parse(text).traceEvents, { metadata: {}, isFreshRecording: false });
  const parsed = model.parsedTrace ? model.parsedTrace(0) : model.traceParsedData(0);
  const data = parsed.data ?? parsed;
  const threads = [];
  for (const [pid, process] of data.Renderer.processes) {
    for (const [tid, thread] of process.threads) {
      let nodes = 0;
      const count = (node) => { nodes++; for (const child of node.children) count(child); };
      for (const root of thread.tree?.roots ?? []) count(root);
      threads.push({ pid, tid, name: thread.name ?? null, entries: thread.entries.length, nodes });
    }
  }
  const processNames = {};
  for (const [pid, event] of data.Meta.processNames) processNames[pid] = event.args.name;
  return { threads, processNames };
}`;

interface CdpReply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** Loads Trace Event documents into DevTools' trace engine, one browser for all; their threads and process names. */
export async function loadInDevTools(documents: string[]): Promise<DevToolsTrace[]> {
  if (!CHROMIUM) throw new Error("chromium not installed");
  const profile = mkdtempSync(join(tmpdir(), "carnot-devtools-"));
  const browser = Bun.spawn(
    [
      CHROMIUM,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
      "about:blank",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  try {
    const endpoint = await devToolsEndpoint(browser.stderr);
    const socket = new WebSocket(endpoint);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot connect to ${endpoint}`));
    });
    const waiting = new Map<number, (reply: CdpReply) => void>();
    socket.onmessage = (message) => {
      const reply = JSON.parse(String(message.data)) as CdpReply;
      if (reply.id !== undefined) waiting.get(reply.id)?.(reply);
    };
    let lastId = 0;
    const send = (method: string, params: object, sessionId?: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = ++lastId;
        waiting.set(id, (reply) => {
          waiting.delete(id);
          if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
          else resolve(reply.result ?? {});
        });
        socket.send(JSON.stringify({ id, method, params, sessionId }));
      });
    const target = await send("Target.createTarget", {
      url: "devtools://devtools/bundled/devtools_app.html",
    });
    const attached = await send("Target.attachToTarget", { targetId: target.targetId, flatten: true });
    const session = attached.sessionId as string;
    const evaluate = async (expression: string) =>
      (await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, session)) as {
        result: { value?: unknown };
        exceptionDetails?: { exception?: { description?: string } };
      };
    // the new tab starts on about:blank: wait for the DevTools page
    const loaded = 'location.protocol === "devtools:"';
    for (let tries = 0; (await evaluate(loaded)).result.value !== true; tries++) {
      if (tries > 600) throw new Error("the DevTools page did not load");
      await Bun.sleep(100);
    }
    const traces: DevToolsTrace[] = [];
    for (const document of documents) {
      const evaluated = await evaluate(`(${PARSE_IN_PAGE})(${JSON.stringify(document)})`);
      if (evaluated.exceptionDetails)
        throw new Error(
          `DevTools could not read the trace: ${evaluated.exceptionDetails.exception?.description}`,
        );
      traces.push(evaluated.result.value as DevToolsTrace);
    }
    socket.close();
    return traces;
  } finally {
    browser.kill();
    await browser.exited;
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The browser's DevTools websocket, from the line it prints when it listens; stderr is drained after. */
function devToolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new TextDecoder();
    let text = "";
    let found = false;
    const timer = setTimeout(
      () => reject(new Error("chromium did not open its DevTools port in 60 s")),
      60_000,
    );
    (async () => {
      for await (const chunk of stderr) {
        if (found) continue;
        text += decoder.decode(chunk, { stream: true });
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
        if (match) {
          found = true;
          clearTimeout(timer);
          resolve(match[1]!);
        }
      }
      clearTimeout(timer);
      if (!found) reject(new Error(`chromium exited before opening its DevTools port: ${text.slice(-500)}`));
    })();
  });
}
