// deno-lint-ignore-file no-window no-window-prefix -- browser code: window is the page here
// The background-alerts control (#push-control): registers the service worker (sw.js) and, only
// from the user's click, asks for permission and saves this browser's Web Push subscription.
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);

  // --- Web Push: background alerts for this device ----------------------------------------------
  // The control (#push-control) shows one of: unsupported, ios-install (iOS only pushes to an
  // installed web app), denied (with how to undo it), default (a button: permission is only ever
  // asked from that click), on (subscribed), unavailable (allowed, but the browser's push service
  // could not be reached).
  const PUSH_TEXT = {
    unsupported: "Alerts are not supported in this browser",
    "ios-install": "For alerts, add Blotter to your Home Screen first (Share → Add to Home Screen)",
    denied: "Alerts are blocked. Allow notifications for this site in your browser's site " +
      "settings (the icon left of the address), then reload.",
    default: "",
    on: "Alerts on",
    unavailable: "Alerts allowed, but this browser could not reach its push service",
  };
  function setPushState(state) {
    const control = $("#push-control");
    if (!control) return;
    control.hidden = false;
    control.dataset.state = state;
    $(".push-text", control).textContent = PUSH_TEXT[state];
    $("#enable-push", control).hidden = state !== "default";
  }
  const isIos = () =>
    /iPhone|iPad|iPod/.test(navigator.userAgent) ||
    (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  const installed = () =>
    navigator.standalone === true || matchMedia("(display-mode: standalone)").matches;

  async function subscribe(reg) {
    try {
      let sub = await reg.pushManager.getSubscription();
      if (!sub) {
        const { key } = await (await fetch("/api/v1/push/vapid-public-key")).json();
        sub = await reg.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: urlBase64ToBytes(key),
        });
      }
      const res = await saveSubscription(sub);
      setPushState(res.ok ? "on" : "unavailable");
    } catch {
      setPushState("unavailable");
    }
  }

  async function setUpPush() {
    if (!$("#push-control")) return;
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !window.Notification) {
      setPushState(isIos() && !installed() ? "ios-install" : "unsupported");
      return;
    }
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    const permission = Notification.permission;
    if (permission === "denied") return setPushState("denied");
    if (permission === "granted") return subscribe(await navigator.serviceWorker.ready);
    setPushState("default");
    $("#enable-push").addEventListener("click", async () => {
      // Asked only here, from the user's click.
      const answer = await Notification.requestPermission();
      if (answer === "granted") await subscribe(await navigator.serviceWorker.ready);
      else setPushState(answer === "denied" ? "denied" : "default");
    });
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
    // A worker that cannot register (private mode, a storage quota) leaves alerts unavailable; the
    // page itself works on.
    setUpPush().catch(() => setPushState("unavailable"));
  });
})();
