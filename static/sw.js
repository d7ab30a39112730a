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

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/orders";
  event.waitUntil(self.clients.openWindow(url));
});
