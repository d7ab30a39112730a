/**
 * The plain data views receive that is not an orders/ type. Views sit above orders/ only, so they
 * name the shape they render instead of importing it from the hub or the store; the hub's status
 * and the store's session records fit these shapes, and the compiler checks that where routes
 * pass them in.
 */

/** Whether events are arriving live: the connection banner's input. */
export interface RealtimeStatus {
  realtime: "ok" | "degraded";
  reason?: string;
}

/** A signed-in device, as the devices page lists it. */
export interface Session {
  id: string;
  /** Human label, e.g. "Chrome on macOS". */
  label: string;
  created_at: string;
  last_seen_at: string;
}
