/** The page shell: head (our CSS and scripts only, no inline script: strict CSP), header, toasts. */
import type { Child } from "hono/jsx";

/** Static asset version, so browsers fetch new files after an upgrade. */
export const ASSET_VERSION = "1";

/** The shell every page shares. `user` null: signed out (login page). */
export function Layout(props: { title: string; user: string | null; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title} · Blotter</title>
        <link rel="stylesheet" href={`/static/app.css?v=${ASSET_VERSION}`} />
        <link rel="manifest" href="/static/manifest.json" />
        <meta
          name="htmx-config"
          content='{"sse": {"reconnectMaxDelay": 7000, "reconnectDelay": 500}}'
        />
        {
          /* app.js first: deferred scripts run in order, and its listeners must be in place before
            htmx opens the stream, or a page whose app.js arrives late misses "connected". */
        }
        <script src={`/static/app.js?v=${ASSET_VERSION}`} defer></script>
        <script src="/static/vendor/htmx.js" defer></script>
        <script src="/static/vendor/hx-sse.js" defer></script>
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/orders">Blotter</a>
          {props.user
            ? (
              <nav>
                <span
                  id="connection"
                  data-state="reconnecting"
                  title="Live updates"
                  aria-live="polite"
                >
                  connecting…
                </span>
                <a href="/orders">Orders</a>
                <a href="/devices">Devices</a>
                <span id="push-control" data-state="unknown" hidden>
                  <button type="button" id="enable-push" hidden>Turn on alerts</button>
                  <span class="push-text"></span>
                </span>
                <span class="user">{props.user}</span>
                <form method="post" action="/logout">
                  <button type="submit">Log out</button>
                </form>
              </nav>
            )
            : null}
        </header>
        {props.user
          ? (
            <div id="conn-banner" class="conn-banner" role="status" aria-live="polite" hidden>
              <span class="msg"></span> <button type="button" id="retry-now">Retry now</button>
            </div>
          )
          : null}
        <main>{props.children}</main>
        <div id="toasts" aria-live="polite"></div>
      </body>
    </html>
  );
}
