// deno-lint-ignore-file no-window no-window-prefix -- browser code: window is the page here
// Blotter's page script: the connection indicator, relative times, the ticket's adaptive fields,
// toasts, polling while live updates are degraded, and Web Push. No inline script anywhere (the
// page runs under a strict CSP); htmx and its SSE extension do the swapping.
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

  // --- connection indicator --------------------------------------------------------------------
  const indicator = () => $("#connection");
  const LABELS = {
    live: "live",
    reconnecting: "reconnecting…",
    polling: "polling",
    offline: "offline",
  };
  let realtimeOk = true;
  let pollTimer = null;

  function setState(state) {
    const el = indicator();
    if (!el) return;
    if (!navigator.onLine) state = "offline";
    else if (state === "live" && !realtimeOk) state = "polling";
    el.dataset.state = state;
    el.textContent = LABELS[state];
    if (state === "polling") startPolling();
    else stopPolling();
  }

  document.addEventListener("htmx:sse:after:connection", () => setState("live"));
  document.addEventListener("htmx:sse:error", (e) => {
    // The session was revoked or expired: reconnecting cannot help.
    if (e.detail && e.detail.status === 401) {
      location.assign("/login");
      return;
    }
    setState("reconnecting");
  });
  document.addEventListener("htmx:sse:close", () => setState("reconnecting"));
  window.addEventListener("offline", () => setState("offline"));
  window.addEventListener("online", () => setState("reconnecting"));

  // Named stream events arrive as DOM events on the element that holds the connection.
  document.addEventListener("status", (e) => {
    try {
      realtimeOk = JSON.parse(e.detail.data).realtime === "ok";
    } catch {
      return;
    }
    setState("live");
  });
  document.addEventListener("reset", () => location.reload());

  // --- polling while the server's change feed is degraded ---------------------------------------
  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(poll, 3000);
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
      tick();
    } catch {
      // offline: the next poll tries again
    }
  }

  // --- relative times ("filled 2 s ago"), ticking from the server's timestamps ----------------
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} min ago`;
    const h = Math.round(m / 60);
    if (h < 48) return `${h} h ago`;
    return `${Math.round(h / 24)} days ago`;
  }
  function tick() {
    const now = Date.now();
    for (const t of $$("time[datetime]")) {
      const at = Date.parse(t.getAttribute("datetime"));
      if (Number.isNaN(at)) continue;
      const verb = t.dataset.verb;
      t.textContent = verb ? `${verb} ${ago(now - at)}` : ago(now - at);
      t.title = new Date(at).toLocaleString();
    }
  }
  setInterval(tick, 1000);

  // --- rows: one per order, even if an insertion and a replay cross -----------------------------
  function dedupeRows() {
    const seen = new Set();
    for (const row of $$("#orders-body tr[id^='order-']")) {
      if (seen.has(row.id)) row.remove();
      else seen.add(row.id);
    }
    const empty = $(".empty");
    if (empty && $("#orders-body tr[id^='order-']")) empty.remove();
  }

  // --- toasts -----------------------------------------------------------------------------------
  function ageToasts() {
    for (const t of $$("#toasts .toast:not([data-timer])")) {
      t.dataset.timer = "1";
      setTimeout(() => t.remove(), t.classList.contains("toast-rejected") ? 15000 : 8000);
    }
    // Keep the stack short on a burst of fills.
    const all = $$("#toasts .toast");
    for (const t of all.slice(0, Math.max(0, all.length - 5))) t.remove();
  }

  document.addEventListener("htmx:after:swap", () => {
    dedupeRows();
    ageToasts();
    tick();
  });
  document.addEventListener("htmx:sse:after:message", () => {
    dedupeRows();
    ageToasts();
    tick();
  });

  // --- the order ticket: fields follow the asset class and order type ---------------------------
  function adaptTicket() {
    const form = $("#order-ticket");
    if (!form) return;
    const cls = form.elements.asset_class.value;
    const type = form.elements.type.value;
    const byDollars = cls === "mutual_fund" || form.dataset.amount === "notional";
    const show = (sel, on) => {
      const label = $(sel, form);
      label.hidden = !on;
      const input = $("input", label);
      input.disabled = !on;
    };
    show(".field-qty", !byDollars || type !== "market");
    show(".field-notional", byDollars && type === "market");
    show(".field-limit", type === "limit" || type === "stop_limit");
    show(".field-stop", type === "stop" || type === "stop_limit");
  }
  document.addEventListener("change", (e) => {
    const form = $("#order-ticket");
    if (!form || !form.contains(e.target)) return;
    if (e.target.name === "symbol") {
      const opt = $$("#symbols option").find((o) => o.value === e.target.value.toUpperCase());
      if (opt) form.elements.asset_class.value = opt.dataset.assetClass;
    }
    if (e.target.name === "symbol" || e.target.name === "asset_class") {
      // Crypto trades around the clock: it has no trading day for a day order to end with.
      form.elements.time_in_force.value = form.elements.asset_class.value === "crypto"
        ? "gtc"
        : "day";
    }
    adaptTicket();
  });
  document.addEventListener("order-placed", () => {
    const form = $("#order-ticket");
    if (!form) return;
    for (const name of ["qty", "notional", "limit_price", "stop_price"]) {
      form.elements[name].value = "";
    }
  });

  // --- Web Push: background alerts for this device ----------------------------------------------
  async function setUpPush() {
    const button = $("#enable-push");
    if (!button || !("serviceWorker" in navigator) || !("PushManager" in window)) return;
    const reg = await navigator.serviceWorker.register("/sw.js");
    const existing = await reg.pushManager.getSubscription();
    if (existing) {
      await saveSubscription(existing);
      return;
    }
    button.hidden = false;
    button.addEventListener("click", async () => {
      if ((await Notification.requestPermission()) !== "granted") return;
      const { key } = await (await fetch("/api/v1/push/vapid-public-key")).json();
      const sub = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: urlBase64ToBytes(key),
      });
      await saveSubscription(sub);
      button.hidden = true;
    }, { once: true });
  }
  function saveSubscription(sub) {
    return fetch("/api/v1/push/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sub.toJSON()),
    });
  }
  function urlBase64ToBytes(s) {
    const raw = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - s.length % 4) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  document.addEventListener("DOMContentLoaded", () => {
    adaptTicket();
    tick();
    ageToasts();
    if (!navigator.onLine) setState("offline");
    setUpPush().catch(() => {});
  });
})();
