/**
 * The devices: open streams held by the load generator. Blotter's are JSON SSE streams read
 * through node:http with the minimal line parser of deliveries.ts (a fetch body costs far more
 * CPU per event); the yardstick's are socket.io-client websockets, as its users would hold them.
 */
import http from "node:http";
import { io as connect, type Socket } from "socket.io-client";
import { type Sink, socketReader, sseReader } from "./deliveries.ts";

/** A device: whom it belongs to and which of the user's devices it is. */
export interface Device {
  token: string;
  slot: number;
}

/** Open streams, and how to close them all. */
export interface Streams {
  count(): number;
  close(): void;
}

/** Opens one `GET /api/v1/stream` per device, `parallel` at a time; resolves when all answered. */
export async function openSseStreams(
  host: string,
  port: number,
  devices: Device[],
  sink: Sink,
  parallel = 200,
): Promise<Streams> {
  const open = new Set<http.ClientRequest>();
  const one = (d: Device) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get({
        host,
        port,
        path: "/api/v1/stream",
        agent: false,
        headers: { authorization: `Bearer ${d.token}`, accept: "text/event-stream" },
      }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`stream answered ${res.statusCode}`));
          res.resume();
          return;
        }
        open.add(req);
        res.setEncoding("utf8");
        res.on("data", sseReader(sink, d.slot));
        res.on("close", () => open.delete(req));
        resolve();
      });
      req.on("error", (err) => {
        if (!open.has(req)) reject(err);
        // After the close() below an error is expected; before, a dropped stream shows as lost.
        open.delete(req);
      });
    });
  await inBatches(devices, parallel, one);
  return {
    count: () => open.size,
    close: () => {
      for (const req of open) req.destroy();
      open.clear();
    },
  };
}

/** Opens one app socket (`GET /api/v1/ws`) per device, `parallel` at a time; resolves once all are ready. */
export async function openAppSockets(
  host: string,
  port: number,
  devices: Device[],
  sink: Sink,
  parallel = 200,
): Promise<Streams> {
  const open = new Set<WebSocket>();
  const one = (d: Device) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://${host}:${port}/api/v1/ws`);
      const read = socketReader(sink, d.slot);
      ws.onopen = () => ws.send(JSON.stringify({ op: "hello", token: d.token }));
      ws.onmessage = (e) => {
        const text = String(e.data);
        if (!open.has(ws) && text.startsWith('{"op":"ready"')) {
          open.add(ws);
          resolve();
        } else read(text);
      };
      ws.onclose = (e) => {
        if (!open.delete(ws)) reject(new Error(`socket closed ${e.code} before ready`));
      };
    });
  await inBatches(devices, parallel, one);
  return {
    count: () => open.size,
    close: () => {
      for (const ws of open) ws.close();
      open.clear();
    },
  };
}

/** Connects one socket.io client per device (websocket only), joined to its user's room. */
export async function openSocketIo(
  url: string,
  devices: Array<Device & { user: string }>,
  sink: Sink,
  parallel = 200,
): Promise<Streams> {
  const sockets: Socket[] = [];
  await inBatches(devices, parallel, (d) => {
    const socket = connect(url, {
      transports: ["websocket"],
      auth: { user: d.user },
      reconnection: false,
    });
    sockets.push(socket);
    socket.on("execution", (r: { exec_id: string; at: string }) => {
      sink.current?.record(d.slot, r.exec_id, Date.parse(r.at), Date.now(), true);
    });
    return new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(null));
      socket.once("connect_error", reject);
    });
  });
  return {
    count: () => sockets.filter((s) => s.connected).length,
    close: () => sockets.forEach((s) => s.disconnect()),
  };
}

/** Runs `one` for every device, `parallel` at a time (so a listen backlog is not flooded). */
async function inBatches<D>(devices: D[], parallel: number, one: (d: D) => Promise<unknown>) {
  for (let i = 0; i < devices.length; i += parallel) {
    await Promise.all(devices.slice(i, i + parallel).map(one));
  }
}
