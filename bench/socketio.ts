/**
 * `deno task bench:socketio`: the Socket.IO yardstick alone, measured exactly as `deno task bench`
 * measures Blotter (same load generator, same ladder, same flags; see bench/run.ts): an in-memory
 * Socket.IO 4.8 server (bench/socketio_server.mjs) on Node, pinned to CPU 0, one room per user.
 */
import { main } from "./run.ts";

await main("socketio");
