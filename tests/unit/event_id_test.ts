/** Event ids, SEQ.TAG (orders/event_id.ts): what a resume point may be, and a legacy event's id. */
import assert from "node:assert/strict";
import {
  eventId,
  legacyEventId,
  newTag,
  parseResumePoint,
  tagOf,
  withEventId,
} from "../../orders/event_id.ts";

Deno.test("event ids: a fresh tag is 8 characters of base64url, different each time", () => {
  const tags = new Set(Array.from({ length: 1_000 }, newTag));
  assert.equal(tags.size, 1_000);
  for (const t of tags) assert.match(t, /^[A-Za-z0-9_-]{8}$/);
  assert.equal(tagOf(eventId(42, "abcdEF_-")), "abcdEF_-");
});

Deno.test("event ids: a resume point is SEQ or SEQ.TAG; anything else is malformed", () => {
  assert.deepEqual(parseResumePoint("0"), { seq: 0, tag: null });
  assert.deepEqual(parseResumePoint(" 12 "), { seq: 12, tag: null });
  assert.deepEqual(parseResumePoint("12.abcdef"), { seq: 12, tag: "abcdef" });
  assert.deepEqual(parseResumePoint("12.abcdefghijklmnop"), { seq: 12, tag: "abcdefghijklmnop" });
  assert.notEqual(parseResumePoint("9".repeat(30)), "malformed", "ahead is a seq, not a 400");
  for (
    const bad of ["", "-1", "+1", "1.5", "1.abcde", "1.abcdefghijklmnopq", "1.ab$def", "1.a.b", "x"]
  ) {
    assert.equal(parseResumePoint(bad), "malformed", JSON.stringify(bad));
  }
});

Deno.test("event ids: an event from before tags gets a stable id that tells histories apart", () => {
  const e = { seq: 7, at: "2026-12-01T10:00:00.000Z", type: "fill", order: { id: "o-1" } };
  const id = legacyEventId(e);
  assert.match(id, /^7\.[A-Za-z0-9_-]{8}$/);
  assert.equal(legacyEventId({ ...e }), id, "the same on every read");
  assert.notEqual(legacyEventId({ ...e, at: "2026-12-01T10:00:00.001Z" }), id);
  assert.equal(withEventId({ ...e }).id, id);
  assert.equal(withEventId({ ...e, id: "7.storedTAG" }).id, "7.storedTAG", "a stored id is kept");
});
