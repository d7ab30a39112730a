import type { z } from "zod";

/** Error codes the API answers with; each maps to one HTTP status. */
export type ErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "illegal_transition"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "too_many_streams"
  | "unavailable"
  | "internal";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  illegal_transition: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  too_many_streams: 429,
  unavailable: 503,
  internal: 500,
};

/**
 * An error that carries its API code and status. Thrown anywhere below routes; one handler turns it
 * into `{error: {code, message, details?}}`. Messages are sentence case and say what to do.
 */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    status?: number,
  ) {
    super(message);
    this.name = "AppError";
    this.status = status ?? STATUS[code];
  }
}

/** The JSON body for an error answer. */
export function errorBody(
  err: AppError,
): { error: { code: string; message: string; details?: unknown } } {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.details === undefined ? {} : { details: err.details }),
    },
  };
}

/** Validates a value with zod; a failure is a 400 listing every problem. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details = parsed.error.issues.map((i) => ({
    path: i.path.join("."),
    message: i.message,
  }));
  throw new AppError(
    "invalid_request",
    details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join("; "),
    details,
  );
}
