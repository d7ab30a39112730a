/**
 * The live connections the client can hold: the app socket (`GET /api/v1/ws`) and the JSON stream
 * over a streaming `fetch` (`GET /api/v1/stream`; React Native and old browsers lack EventSource
 * headers, so the stream is parsed here). Both tell the same handlers; the client decides.
 */
import type { OrderEvent } from "./types.ts";

/** What a live connection tells the client. */
export interface LiveHandlers {
  /** The connection is up and live (the replay follows, in order). */
  ready(): void;
  /** The server's heartbeat interval: silence for three of them means the connection is dead. */
  heartbeat(ms: number): void;
  event(event: OrderEvent): void;
  /** Reload the list: the stream goes on live from `lastEventId`. */
  reset(lastEventId: string | null, reason: string): void;
  status(realtime: "ok" | "degraded"): void;
  /** Anything arrived (the watchdog's food). */
  alive(): void;
  /** It ended: an HTTP status (refused before streaming), a close code, or neither (dropped). */
  closed(why: { status?: number; code?: number; retryAfter?: number }): void;
}

/** An open live connection. */
export interface Live {
  close(): void;
  /** New credentials for the open connection; false when it cannot take them (reconnect). */
  refresh(token: string): boolean;
}

/** Where to connect and as whom. */
export interface LiveOptions {
  baseUrl: string;
  token: string | null;
  lastEventId: string | null;
}

/** The app socket. */
export function openSocket(
  o: LiveOptions,
  WS: typeof WebSocket,
  h: LiveHandlers,
): Live {
  const ws = new WS(`${o.baseUrl.replace(/^http/, "ws")}/api/v1/ws`);
  let done = false;
  const end = (why: { code?: number }) => {
    if (!done) (done = true, h.closed(why));
  };
  ws.onopen = () =>
    ws.send(JSON.stringify({
      op: "hello",
      ...(o.token ? { token: o.token } : {}),
      ...(o.lastEventId ? { last_event_id: o.lastEventId } : {}),
    }));
  ws.onmessage = (e) => {
    h.alive();
    const m = JSON.parse(String(e.data));
    if (m.op === "ready") {
      h.heartbeat(m.heartbeat_ms);
      h.ready();
    } else if (m.op === "event") h.event(m.event);
    else if (m.op === "reset") h.reset(m.last_event_id, "reset");
    else if (m.op === "status") h.status(m.realtime);
  };
  ws.onclose = (e) => end({ code: e.code });
  // The close event follows every failure; a listener must exist (Node's `ws` throws without one).
  ws.onerror = () => {};
  return {
    close() {
      done = true;
      ws.close();
    },
    refresh(token) {
      if (ws.readyState !== 1) return false;
      ws.send(JSON.stringify({ op: "auth", token }));
      return true;
    },
  };
}

/** The JSON stream over a streaming fetch. */
export function openStream(o: LiveOptions, fetchFn: typeof fetch, h: LiveHandlers): Live {
  const abort = new AbortController();
  let done = false;
  const end = (why: { status?: number; retryAfter?: number }) => {
    if (!done) (done = true, h.closed(why));
  };
  (async () => {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.lastEventId) headers["last-event-id"] = o.lastEventId;
    const res = await fetchFn(`${o.baseUrl}/api/v1/stream`, {
      headers,
      signal: abort.signal,
      credentials: "include",
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      return end({ status: res.status, retryAfter: Number(res.headers.get("retry-after")) || 0 });
    }
    h.ready();
    // TextDecoder, not TextDecoderStream: React Native's Hermes has the one, not the other.
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done: over, value: bytes } = await reader.read();
      if (over) break;
      const value = decoder.decode(bytes, { stream: true });
      h.alive();
      // Blotter ends lines with LF alone (a CR is left to the line's value and trimmed there).
      buffer += value;
      let i;
      while ((i = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, i), h);
        buffer = buffer.slice(i + 2);
      }
    }
    end({});
  })().catch(() => end({}));
  return {
    close() {
      done = true;
      abort.abort();
    },
    refresh: () => false,
  };
}

/** One SSE message of the JSON stream. */
function dispatch(block: string, h: LiveHandlers): void {
  let event = "message", id: string | null = null, data = "";
  for (const raw of block.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "") {
      const beat = /heartbeat_ms=(\d+)/.exec(value);
      if (beat) h.heartbeat(Number(beat[1]));
    } else if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data += (data ? "\n" : "") + value;
  }
  if (event === "order") h.event(JSON.parse(data));
  else if (event === "reset") h.reset(id || null, JSON.parse(data || "{}").reason ?? "reset");
  else if (event === "status") h.status(JSON.parse(data).realtime);
}
