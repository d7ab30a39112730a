// Blotter's page script: relative times, one row per order, the ticket's adaptive fields and
// toasts. No inline script anywhere (the page runs under a strict CSP); htmx and its SSE
// extension do the swapping. The connection indicator, retries and polling live in
// connection.js, the phone's menu and ticket sheet in phone.js, the background-alerts control in
// push.js.
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

  // --- relative times ("filled 2 s ago"), ticking from the server's timestamps ----------------
  // No-break spaces inside the amount ("2 s ago"): a narrow cell may wrap after the verb
  // ("filled" / "2 s ago"), never inside the value.
  const NBSP = "\u00a0";
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}${NBSP}s${NBSP}ago`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m}${NBSP}min${NBSP}ago`;
    const h = Math.round(m / 60);
    if (h < 48) return `${h}${NBSP}h${NBSP}ago`;
    return `${Math.round(h / 24)}${NBSP}days${NBSP}ago`;
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
  // Each toast can be dismissed and goes by itself after a few seconds (a rejection stays longer:
  // its reason matters); the live region has read it out as it arrived.
  const TOAST_MS = 6000;
  const REJECTED_TOAST_MS = 12000;
  function ageToasts() {
    for (const t of $$("#toasts .toast:not([data-timer])")) {
      t.dataset.timer = "1";
      const close = document.createElement("button");
      close.type = "button";
      close.className = "toast-close";
      close.setAttribute("aria-label", "Dismiss");
      close.textContent = "×";
      t.append(close);
      setTimeout(
        () => t.remove(),
        t.classList.contains("toast-rejected") ? REJECTED_TOAST_MS : TOAST_MS,
      );
    }
    // Keep the stack short on a burst of fills.
    const all = $$("#toasts .toast");
    for (const t of all.slice(0, Math.max(0, all.length - 5))) t.remove();
  }
  document.addEventListener("click", (e) => {
    const close = e.target && e.target.closest && e.target.closest(".toast-close");
    if (close) close.closest(".toast").remove();
  });

  // --- the order page: its status line follows the order's row --------------------------------
  function syncOrderStatus() {
    const status = $("#order-status");
    if (!status) return;
    const badge = $(`#order-${status.dataset.orderId} .badge`);
    if (badge && status.textContent !== badge.textContent) status.textContent = badge.textContent;
  }

  function afterSwap() {
    dedupeRows();
    ageToasts();
    syncOrderStatus();
    tick();
  }
  document.addEventListener("htmx:after:swap", afterSwap);
  document.addEventListener("htmx:sse:after:message", afterSwap);

  // --- the order ticket: fields follow the asset class and order type ---------------------------
  function adaptTicket() {
    const form = $("#order-ticket");
    if (!form) return;
    const type = form.elements.type.value;
    const show = (sel, on) => {
      const label = $(sel, form);
      label.hidden = !on;
      const input = $("input", label);
      input.disabled = !on;
    };
    // A market order is sized by quantity or by amount, in any asset class (mutual funds usually
    // by amount); the one left empty is not sent. Other types are sized by quantity.
    show(".field-notional", type === "market");
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

  document.addEventListener("DOMContentLoaded", () => {
    adaptTicket();
    tick();
    ageToasts();
  });
  // Rows replaced by connection.js's polling: one per order, and their times ticking.
  document.addEventListener("rows-replaced", () => {
    dedupeRows();
    tick();
  });
})();
