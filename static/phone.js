// deno-lint-ignore-file no-window -- browser code: window is the page here
// Blotter on a narrow screen: the header's menu, and the order ticket as a sheet that "New order"
// opens over the rows. While the sheet is open it is a modal dialog: focus moves into it, the
// rest of the page is inert, Escape or Close shuts it, and focus returns to "New order". After a
// successful submit it closes by itself so the trader sees the new row. Wide screens show the
// ticket beside the rows and none of this applies. Sets `.js` on <html>, which the CSS keys on.
(() => {
  "use strict";
  document.documentElement.classList.add("js");
  const narrow = window.matchMedia("(max-width: 720px)");
  const $ = (sel) => document.querySelector(sel);

  // --- the header menu ------------------------------------------------------------------------
  function setMenu(open) {
    const toggle = $("#menu-toggle");
    const nav = $("#site-nav");
    if (!toggle || !nav) return;
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  }
  const menuOpen = () => $("#menu-toggle")?.getAttribute("aria-expanded") === "true";

  // --- the ticket sheet -----------------------------------------------------------------------
  /** Elements made inert while the sheet is open (every sibling on the path up to <body>). */
  let inerted = [];
  const sheetOpen = () => $("#ticket-panel")?.classList.contains("open") ?? false;

  function openSheet() {
    const panel = $("#ticket-panel");
    if (!panel || sheetOpen()) return;
    setMenu(false);
    panel.classList.add("open");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-modal", "true");
    for (let node = panel; node && node !== document.body; node = node.parentElement) {
      for (const sibling of node.parentElement.children) {
        if (sibling !== node && !sibling.inert && sibling.id !== "toasts") {
          sibling.inert = true;
          inerted.push(sibling);
        }
      }
    }
    $("#new-order")?.setAttribute("aria-expanded", "true");
    $("#order-ticket input[name=symbol]")?.focus();
  }

  function closeSheet(returnFocus = true) {
    const panel = $("#ticket-panel");
    if (!panel || !sheetOpen()) return;
    panel.classList.remove("open");
    panel.removeAttribute("role");
    panel.removeAttribute("aria-modal");
    for (const el of inerted) el.inert = false;
    inerted = [];
    const button = $("#new-order");
    button?.setAttribute("aria-expanded", "false");
    if (returnFocus) button?.focus();
  }

  document.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    if (target.closest("#menu-toggle")) return setMenu(!menuOpen());
    if (target.closest("#new-order")) return openSheet();
    if (target.closest("#ticket-close")) return closeSheet();
    // A tap on the dimmed page around the sheet closes it, as on any bottom sheet.
    if (sheetOpen() && !target.closest("#ticket-panel, #toasts")) return closeSheet();
    // A tap outside an open menu closes it.
    if (menuOpen() && !target.closest("#site-nav")) setMenu(false);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (sheetOpen()) {
      e.preventDefault();
      closeSheet();
    } else if (menuOpen()) {
      setMenu(false);
      $("#menu-toggle")?.focus();
    }
  });
  // The order went in: the sheet steps aside so its row (at the top of the list) is in view.
  document.addEventListener("order-placed", () => closeSheet());
  // Turning a tablet or widening a window puts the ticket back beside the rows.
  narrow.addEventListener("change", () => {
    if (!narrow.matches) {
      closeSheet(false);
      setMenu(false);
    }
  });
})();
