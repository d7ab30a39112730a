/**
 * What every request passes through: security headers (pages: a strict CSP, no inline script;
 * the JSON API: OWASP's REST set), the 1 MiB body limit, one error handler that turns every
 * failure into `{error: {code, message}}` (no stack traces, no SQL), and the JSON body reader
 * with its 415 / 413 / 400 answers.
 */
import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { secureHeaders } from "hono/secure-headers";
import type { z } from "zod";
import { AppError, errorBody, parseWith } from "../orders/errors.ts";
import { diskFull, isDiskFull } from "../store/write_gate.ts";
import type { AppEnv, Deps } from "./context.ts";

/** Request bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Installs the shared middleware and the error handlers. */
export function installMiddleware(app: Hono<AppEnv>, deps: Pick<Deps, "log">): void {
  // Pages get the browser's full set; the JSON API (a venue, the native apps, the page's own
  // fetches) the OWASP REST set: nothing on it is a document to frame, script or prefetch, and
  // every report's answer carried ~800 bytes of page headers (bench/README.md, third pass).
  const pageHeaders = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      connectSrc: ["'self'"],
      workerSrc: ["'self'"],
      manifestSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
    referrerPolicy: "same-origin",
    crossOriginEmbedderPolicy: false,
  });
  const apiHeaders = secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    referrerPolicy: "no-referrer",
    xFrameOptions: "DENY",
    crossOriginEmbedderPolicy: false,
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  });
  app.use((c, next) => (c.req.path.startsWith("/api/") ? apiHeaders : pageHeaders)(c, next));
  app.use(bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new AppError("payload_too_large", "The request body is larger than 1 MiB");
    },
  }));
  app.onError((err, c) => {
    // Writes outside the store's gate (sign-ins, push subscriptions) on a full disk: the same
    // 503 the gate answers, not a 500 logged per request (the gate logs the episode).
    if (isDiskFull(err)) err = diskFull();
    if (err instanceof AppError) {
      if (err.code === "rate_limited" || err.code === "unavailable") {
        // A 503 (the store is overloaded or away) tells the client when to come back, as a 429
        // does: 1 s unless the error says otherwise.
        const retry = (err.details as { retry_after_s?: number } | undefined)?.retry_after_s;
        if (retry) c.header("Retry-After", String(retry));
        else if (err.code === "unavailable") c.header("Retry-After", "1");
      }
      return c.json(errorBody(err), err.status as 400);
    }
    if (err instanceof HTTPException) {
      const code = err.status === 413 ? "payload_too_large" : "invalid_request";
      return c.json(errorBody(new AppError(code, err.message || "Bad request")), err.status);
    }
    deps.log.error("unhandled error", { path: c.req.path, err: String(err) });
    return c.json(errorBody(new AppError("internal", "Something went wrong on our side")), 500);
  });
  app.notFound((c) =>
    c.json(
      errorBody(new AppError("not_found", `No such resource: ${c.req.method} ${c.req.path}`)),
      404,
    )
  );
}

/** Reads and validates a JSON body: 415 unless JSON, 400 when it does not parse or validate. */
export async function readJson<S extends z.ZodType>(
  c: Context<AppEnv>,
  schema: S,
): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
    throw new AppError(
      "unsupported_media_type",
      "Send the body as JSON (Content-Type: application/json)",
    );
  }
  let body: unknown;
  try {
    body = await c.req.json();
  } catch (err) {
    if (err instanceof AppError || err instanceof HTTPException) throw err;
    throw new AppError("invalid_request", "The body is not valid JSON");
  }
  return parseWith(schema, body);
}
