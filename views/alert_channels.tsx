/**
 * Native push (issue 15): how a device session receives background alerts, shown per session on
 * the devices page. Kept apart from pages.tsx so the page's own markup can change freely.
 */

/** A way an alert reaches a session with no open stream: Web Push, FCM or APNs. */
export type AlertChannel = "browser" | "android" | "ios";

const LABEL: Record<AlertChannel, string> = {
  browser: "browser (Web Push)",
  android: "Android (FCM)",
  ios: "iOS (APNs)",
};

/** "· alerts: Android (FCM)" or "· no background alerts"; `data-alerts` lists the channels. */
export function AlertChannels(props: { channels: readonly AlertChannel[] }) {
  const { channels } = props;
  return (
    <span class="alerts" data-alerts={channels.join(" ")}>
      {channels.length
        ? `· alerts: ${channels.map((k) => LABEL[k]).join(", ")}`
        : "· no background alerts"}
    </span>
  );
}
