/** The page shell: head (our CSS and scripts only, no inline script: strict CSP), header, toasts. */
import type { Child } from "hono/jsx";

/** Static asset version, so browsers fetch new files after an upgrade. */
export const ASSET_VERSION = "2";

/** The app's theme colour (the manifest says the same). */
const THEME = "#0f1419";

/**
 * The shell every page shares. `user` null: signed out (login page). `ownToasts`: the page places
 * `#toasts` itself (the blotter puts it under the ticket, beside the rows rather than over them).
 */
export function Layout(
  props: { title: string; user: string | null; children: Child; ownToasts?: boolean },
) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover" />
        <title>{props.title} · Blotter</title>
        <meta name="theme-color" content={THEME} />
        <meta name="color-scheme" content="dark" />
        <meta name="mobile-web-app-capable" content="yes" />
        <meta name="apple-mobile-web-app-title" content="Blotter" />
        <link rel="stylesheet" href={`/static/app.css?v=${ASSET_VERSION}`} />
        <link rel="manifest" href="/static/manifest.json" />
        <link rel="icon" href="/static/icons/favicon-32.png" sizes="32x32" type="image/png" />
        <link rel="icon" href="/static/icons/icon.svg" type="image/svg+xml" />
        <link rel="apple-touch-icon" href="/static/icons/apple-touch-icon.png" />
        <meta
          name="htmx-config"
          content='{"sse": {"reconnectMaxDelay": 7000, "reconnectDelay": 500}}'
        />
        {
          /* connection.js first: deferred scripts run in order, and its listeners must be in place
            before htmx opens the stream, or a page whose script arrives late misses "connected". */
        }
        <script src={`/static/connection.js?v=${ASSET_VERSION}`} defer></script>
        <script src={`/static/app.js?v=${ASSET_VERSION}`} defer></script>
        <script src={`/static/phone.js?v=${ASSET_VERSION}`} defer></script>
        <script src={`/static/push.js?v=${ASSET_VERSION}`} defer></script>
        <script src="/static/vendor/htmx.js" defer></script>
        <script src="/static/vendor/hx-sse.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/orders">
            <img src="/static/icons/favicon-32.png" alt="" width={20} height={20} />
            Blotter
          </a>
          {props.user ? <SignedInBar user={props.user} /> : null}
        </header>
        {props.user
          ? (
            <div id="conn-banner" class="conn-banner" role="status" aria-live="polite" hidden>
              <span class="msg"></span> <button type="button" id="retry-now">Retry now</button>
            </div>
          )
          : null}
        <main id="main">{props.children}</main>
        {props.ownToasts ? null : <Toasts />}
      </body>
    </html>
  );
}

/** Where notifications appear; a polite live region, so each is also read out. */
export function Toasts() {
  return <div id="toasts" class="toasts" aria-live="polite"></div>;
}

/**
 * The signed-in part of the header, one row at any width: on a phone the links and the alerts
 * control fold into a menu (app.js opens it), while the live indicator and Log out stay in view.
 */
function SignedInBar(props: { user: string }) {
  return (
    <>
      <span
        id="connection"
        data-state="reconnecting"
        title="Live updates"
        aria-live="polite"
      >
        connecting…
      </span>
      <button
        type="button"
        id="menu-toggle"
        class="menu-toggle"
        aria-expanded="false"
        aria-controls="site-nav"
      >
        Menu
      </button>
      <nav id="site-nav" class="site-nav" aria-label="Main">
        <a href="/orders">Orders</a>
        <a href="/devices">Devices</a>
        <span id="push-control" data-state="unknown" hidden>
          <button type="button" id="enable-push" hidden>Turn on alerts</button>
          <span class="push-text"></span>
        </span>
        <span class="user">
          <span class="user-prefix">Signed in as</span> {props.user}
        </span>
      </nav>
      <form method="post" action="/logout" class="logout">
        <button type="submit">Log out</button>
      </form>
    </>
  );
}
