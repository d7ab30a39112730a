/**
 * Where a stream starts and when it must start over: the resume rules of CONTRACT (the JSON
 * stream's section) decided against the store. A client that resumes is answered from the store's
 * own history or told `reset`; never resumed into another history (event ids, orders/event_id.ts).
 * Used by every stream when it opens, and again whenever the store's history may have changed
 * under an open one (a failover, seen as the change feed reconnecting).
 */
import { type ResumePoint, tagOf } from "../orders/event_id.ts";
import type { EventLog } from "../store/store.ts";

/** What a stream's resume decisions read of the store. */
export type ResumeLog = Pick<EventLog, "eventsSince" | "currentSeq" | "oldestSeq">;

/** A stream's position: the last seq it sent (or starts after) and that event's full id. */
export interface Position {
  seq: number;
  /** `SEQ.TAG` of the store's event `seq`; null when there is none (seq 0) or it is not known. */
  id: string | null;
}

/** How a new stream opens: live from a position, after replaying from it, or with a `reset`. */
export type Opening =
  | { kind: "live" | "replay"; at: Position }
  | { kind: "reset"; at: Position; reason: string };

/** Why a stream resets, as its `reset` message says. */
export const RESET_REASONS = {
  ahead: "the server has no record of that position; reload",
  pruned: "events since that position are no longer kept; reload",
  otherHistory: "that event is not in this server's history; reload",
  historyChanged: "the server's history changed (a failover or a restore); reload",
} as const;

/** Decides how a stream opens for a client resuming from `resumeFrom` (null: live from now). */
export async function openingFor(
  log: ResumeLog,
  userId: string,
  resumeFrom: ResumePoint | null,
): Promise<Opening> {
  const current = await log.currentSeq(userId);
  const reset = async (reason: string): Promise<Opening> => ({
    kind: "reset",
    at: await positionAt(log, userId, current),
    reason,
  });
  if (resumeFrom === null) return { kind: "live", at: await positionAt(log, userId, current) };
  // Ahead of the store: the store was replaced. The client must reload, not wait forever.
  if (resumeFrom.seq > current) return await reset(RESET_REASONS.ahead);
  const from = resumeFrom.seq;
  const oldest = await log.oldestSeq(userId);
  if (from < current && oldest !== null && from < oldest - 1) {
    return await reset(RESET_REASONS.pruned);
  }
  const at = await positionAt(log, userId, from);
  // The client's event `seq` is not this store's: a history lost and grown again (a failover, a
  // restore). Resuming would mix two histories with no sign of it.
  if (resumeFrom.tag !== null && (at.id === null || tagOf(at.id) !== resumeFrom.tag)) {
    return await reset(RESET_REASONS.otherHistory);
  }
  return { kind: "replay", at };
}

/** The store's newest position for a user: where a `reset` sends a stream. */
export async function newestPosition(log: ResumeLog, userId: string): Promise<Position> {
  return await positionAt(log, userId, await log.currentSeq(userId));
}

/**
 * The position at `seq` with the full id of the store's event there: null for seq 0, and for an
 * event the store no longer has (pruned, or lost with a failover).
 */
async function positionAt(log: ResumeLog, userId: string, seq: number): Promise<Position> {
  if (seq <= 0) return { seq, id: null };
  const [event] = await log.eventsSince(userId, seq - 1, 1);
  return { seq, id: event?.seq === seq ? event.id : null };
}

/**
 * Whether `events` (a user's, in seq order) agree with a stream's position: false when one of
 * them is the event at the stream's seq under another id — the history it sent was replaced.
 */
export function agreesWith(position: Position, events: ReadonlyArray<{ seq: number; id: string }>) {
  if (position.id === null || events.length === 0 || events[0].seq > position.seq) return true;
  const there = events.find((e) => e.seq === position.seq);
  return there === undefined || there.id === position.id;
}
