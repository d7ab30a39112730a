// Blotter's service worker: shows Web Push alerts (fills, rejections, cancels) and opens the
// order when one is clicked. A page that is visible already shows the change live, so then no
// notification is shown; `tag` = order id, so a later alert for an order replaces an earlier one
// (and the same alert from two servers shows once).
self.addEventListener("push", (event) => {
  let msg = {};
  try {
    msg = event.data ? event.data.json() : {};
  } catch {
    return;
  }
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    if (windows.some((w) => w.visibilityState === "visible")) return;
    await self.registration.showNotification(msg.title || "Order update", {
      body: msg.body || "",
      tag: msg.order_id,
      data: { url: msg.url || "/orders" },
    });
  })());
});

// A click focuses a Blotter window already open (taking it to the order), or opens one.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(
    (event.notification.data && event.notification.data.url) || "/orders",
    self.location.origin,
  ).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const same = windows.find((w) => w.url === url) || windows[0];
    if (same) {
      await same.focus();
      if (same.url !== url && "navigate" in same) await same.navigate(url);
      return;
    }
    await self.clients.openWindow(url);
  })());
});

// The push service rotated this device's subscription: subscribe again with the same key and
// tell the server (same origin, so the device's session cookie goes along).
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil((async () => {
    const key = event.oldSubscription && event.oldSubscription.options.applicationServerKey;
    const sub = event.newSubscription ||
      await self.registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: key ||
          await fetch("/api/v1/push/vapid-public-key").then((r) => r.json()).then((j) =>
            Uint8Array.from(
              atob(
                j.key.replace(/-/g, "+").replace(/_/g, "/") +
                  "=".repeat((4 - j.key.length % 4) % 4),
              ),
              (c) => c.charCodeAt(0),
            )
          ),
      });
    await fetch("/api/v1/push/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sub.toJSON()),
    });
  })());
});
