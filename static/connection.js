// deno-lint-ignore-file no-window no-window-prefix -- browser code: window is the page here
// The page's connection to its stream, told to the trader: the indicator (#connection) and the
// banner, retries of a stream refused at its first connect, and polling while live updates are
// delayed. Loaded before htmx (deferred scripts run in order), so its listeners are in place
// before the stream opens. Rows it replaces are announced with a "rows-replaced" event, which
// app.js answers (one row per order, relative times).
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  const rowsReplaced = () => document.dispatchEvent(new Event("rows-replaced"));

  // --- connection indicator and banner --------------------------------------------------------
  // States: live (streaming), reconnecting (the stream dropped; hx-sse retries with jittered
  // backoff, at most 7 s apart), polling (the server's change feed is degraded, or the stream
  // keeps failing, e.g. behind a buffering proxy: rows are re-fetched every 5 s meanwhile),
  // offline (the browser says so). The banner says the same in words, with "Retry now".
  const indicator = () => $("#connection");
  const LABELS = {
    live: "live",
    reconnecting: "reconnecting…",
    polling: "polling",
    offline: "offline",
  };
  const BANNERS = {
    live: "",
    reconnecting: "Reconnecting…",
    polling: "Live updates delayed — refreshing every 5 s",
    offline: "You are offline",
  };
  /** Connection failures in a row after which the page stops waiting and polls. */
  const FAILURES_BEFORE_POLLING = 3;
  const POLL_MS = 5000;
  let realtimeOk = true;
  let failures = 0;
  let streaming = false;
  let pollTimer = null;

  function setState(state) {
    const el = indicator();
    if (!el) return;
    if (!navigator.onLine) state = "offline";
    else if (state === "live" && !realtimeOk) state = "polling";
    else if (state === "reconnecting" && failures >= FAILURES_BEFORE_POLLING) state = "polling";
    el.dataset.state = state;
    el.textContent = LABELS[state];
    const banner = $("#conn-banner");
    if (banner) {
      // When the server said its feed is degraded, its own banner (#realtime-banner) says so.
      banner.hidden = state === "live" || (state === "polling" && !realtimeOk);
      banner.dataset.state = state;
      $(".msg", banner).textContent = BANNERS[state];
      $("#retry-now", banner).hidden = state === "live";
    }
    if (state === "polling") startPolling();
    else stopPolling();
  }

  document.addEventListener("htmx:sse:after:connection", () => {
    failures = 0;
    firstConnectAttempt = 0;
    streaming = true;
    setState("live");
  });
  document.addEventListener("htmx:sse:error", (e) => {
    // The session was revoked or expired: reconnecting cannot help.
    if (e.detail && e.detail.status === 401) {
      location.assign("/login");
      return;
    }
    streaming = false;
    failures++;
    setState("reconnecting");
  });
  document.addEventListener("htmx:sse:close", () => {
    streaming = false;
    setState("reconnecting");
  });
  // A stream refused at its first connect (503 at the server's stream cap, a restart under way,
  // the network): hx-sse takes over only a response that is an event stream, so nothing would
  // try again. Try again here with full jitter, never more than 10 s apart (CONTRACT: live again
  // within about 15 s of the server's return), and poll meanwhile after a few failures.
  const FIRST_CONNECT_MAX_MS = 10_000;
  let firstConnectAttempt = 0;
  let firstConnectTimer = null;
  function firstConnectFailed(e) {
    const el = e.target;
    if (!el || !el.matches || !el.matches("[hx-sse\\:connect]") || (el._htmx && el._htmx.sse)) {
      return;
    }
    const status = e.detail && e.detail.ctx && e.detail.ctx.response &&
      e.detail.ctx.response.status;
    if (status === 401) {
      location.assign("/login");
      return;
    }
    streaming = false;
    failures++;
    setState("reconnecting");
    const cap = Math.min(FIRST_CONNECT_MAX_MS, 500 * 2 ** firstConnectAttempt++);
    clearTimeout(firstConnectTimer);
    firstConnectTimer = setTimeout(() => {
      if (el.isConnected && !(el._htmx && el._htmx.sse)) {
        htmx.ajax("GET", el.getAttribute("hx-sse:connect"), { source: el });
      }
    }, Math.random() * cap);
  }
  document.addEventListener("htmx:response:error", firstConnectFailed);
  document.addEventListener("htmx:error", firstConnectFailed);

  window.addEventListener("offline", () => setState("offline"));
  window.addEventListener("online", () => {
    retryNow();
    setState(streaming ? "live" : "reconnecting");
  });

  /** Skips the reconnect wait (or, with no stream set up at all, loads the page afresh). */
  function retryNow() {
    const live = $("[hx-sse\\:connect]");
    const sse = live && live._htmx && live._htmx.sse;
    if (sse && sse.delayCanceller) sse.delayCanceller();
    else if (!sse) location.reload();
    if (pollTimer) poll();
  }
  document.addEventListener("click", (e) => {
    if (e.target && e.target.id === "retry-now") retryNow();
  });

  // Named stream events arrive as DOM events on the element that holds the connection.
  document.addEventListener("status", (e) => {
    try {
      realtimeOk = JSON.parse(e.detail.data).realtime === "ok";
    } catch {
      return;
    }
    setState("live");
  });
  // The server no longer has the events this page would need to catch up (or this page is ahead
  // of it): the stream carries on from the server's current seq, so reload the list from scratch.
  document.addEventListener("reset", () => reloadList());
  async function reloadList() {
    const body = $("#orders-body");
    const table = $("#orders");
    if (!body || !table) {
      location.reload();
      return;
    }
    try {
      const res = await fetch(
        `/orders/rows?tab=${encodeURIComponent(table.dataset.tab || "all")}`,
        {
          headers: { "HX-Request": "true" },
        },
      );
      if (!res.ok) throw new Error(String(res.status));
      body.innerHTML = await res.text();
      if (window.htmx) htmx.process(body);
      rowsReplaced();
    } catch {
      location.reload();
    }
  }

  // --- polling while live updates are degraded -------------------------------------------------
  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(poll, POLL_MS);
    poll();
  }
  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }
  async function poll() {
    const table = $("#orders");
    const tab = (table && table.dataset.tab) || "all";
    try {
      const res = await fetch(`/orders/rows?tab=${encodeURIComponent(tab)}&oob=1`, {
        headers: { "HX-Request": "true" },
      });
      if (res.status === 401) {
        location.assign("/login");
        return;
      }
      if (!res.ok) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = `<table><tbody>${await res.text()}</tbody></table>`;
      const body = $("#orders-body");
      for (const row of $$("tr[id^='order-']", tpl.content).reverse()) {
        row.removeAttribute("hx-swap-oob");
        const existing = document.getElementById(row.id);
        if (existing) existing.replaceWith(row);
        else if (body) body.prepend(row);
        if (window.htmx) htmx.process(row);
      }
      rowsReplaced();
    } catch {
      // offline: the next poll tries again
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!navigator.onLine) setState("offline");
    // Pages without a stream (devices, login) have nothing to indicate.
    if (!$("[hx-sse\\:connect]") && indicator()) indicator().hidden = true;
  });
})();
