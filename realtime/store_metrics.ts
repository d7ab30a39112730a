/**
 * What /metrics shows of the store, read at scrape time: writes refused on a full disk, report
 * groups that could not go their first way, and the event bus (EVENT_BUS_URL) when there is one.
 */
import type { Health } from "../store/store.ts";
import type { Metrics } from "./metrics.ts";

/** Registers the store's metrics. */
export function registerStoreMetrics(
  metrics: Metrics,
  store: Pick<Health, "writesRefusedDiskFull" | "reportFallbacks" | "bus">,
): void {
  metrics.readCounter(
    "blotter_store_disk_full_writes_total",
    "Reports and order actions refused with 503 because the store's disk was full",
    () => store.writesRefusedDiskFull,
  );
  metrics.readCounter(
    "blotter_report_fallbacks_total",
    "Report groups that could not go their first way, by reason (store/common.ts Fallbacks)",
    () => [...store.reportFallbacks()].map(([reason, n]) => [{ reason }, n] as const),
  );
  if (!store.bus()) return;
  const bus = () => store.bus()!;
  metrics.gauge(
    "blotter_bus_connected",
    "1 while the event bus (EVENT_BUS_URL) is connected, else 0",
    () => bus().state === "connected" ? 1 : 0,
  );
  metrics.gauge(
    "blotter_bus_subscriptions",
    "Users this instance receives from the event bus (those with a stream or socket here)",
    () => bus().subscriptions,
  );
  metrics.readCounter(
    "blotter_bus_messages_total",
    "Event bus messages: published here, received for the users served here, and other instances' written-user batches",
    () => [
      [{ direction: "published" }, bus().published] as const,
      [{ direction: "received" }, bus().received] as const,
      [{ direction: "written" }, bus().writtenHeard] as const,
    ],
  );
}
