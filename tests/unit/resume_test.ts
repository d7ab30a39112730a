import assert from "node:assert/strict";
import { agreesWith } from "../../realtime/resume.ts";

const at = { seq: 7, id: "7.aaaaaaaa" };

Deno.test("agreesWith: the event at the stream's seq under another id is another history", () => {
  assert.equal(agreesWith(at, [{ seq: 7, id: "7.bbbbbbbb" }, { seq: 8, id: "8.cccccccc" }]), false);
  assert.equal(agreesWith(at, [{ seq: 6, id: "6.zzzzzzzz" }, { seq: 7, id: "7.bbbbbbbb" }]), false);
});

Deno.test("agreesWith: the same event, or events that do not reach back to it, agree", () => {
  assert.equal(agreesWith(at, [{ seq: 7, id: "7.aaaaaaaa" }, { seq: 8, id: "8.cccccccc" }]), true);
  assert.equal(agreesWith(at, [{ seq: 8, id: "8.cccccccc" }]), true);
  assert.equal(agreesWith(at, [{ seq: 5, id: "5.cccccccc" }, { seq: 6, id: "6.cccccccc" }]), true);
  assert.equal(agreesWith(at, []), true);
});

Deno.test("agreesWith: a position whose id is not known checks nothing", () => {
  assert.equal(agreesWith({ seq: 7, id: null }, [{ seq: 7, id: "7.bbbbbbbb" }]), true);
});
